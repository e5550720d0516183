"""`gamemetrics recommender train|evaluate`: train a game's model now, or measure it offline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from gamemetrics.cli.database import with_pool
from gamemetrics.cli.output import fail, print_json
from gamemetrics.settings import Settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from gamemetrics.services.recommender.evaluation import Report
    from gamemetrics.services.recommender.training import Trained

app = typer.Typer(no_args_is_help=True, help="The recommender: train a game's model, evaluate it offline.")

GameOption = Annotated[uuid.UUID, typer.Option("--game", help="The game's id.")]
AlgorithmOption = Annotated[Literal["als", "bpr"] | None,
                            typer.Option("--algorithm", help="als or bpr; unset: GAMEMETRICS_RECOMMENDER_ALGORITHM.")]


async def _tenant_of(pool: AsyncConnectionPool, game: uuid.UUID) -> uuid.UUID:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT tenant_id FROM games WHERE game_id = %s", (game,))
        row = await cur.fetchone()
    if row is None:
        fail(f"no game {game}")
    tenant: uuid.UUID = row[0]
    return tenant


@app.command("train")
def train(game: GameOption, algorithm: AlgorithmOption = None,
          as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Train a new version of the game's model and switch serving to it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gamemetrics.adapters.qdrant.vectors import make_vectors
    from gamemetrics.observability.logging import configure_logging
    from gamemetrics.ports.vectors import VectorStoreError
    from gamemetrics.services.recommender.interactions import Interactions
    from gamemetrics.services.recommender.models import Models
    from gamemetrics.services.recommender.training import NothingToTrain, Trainer

    async def work(settings: Settings, pool: AsyncConnectionPool) -> Trained:
        configure_logging(settings.log_level, service="recommender-cli")  # logs on stderr, beside the bar
        tenant = await _tenant_of(pool, game)
        try:
            vectors = make_vectors(settings.vectors, settings.data_dir)
        except RuntimeError as exc:  # local mode: the running platform's recommender holds the directory
            fail(f"{exc}; stop the platform first, or train through POST /v1/games/{game}/recommendations/train")
        interactions = Interactions(pool)
        trainer = Trainer(pool, interactions, Models(pool, vectors), settings.recommender)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, disable=as_json, transient=False) as progress:
                fitting = progress.add_task("fitting", total=settings.recommender.recommender_iterations)
                storing = progress.add_task("storing vectors", total=None)
                return await trainer.train(
                    tenant, game, algorithm=algorithm,
                    fitting=lambda done, total: progress.update(fitting, completed=done, total=total),
                    storing=lambda done, total: progress.update(storing, completed=done, total=total))
        except NothingToTrain as exc:
            fail(exc)
        except VectorStoreError as exc:
            fail(exc)
        finally:
            await vectors.close()

    trained = with_pool(work)
    summary = {"game_id": str(game), "model_version": trained.model.version, "players": trained.players,
               "items": trained.items, "interactions": trained.interactions}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"model version {trained.model.version} of game {game} is served now: {trained.players} players,"
                   f" {trained.items} items, {trained.interactions} player-item pairs")


@app.command("evaluate")
def evaluate(game: GameOption, algorithm: AlgorithmOption = None,
             at: Annotated[datetime | None, typer.Option("--at", help="Split time (UTC when no offset); unset:"
                                                          " the time before which 80% of interactions lie.")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Train on interactions before the split, test on purchases and acquisitions after it."""
    from gamemetrics.services.recommender import evaluation
    from gamemetrics.services.recommender.catalogue import tenant_transaction
    from gamemetrics.services.recommender.interactions import Interactions

    split = at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at

    async def work(settings: Settings, pool: AsyncConnectionPool) -> Report:
        tenant = await _tenant_of(pool, game)
        weights = await Interactions(pool).weights(tenant, game)
        async with pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant)
            cur = await conn.execute("SELECT player_id, item_id, event_type, at FROM rec_interactions"
                                     " WHERE tenant_id = %s AND game_id = %s", (tenant, game))
            events = [evaluation.Event(*row) for row in await cur.fetchall()]
        if not events:
            fail(f"game {game} has no interactions to evaluate")
        s = settings.recommender
        try:
            return evaluation.evaluate(events, split=split, algorithm=algorithm or s.recommender_algorithm,
                                       factors=s.recommender_factors, iterations=s.recommender_iterations,
                                       regularization=s.recommender_regularization, weights=weights)
        except evaluation.NotEnoughData as exc:
            fail(exc)

    report = with_pool(work)
    if as_json:
        print_json({"game_id": str(game), "split": report.split.isoformat(), "k": evaluation.K,
                    "train_interactions": report.train_interactions, "test_players": report.test_players,
                    "model": report.model.as_dict(), "popularity": report.popularity.as_dict()})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"game {game}: split at {report.split.isoformat()}, {report.test_players} test players")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("popularity", justify="right")
    for name in ("precision", "recall", "ndcg", "hit_rate", "coverage"):
        label = name if name == "coverage" else f"{name}@{evaluation.K}"
        table.add_row(label, f"{getattr(report.model, name):.4f}", f"{getattr(report.popularity, name):.4f}")
    Console().print(table)
