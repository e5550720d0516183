"""The in-app inbox: the game's server gets a player token, the client reads that player's
delivered in-app messages and marks them read; another player's token, a forged or expired one,
or none at all, reads nothing."""

from __future__ import annotations

from tests.integration.notifier_fixtures import SEND, Notifier


def _token(notifier: Notifier, player: str) -> str:
    issued = notifier.http.post(f"/v1/games/{notifier.game_id}/players/{player}/inbox/token",
                                headers=notifier.auth(SEND))
    assert issued.status_code == 201, issued.text
    token: str = issued.json()["token"]
    assert token.startswith("gmp_")
    return token


def test_a_player_reads_and_marks_their_own_inbox(notifier: Notifier) -> None:
    notifier.template("welcome")
    ada, bob = notifier.player("ada"), notifier.player("bob")
    first = notifier.settled(notifier.send(ada, "welcome")["id"])["id"]
    second = notifier.settled(notifier.send(ada, "welcome", data={"name": "Ada", "level": 9})["id"])["id"]
    notifier.settled(notifier.send(bob, "welcome")["id"])
    inbox = f"/v1/games/{notifier.game_id}/players/{ada}/inbox"
    mine = {"Authorization": f"Bearer {_token(notifier, ada)}"}
    read = notifier.http.get(inbox, headers=mine)
    assert read.status_code == 200, read.text
    body = read.json()
    assert [m["id"] for m in body["messages"]] == [second, first] and body["unread"] == 2
    assert body["messages"][0]["title"] == "Level 9" and body["messages"][0]["read_at"] is None
    assert notifier.http.post(f"{inbox}/{first}/read", headers=mine).status_code == 204
    after = notifier.http.get(inbox, headers=mine).json()
    assert after["unread"] == 1 and [m["id"] for m in notifier.http.get(
        inbox + "?unread=true", headers=mine).json()["messages"]] == [second]
    # Bob's token opens Bob's inbox only.
    bobs = {"Authorization": f"Bearer {_token(notifier, bob)}"}
    assert notifier.http.get(inbox, headers=bobs).status_code == 403
    assert notifier.http.post(f"{inbox}/{second}/read", headers=bobs).status_code == 403
    assert len(notifier.http.get(f"/v1/games/{notifier.game_id}/players/{bob}/inbox",
                                 headers=bobs).json()["messages"]) == 1
    assert notifier.http.post(f"/v1/games/{notifier.game_id}/players/{bob}/inbox/{first}/read",
                              headers=bobs).status_code == 404
    forged = mine["Authorization"][:-4] + ("AAAA" if not mine["Authorization"].endswith("AAAA") else "BBBB")
    for headers in ({}, {"Authorization": forged}, notifier.auth(SEND), {"Authorization": "Basic eDp5"}):
        refused = notifier.http.get(inbox, headers=headers)
        assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers, headers
    assert notifier.http.post(f"/v1/games/{notifier.game_id}/players/nobody/inbox/token",
                              headers=notifier.auth(SEND)).status_code == 404
    assert notifier.http.post(f"/v1/games/{notifier.game_id}/players/{ada}/inbox/token",
                              headers=notifier.auth("players:read")).status_code == 403


def test_an_expired_player_token_is_refused(notifier: Notifier) -> None:
    from gamemetrics.auth.secret import derive, platform_secret
    from gamemetrics.services.notifier.player_tokens import PLAYER_TOKEN_PURPOSE, PlayerTokens

    player = notifier.player("old")
    tokens = PlayerTokens(derive(platform_secret(notifier.settings), PLAYER_TOKEN_PURPOSE), 60)
    expired = tokens.encode(tokens.issue(notifier.tenant_id, notifier.game_id, player, now=1_000_000.0))
    refused = notifier.http.get(f"/v1/games/{notifier.game_id}/players/{player}/inbox",
                                headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401 and "expired" in refused.json()["error"]
    fresh = tokens.encode(tokens.issue(notifier.tenant_id, notifier.game_id, player))
    assert notifier.http.get(f"/v1/games/{notifier.game_id}/players/{player}/inbox",
                             headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
