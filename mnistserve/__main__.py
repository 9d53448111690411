"""`python -m mnistserve` is the `mnistserve` command."""

from mnistserve.cli import app

app()
