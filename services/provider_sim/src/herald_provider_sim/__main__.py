"""``python -m herald_provider_sim``."""

from herald_provider_sim.main import run

run()
