"""What the commands print: one JSON object on stdout, errors on stderr."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer


def print_json(value: Any) -> None:
    """`value` as one line of JSON (ids, times and decimals as strings)."""
    typer.echo(json.dumps(value, default=str))


def fail(message: object) -> NoReturn:
    """Print `error: message` on stderr and exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
