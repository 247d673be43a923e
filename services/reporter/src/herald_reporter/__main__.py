"""``python -m herald_reporter``."""

from herald_reporter.main import run

run()
