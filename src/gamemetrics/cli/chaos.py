"""`gamemetrics chaos`: list and run the chaos experiments, each on a platform of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gamemetrics.settings import get_settings

app = typer.Typer(help="Chaos experiments (Chaos Toolkit files) against a platform started for each run.")


@app.command("list")
def list_experiments() -> None:
    """The experiments and what each does."""
    from gamemetrics.chaos.runner import experiments, title

    table = Table(title="Chaos experiments")
    table.add_column("name")
    table.add_column("title")
    for name, path in experiments().items():
        table.add_row(name, title(path))
    Console().print(table)


@app.command("run")
def run_experiments(
    name: Annotated[str, typer.Argument(help="An experiment's name (see `chaos list`), `all`, or an experiment file.")],
    duration: Annotated[float | None, typer.Option(
        "--duration", min=0.0, help="Seconds the fault holds (each experiment has its own default).")] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the moment the fault comes; printed with each run to replay it.")] = None,
) -> None:
    """Run experiments; exits 1 when a hypothesis was violated."""
    from chaoslib.exceptions import InvalidExperiment, InvalidSource

    from gamemetrics.chaos.runner import experiments, run

    console = Console(stderr=True)
    names = list(experiments()) if name == "all" else [name]
    if name != "all" and name not in experiments() and not Path(name).is_file():
        raise typer.BadParameter(f"no experiment {name!r}; `gamemetrics chaos list` names them", param_hint="NAME")
    root = get_settings().data_dir.resolve() / "chaos"
    table = Table(title="Chaos runs")
    for column in ("experiment", "seed", "verdict", "journal"):
        table.add_column(column)
    failed = False
    for each in names:
        console.print(f"[bold]{each}[/] …")
        try:
            outcome = run(each, root, seed=seed, duration=duration)
        except (InvalidExperiment, InvalidSource) as exc:
            console.print(f"[red]{each} is not a valid experiment:[/] {exc}")
            raise typer.Exit(2) from None
        console.print(f"{each}: seed {outcome.seed}")
        for violation in outcome.violations:
            console.print(f"  [red]violated[/] {violation}")
        failed |= not outcome.ok
        table.add_row(each, str(outcome.seed), "[green]held[/]" if outcome.ok else f"[red]{outcome.status}[/]",
                      str(outcome.folder / "journal.json"))
    Console().print(table)
    raise typer.Exit(1 if failed else 0)


@app.command("report")
def report(
    out: Annotated[str, typer.Option("--out", help="The HTML file to write.")] = "chaos-report.html",
) -> None:
    """The runs under the data dir as one HTML page: a summary table and plots around each fault; each
    run's consumer lag also as lag.svg in its folder."""
    from gamemetrics.chaos.report import load_runs, render, write_lag_images

    runs = load_runs(get_settings().data_dir.resolve() / "chaos")
    Path(out).write_text(render(runs))
    images = write_lag_images(runs)
    typer.echo(f"{len(runs)} runs in {out}; lag plots: {len(images)} (lag.svg in each run's folder)")
