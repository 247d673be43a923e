"""``python -m herald_sender``."""

from herald_sender.main import run

run()
