"""The `gamemetrics` command: run the platform, its services, migrations and admin tasks."""

from __future__ import annotations

import typer

from gamemetrics.cli import admin, audit, chaos, kafka, platform, traffic

app = typer.Typer(no_args_is_help=True, help="GameMetrics Pro: real-time player analytics for game studios.")
app.add_typer(platform.app)
app.add_typer(traffic.app)
app.add_typer(admin.app, name="admin")
app.add_typer(kafka.app, name="kafka")
app.add_typer(audit.app, name="audit")
app.add_typer(chaos.app, name="chaos")
