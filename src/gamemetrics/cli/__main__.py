"""`python -m gamemetrics.cli`."""

from gamemetrics.cli import app

app()
