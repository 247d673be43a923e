"""``python -m herald_scheduler``."""

from herald_scheduler.main import run

run()
