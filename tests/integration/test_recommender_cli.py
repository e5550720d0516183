"""`gamemetrics recommender train` and `evaluate` on a game's stored interactions, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gamemetrics.adapters.qdrant.vectors import local_vectors
from tests.integration.users_fixtures import add_tenant
from tests.unit.test_recommender_evaluation import simulated

pytestmark = pytest.mark.timeout(180)


def _cli(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GAMEMETRICS_DATABASE_URL": database_url, "GAMEMETRICS_DATA_DIR": str(data_dir),
           "GAMEMETRICS_RECOMMENDER_FACTORS": "8"}
    return subprocess.run([sys.executable, "-m", "gamemetrics.cli", "recommender", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_train_and_evaluate_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    tenant, game, _, _ = add_tenant(database_url)
    events = simulated(tastes=True, players=300)
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO rec_interactions (tenant_id, event_id, game_id, player_id, item_id, event_type, at)"
            " VALUES (%s, gen_random_uuid(), %s, %s, %s, %s, %s)",
            [(tenant, game, e.player, e.item, e.event_type, e.at) for e in events])
        cur.execute("INSERT INTO rec_items (tenant_id, game_id, item_id) SELECT DISTINCT tenant_id, game_id, item_id"
                    " FROM rec_interactions")

    evaluated = _cli(database_url, tmp_path, "evaluate", "--game", str(game), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["k"] == 10 and report["test_players"] > 0
    assert report["model"]["ndcg"] > report["popularity"]["ndcg"]
    table = _cli(database_url, tmp_path, "evaluate", "--game", str(game), "--at", "2026-01-10")
    assert table.returncode == 0 and "ndcg@10" in table.stdout and "2026-01-10T00:00:00+00:00" in table.stdout

    trained = _cli(database_url, tmp_path, "train", "--game", str(game), "--algorithm", "bpr", "--json")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["model_version"] == 1
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT version, algorithm FROM rec_models WHERE active").fetchall() == [(1, "bpr")]

    holder = local_vectors(tmp_path / "qdrant")  # as a running recommender holds it
    try:
        locked = _cli(database_url, tmp_path, "train", "--game", str(game))
        assert locked.returncode == 1 and "recommendations/train" in locked.stderr, locked.stderr
    finally:
        import asyncio
        asyncio.run(holder.close())
    unknown = _cli(database_url, tmp_path, "train", "--game", "5d3c1e0e-2b7e-4f57-9a44-6a1f0c7b9e21")
    assert unknown.returncode == 1 and "no game" in unknown.stderr
