"""Player profiles over the users API: create, read, replace, merge-patch, list with search and
pages; the admin API's games, write keys and audit entries; every change of a credential audited."""

from __future__ import annotations

import uuid

from tests.integration.users_fixtures import Users, add_tenant


def test_profile_put_get_patch(users: Users) -> None:
    path = f"/v1/games/{users.game_id}/players/hero-1"
    write, read = users.auth("players:write"), users.auth("players:read")
    assert users.http.get(path, headers=read).status_code == 404
    created = users.http.put(path, json={"traits": {"name": "Ada", "prefs": {"sound": True, "lang": "en"}}},
                             headers=write)
    assert created.status_code == 201, created.text
    assert created.json()["traits"] == {"name": "Ada", "prefs": {"sound": True, "lang": "en"}}
    assert created.json()["events"] == 0 and created.json()["player_id"] == "hero-1"
    patched = users.http.patch(path, json={"traits": {"prefs": {"sound": None}, "level": 3}},
                               headers={**write, "Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["traits"] == {"name": "Ada", "prefs": {"lang": "en"}, "level": 3}
    replaced = users.http.put(path, json={"traits": {"name": "Ada L."}}, headers=write)
    assert replaced.status_code == 200 and replaced.json()["traits"] == {"name": "Ada L."}
    assert users.http.get(path, headers=read).json()["traits"] == {"name": "Ada L."}


def test_profile_writes_are_checked_and_scoped(users: Users) -> None:
    path = f"/v1/games/{users.game_id}/players/hero-2"
    write = users.auth("players:write")
    deep: dict = {}
    node = deep
    for _ in range(12):
        node["x"] = {}
        node = node["x"]
    for body, status in [({"traits": [1, 2]}, 400), ({"traits": deep}, 400), ({"traits": {"a": "x" * 40_000}}, 413),
                         ({"traits": {"a": "nul\u0000"}}, 400)]:
        assert users.http.put(path, json=body, headers=write).status_code == status, body
    assert users.http.patch(path, json={"first_seen": "2020-01-01"}, headers=write).status_code == 400
    for bad in ("nul%00id", "x" * 257):
        assert users.http.get(f"/v1/games/{users.game_id}/players/{bad}",
                              headers=users.auth("players:read")).status_code == 400, bad
        assert users.http.delete(f"/v1/games/{users.game_id}/players/{bad}",
                                 headers=users.auth("gdpr:erase")).status_code == 400, bad
    assert users.http.put(path, json={"traits": {}}, headers=users.auth("players:read")).status_code == 403
    # Another tenant's game is not there for this token.
    _, foreign_game, _, _ = add_tenant(users.database_url)
    assert users.http.get(f"/v1/games/{foreign_game}/players/hero-2",
                          headers=users.auth("players:read")).status_code == 404


def test_list_pages_and_search(users: Users) -> None:
    write, read = users.auth("players:write"), users.auth("players:read")
    for i in range(7):
        traits = {"email": f"p{i}@studio.example", "guild": "Red" if i % 2 else "Blue"}
        assert users.http.put(f"/v1/games/{users.game_id}/players/p{i}", json={"traits": traits},
                              headers=write).status_code == 201
    seen, after = [], ""
    for _ in range(10):  # bounded: 7 players in pages of 3
        page = users.http.get(f"/v1/games/{users.game_id}/players", params={"limit": 3, "after": after},
                              headers=read).json()
        seen += [p["player_id"] for p in page["players"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == [f"p{i}" for i in range(7)]
    red = users.http.get(f"/v1/games/{users.game_id}/players", params={"q": "red"}, headers=read).json()
    assert [p["player_id"] for p in red["players"]] == ["p1", "p3", "p5"]
    by_id = users.http.get(f"/v1/games/{users.game_id}/players", params={"q": "P4"}, headers=read).json()
    assert [p["player_id"] for p in by_id["players"]] == ["p4"]
    wildcard = users.http.get(f"/v1/games/{users.game_id}/players", params={"q": "%"}, headers=read).json()
    assert wildcard["players"] == []


def test_admin_api_creates_and_revokes_and_audits(users: Users) -> None:
    admin = users.auth("admin")
    game = users.http.post("/v1/admin/games", json={"name": "Second Game"}, headers=admin)
    assert game.status_code == 201, game.text
    game_id = game.json()["game_id"]
    key = users.http.post(f"/v1/admin/games/{game_id}/write-keys", json={"environment": "staging"}, headers=admin)
    assert key.status_code == 201 and key.json()["write_key"].startswith("gm_staging_")
    listed = users.http.get(f"/v1/admin/games/{game_id}/write-keys", headers=admin).json()["write_keys"]
    assert [k["key_id"] for k in listed] == [key.json()["key_id"]]
    assert "write_key" not in listed[0]
    assert users.http.delete(f"/v1/admin/write-keys/{key.json()['key_id']}", headers=admin).status_code == 200
    assert users.http.delete(f"/v1/admin/write-keys/{key.json()['key_id']}", headers=admin).status_code == 404
    assert users.http.delete(f"/v1/admin/write-keys/{uuid.uuid4()}", headers=admin).status_code == 404
    # Another tenant cannot touch this tenant's keys.
    entries = users.http.get("/v1/admin/audit", headers=admin).json()["entries"]
    assert [e["action"] for e in entries] == ["game.created", "write_key.created", "write_key.revoked"]
    assert all(e["actor"] == f"client:{users.client_id}" for e in entries)
    assert users.http.get("/v1/admin/games", headers=users.auth("players:read")).status_code == 403
    stored = users.sql("SELECT key_hash FROM write_keys WHERE key_id = %s", (key.json()["key_id"],))
    assert key.json()["write_key"].encode() not in bytes(stored[0][0])
