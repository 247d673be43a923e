"""``python -m herald_api``."""

from herald_api.main import run

run()
