"""``python -m herald_cli``."""

from herald_cli.main import run

run()
