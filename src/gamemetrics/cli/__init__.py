"""The `gamemetrics` command: run the platform, its services, migrations and admin tasks."""

from __future__ import annotations

import typer

from gamemetrics.cli import (
    admin,
    archive,
    audit,
    backup,
    chaos,
    kafka,
    notifications,
    platform,
    recommender,
    retention,
    traffic,
)

app = typer.Typer(no_args_is_help=True, help="GameMetrics Pro: real-time player analytics for game studios.")
app.add_typer(platform.app)
app.add_typer(traffic.app)
app.add_typer(admin.app, name="admin")
app.add_typer(kafka.app, name="kafka")
app.add_typer(audit.app, name="audit")
app.add_typer(notifications.app, name="notifications")
app.add_typer(recommender.app, name="recommender")
app.add_typer(retention.app, name="retention")
app.add_typer(archive.app, name="archive")
app.add_typer(backup.app, name="backup")
app.add_typer(chaos.app, name="chaos")
