"""The notifier's API with the users service in one app: templates checked at save and previewed,
notifications sent once per idempotency key, delivered by the worker into the outbox, opt-outs and
the one-click unsubscribe link, refusals with their reasons, and the tenant from the token."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from gamemetrics.cli import app as cli_app
from tests.integration.notifier_fixtures import SEND, WELCOME, Notifier, new_key
from tests.integration.users_fixtures import add_tenant, basic


def test_templates_are_checked_at_save_and_previewed(notifier: Notifier) -> None:
    path = f"/v1/games/{notifier.game_id}/notification-templates"
    auth = notifier.auth(SEND)
    created = notifier.http.put(f"{path}/welcome", json=WELCOME, headers=auth)
    assert created.status_code == 201, created.text
    assert notifier.http.put(f"{path}/welcome", json=WELCOME, headers=auth).status_code == 200
    undefined = {**WELCOME, "content": {"email": {"subject": "Hi {{ nmae }}", "body": "x"}}}
    refused = notifier.http.put(f"{path}/typo", json=undefined, headers=auth)
    assert refused.status_code == 422 and "nmae" in refused.json()["error"], refused.text
    for bad, says in [
        ({**WELCOME, "content": {"fax": {"body": "x"}}}, "unknown channel"),
        ({**WELCOME, "content": {"email": {"subject": "no body"}}}, "needs a body"),
        ({**WELCOME, "locales": {}, "content": {"sms": {"body": "{{ ''.__class__.__mro__ }}"}}}, "unsafe"),
        ({**WELCOME, "locales": {}, "content": {"sms": {"body": "{% for %}"}}}, "line 1"),
        ({**WELCOME, "locales": {"fi": {"push": {"body": "x"}}}}, "content does not"),
        ({"content": WELCOME["content"]}, "category"),
    ]:
        answer = notifier.http.put(f"{path}/bad", json=bad, headers=auth)
        assert answer.status_code == 422 and says in answer.json()["error"], (bad, answer.text)
    assert notifier.http.get(f"{path}/bad", headers=auth).status_code == 404
    preview = notifier.http.post(f"{path}/welcome/preview", json={"data": {"name": "Linus"}, "locale": "fi-FI"},
                                 headers=auth)
    assert preview.status_code == 200, preview.text
    assert preview.json()["email"] == {"subject": "Tervetuloa, Linus", "body": "You reached level 3.\n"}
    assert preview.json()["in_app"] == {"title": "Level 3", "body": "Well played, Linus!"}
    english = notifier.http.post(f"{path}/welcome/preview", json={"locale": "de"}, headers=auth).json()
    assert english["email"]["subject"] == "Welcome, Ada"
    assert notifier.http.get(f"{path}/welcome", headers=notifier.auth("players:read")).status_code == 403
    _, foreign_game, _, _ = add_tenant(notifier.database_url)
    assert notifier.http.put(f"/v1/games/{foreign_game}/notification-templates/welcome", json=WELCOME,
                             headers=auth).status_code == 404


def test_a_notification_is_sent_once_per_idempotency_key(notifier: Notifier) -> None:
    notifier.template("welcome")
    player = notifier.player("hero-1", email="hero@studio.example", locale="fi")
    key = new_key()
    first = notifier.send(player, "welcome", key, channels=["in_app", "email"])
    again = notifier.send(player, "welcome", key, channels=["in_app", "email"])
    assert first["id"] == again["id"] and first["created"] and not again["created"]
    reused = notifier.http.post("/v1/notifications", headers={**notifier.auth(SEND), "Idempotency-Key": key}, json={
        "game_id": str(notifier.game_id), "player_id": player, "template": "welcome",
        "data": {"name": "Eve", "level": 1}, "channels": ["in_app", "email"]})
    assert reused.status_code == 422 and "different request" in reused.json()["error"], reused.text
    status = notifier.settled(first["id"])
    assert status["state"] == "sent"
    assert {c: s["state"] for c, s in status["channels"].items()} == {"email": "sent", "in_app": "sent"}
    assert status["channels"]["email"]["attempts"] == 1
    rows = notifier.sql("SELECT channel, recipient, subject, body, headers FROM outbox ORDER BY channel")
    assert [(r[0], r[1], r[2]) for r in rows] == [("email", "hero@studio.example", "Tervetuloa, Ada"),
                                                  ("in_app", "hero-1", "Level 7")]
    assert rows[0][4]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert notifier.sql("SELECT count(*) FROM notifications")[0][0] == 1


def test_opt_out_and_one_click_unsubscribe_suppress_email(notifier: Notifier) -> None:
    notifier.template("welcome")
    player = notifier.player("hero-2", email="two@studio.example", phone="+358 40 123 4567")
    sent = notifier.settled(notifier.send(player, "welcome", channels=["email", "sms"])["id"])
    assert sent["channels"]["email"]["state"] == "sent" and sent["channels"]["sms"]["state"] == "sent"
    assert notifier.sql("SELECT recipient FROM outbox WHERE channel = 'sms'") == [("+358401234567",)]
    link = notifier.sql("SELECT headers->>'List-Unsubscribe' FROM outbox WHERE channel = 'email'")[0][0]
    path = link.strip("<>").removeprefix("http://127.0.0.1:8000")
    assert notifier.http.post(path + "x", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    one_click = notifier.http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200, one_click.text
    later = notifier.settled(notifier.send(player, "welcome", channels=["email", "sms"])["id"])
    assert later["channels"]["email"] == {"state": "suppressed", "reason": "opted out of lifecycle by email",
                                          "attempts": 0}
    assert later["channels"]["sms"]["state"] == "sent"
    prefs = f"/v1/games/{notifier.game_id}/players/{player}/notification-preferences"
    choices = notifier.http.get(prefs, headers=notifier.auth(SEND)).json()
    assert choices == {"categories": {"lifecycle": {"email": False}}, "quiet_hours": None, "daily_cap": {}}
    put = notifier.http.put(prefs, json={"categories": {"lifecycle": {"sms": False}}}, headers=notifier.auth(SEND))
    assert put.status_code == 200, put.text
    last = notifier.settled(notifier.send(player, "welcome", channels=["email", "sms"])["id"])
    assert last["channels"]["email"]["state"] == "sent" and last["channels"]["sms"]["state"] == "suppressed"
    assert notifier.http.put(prefs, json={"categories": {"lifecycle": {"fax": False}}},
                             headers=notifier.auth(SEND)).status_code == 400


def test_auto_picks_a_reachable_channel_and_missing_contact_points_are_suppressed(notifier: Notifier) -> None:
    notifier.template("welcome")
    nobody = notifier.player("quiet-one")
    auto = notifier.settled(notifier.send(nobody, "welcome", channels="auto")["id"])
    assert list(auto["channels"]) == ["in_app"] and auto["state"] == "sent"
    mailed = notifier.player("mailed", email="m@studio.example")
    assert list(notifier.settled(notifier.send(mailed, "welcome", channels="auto")["id"])["channels"]) == ["email"]
    status = notifier.settled(notifier.send(nobody, "welcome", channels=["email", "sms"])["id"])
    assert status["state"] == "suppressed"
    assert status["channels"]["email"]["reason"] == "no contact point: the profile has no email trait"
    broken = notifier.player("broken", email="not-an-address")
    failed = notifier.settled(notifier.send(broken, "welcome", channels=["email"])["id"])
    assert failed["channels"]["email"]["state"] == "failed" and "invalid email" in failed["channels"]["email"]["reason"]


def test_bad_requests_are_refused_with_reasons(notifier: Notifier) -> None:
    notifier.template("welcome")
    player = notifier.player("hero-3")
    auth = notifier.auth(SEND)
    base = {"game_id": str(notifier.game_id), "player_id": player, "template": "welcome",
            "data": {"name": "Ada", "level": 1}, "channels": ["in_app"]}
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for change, status, says in [
        ({"template": "nope"}, 404, "no template"),
        ({"player_id": "ghost"}, 404, "no player"),
        ({"send_at": past}, 422, "in the past"),
        ({"channels": ["fax"]}, 400, "unknown channels"),
        ({"channels": []}, 400, "channels"),
        ({"data": {"name": "Ada"}}, 422, "level"),
        ({"tenant_id": str(notifier.tenant_id)}, 400, ""),
        ({"game_id": "not-a-uuid"}, 400, "game_id"),
    ]:
        answer = notifier.http.post("/v1/notifications", json={**base, **change}, headers=auth)
        assert answer.status_code == status and says in answer.json()["error"], (change, answer.text)
    assert notifier.http.post("/v1/notifications", json=base, headers=notifier.auth("players:write")).status_code == 403
    assert notifier.http.post("/v1/notifications", json=base).status_code == 401
    assert notifier.sql("SELECT count(*) FROM notifications")[0][0] == 0
    # A notification of another tenant is not there for this token.
    other_tenant, other_game, client_id, secret = add_tenant(notifier.database_url)
    mine = notifier.send(player, "welcome")["id"]
    token = notifier.http.post("/oauth/token", data={"grant_type": "client_credentials", "scope": SEND},
                               headers=basic(client_id, secret)).json()["access_token"]
    assert notifier.http.get(f"/v1/notifications/{mine}",
                             headers={"Authorization": f"Bearer {token}"}).status_code == 404
    foreign = {**base, "game_id": str(other_game)}
    assert notifier.http.post("/v1/notifications", json=foreign, headers=auth).status_code == 404


def test_send_at_defers_until_then(notifier: Notifier) -> None:
    notifier.template("welcome")
    player = notifier.player("hero-4")
    soon = datetime.now(UTC) + timedelta(seconds=2)
    notification = notifier.send(player, "welcome", send_at=soon.isoformat())["id"]
    status = notifier.status(notification)
    assert status["state"] == "deferred" and status["channels"]["in_app"]["state"] == "deferred"
    assert datetime.fromisoformat(status["channels"]["in_app"]["deferred_until"]) == soon
    sent = notifier.settled(notification)
    assert sent["state"] == "sent"
    assert datetime.fromisoformat(sent["channels"]["in_app"]["sent_at"]) >= soon


def test_cli_lists_the_outbox_and_the_given_up_and_replays(notifier: Notifier) -> None:
    notifier.template("welcome")
    player = notifier.player("hero-5")
    notification = notifier.send(player, "welcome")["id"]
    notifier.settled(notification)
    env = {"GAMEMETRICS_DATABASE_URL": notifier.database_url, "GAMEMETRICS_DATA_DIR": str(notifier.settings.data_dir)}
    listed = CliRunner().invoke(cli_app, ["notifications", "outbox", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.output.splitlines()]
    assert (row["channel"], row["recipient"], row["subject"], row["body"]) == ("in_app", "hero-5", "Level 7",
                                                                               "Well played, Ada!")
    table = CliRunner().invoke(cli_app, ["notifications", "outbox"], env=env)
    assert table.exit_code == 0 and "Well played, Ada!" in table.output
    # A delivery the worker gave up (as after a provider's permanent refusal), then replayed.
    notifier.sql("UPDATE notification_deliveries SET state = 'failed', reason = '550 no such mailbox', attempts = 1,"
                 " sent_at = NULL WHERE notification_id = %s", (notification,))
    notifier.sql("DELETE FROM outbox")
    dlq = CliRunner().invoke(cli_app, ["notifications", "dlq", "--json"], env=env)
    assert dlq.exit_code == 0, dlq.output
    [letter] = [json.loads(line) for line in dlq.output.splitlines()]
    assert letter["notification_id"] == notification and letter["reason"] == "550 no such mailbox"
    replayed = CliRunner().invoke(cli_app, ["notifications", "replay", notification], env=env)
    assert replayed.exit_code == 0 and "queued 1" in replayed.output, replayed.output
    assert notifier.settled(notification)["channels"]["in_app"]["state"] == "sent"
    assert notifier.sql("SELECT recipient FROM outbox") == [("hero-5",)]
    again = CliRunner().invoke(cli_app, ["notifications", "replay", notification], env=env)
    assert again.exit_code == 1 and "no given-up delivery" in again.output
    assert CliRunner().invoke(cli_app, ["notifications", "replay", "nope"], env=env).exit_code == 1


def test_quiet_hours_defer_then_send_and_critical_templates_bypass_them(notifier: Notifier) -> None:
    notifier.template("welcome")
    notifier.template("security", {**WELCOME, "category": "account", "critical": True})
    player = notifier.player("night-owl")
    now = datetime.now(UTC)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M:%S"),
             "end": (now + timedelta(seconds=3)).strftime("%H:%M:%S"), "timezone": "UTC"}
    prefs = f"/v1/games/{notifier.game_id}/players/{player}/notification-preferences"
    assert notifier.http.put(prefs, json={"quiet_hours": quiet}, headers=notifier.auth(SEND)).status_code == 200
    deferred = notifier.send(player, "welcome")["id"]
    urgent = notifier.send(player, "security")["id"]
    status = notifier.status(deferred)
    assert status["channels"]["in_app"]["state"] == "deferred", status
    until = datetime.fromisoformat(status["channels"]["in_app"]["deferred_until"])
    assert abs((until - (now + timedelta(seconds=3))).total_seconds()) < 1.0
    assert notifier.settled(urgent)["state"] == "sent"  # critical: not held by quiet hours
    assert notifier.status(deferred)["state"] == "deferred"
    sent = notifier.settled(deferred)
    assert sent["state"] == "sent" and datetime.fromisoformat(sent["channels"]["in_app"]["sent_at"]) >= until


def test_daily_caps_suppress_beyond_the_cap_but_not_critical_and_opt_out_binds_critical(notifier: Notifier) -> None:
    notifier.template("welcome")
    notifier.template("security", {**WELCOME, "category": "account", "critical": True})
    player = notifier.player("busy")
    prefs = f"/v1/games/{notifier.game_id}/players/{player}/notification-preferences"
    assert notifier.http.put(prefs, json={"daily_cap": {"in_app": 2}}, headers=notifier.auth(SEND)).status_code == 200
    states = [notifier.settled(notifier.send(player, "welcome")["id"])["channels"]["in_app"] for _ in range(3)]
    assert [s["state"] for s in states] == ["sent", "sent", "suppressed"]
    assert states[2]["reason"] == "capped: 2 in_app messages a day"
    assert notifier.settled(notifier.send(player, "security")["id"])["state"] == "sent"
    assert notifier.http.put(prefs, json={"categories": {"account": {"in_app": False}}},
                             headers=notifier.auth(SEND)).status_code == 200
    opted = notifier.settled(notifier.send(player, "security")["id"])["channels"]["in_app"]
    assert opted["state"] == "suppressed" and opted["reason"] == "opted out of account by in_app"
    bad = notifier.http.put(prefs, json={"quiet_hours": {"start": "22:00", "end": "8", "timezone": "UTC"}},
                            headers=notifier.auth(SEND))
    assert bad.status_code == 400 and "HH:MM" in bad.json()["error"]


def test_export_answers_what_the_notifier_holds_about_a_player(notifier: Notifier) -> None:
    notifier.template("welcome")
    player = notifier.player("exported", email="ex@studio.example")
    prefs = f"/v1/games/{notifier.game_id}/players/{player}/notification-preferences"
    notifier.http.put(prefs, json={"categories": {"news": {"sms": False}}}, headers=notifier.auth(SEND))
    sent = notifier.settled(notifier.send(player, "welcome", channels=["email", "in_app"])["id"])
    notifier.send(notifier.player("someone-else"), "welcome")
    path = f"/v1/games/{notifier.game_id}/players/{player}/notification-data"
    assert notifier.http.get(path, headers=notifier.auth(SEND)).status_code == 403
    exported = notifier.http.get(path, headers=notifier.auth("players:read"))
    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert body["preferences"]["categories"] == {"news": {"sms": False}}
    [notification] = body["notifications"]
    assert notification["id"] == sent["id"]
    assert [(c["channel"], c["recipient"], c["subject"]) for c in notification["channels"]] == [
        ("email", "ex@studio.example", "Welcome, Ada"), ("in_app", "exported", "Level 7")]



def test_a_send_window_bounds_quiet_hours_and_is_checked(notifier: Notifier) -> None:
    notifier.template("welcome")
    player = notifier.player("sleeper")
    now = datetime.now(UTC)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": (now + timedelta(hours=2)).strftime("%H:%M"),
             "timezone": "UTC"}
    prefs = f"/v1/games/{notifier.game_id}/players/{player}/notification-preferences"
    assert notifier.http.put(prefs, json={"quiet_hours": quiet}, headers=notifier.auth(SEND)).status_code == 200
    # The window closes while the player sleeps: dropped with the reason, never sent after it.
    short = notifier.settled(notifier.send(player, "welcome",
                                           send_until=(now + timedelta(minutes=30)).isoformat())["id"])
    assert short["channels"]["in_app"]["state"] == "suppressed", short
    assert "outlast the send window" in short["channels"]["in_app"]["reason"]
    # The window outlasts the quiet hours: deferred until they end.
    until = now + timedelta(hours=3)
    long = notifier.status(notifier.send(player, "welcome", send_until=until.isoformat())["id"])
    assert long["channels"]["in_app"]["state"] == "deferred" and datetime.fromisoformat(long["send_until"]) == until
    body = {"game_id": str(notifier.game_id), "player_id": player, "template": "welcome", "data": {"name": "A"},
            "channels": ["in_app"]}
    for window, status, words in (
            ({"send_until": (now - timedelta(minutes=1)).isoformat()}, 422, "in the past"),
            ({"send_at": (now + timedelta(hours=2)).isoformat(), "send_until": (now + timedelta(hours=1)).isoformat()},
             422, "not after send_at"),
            ({"send_until": "2030-01-01T00:00:00"}, 400, "time zone")):
        refused = notifier.http.post("/v1/notifications", json={**body, **window}, headers=notifier.auth(SEND))
        assert refused.status_code == status and words in refused.json()["error"], refused.text


def test_a_bulk_send_keeps_the_good_notifications_and_says_why_of_each_bad_one(notifier: Notifier) -> None:
    notifier.template("welcome")
    hero = notifier.player("bulk-hero", email="bulk@studio.example")
    auth = notifier.auth(SEND)
    _, foreign_game, _, _ = add_tenant(notifier.database_url)

    def item(key: str, **change: object) -> dict[str, object]:
        return {"game_id": str(notifier.game_id), "player_id": hero, "template": "welcome",
                "data": {"name": "Ada", "level": 2}, "channels": ["in_app", "email"], "idempotency_key": key,
                **change}

    first, second = new_key(), new_key()
    items = [item(first), item("k-ghost", player_id="ghost"), item("k-tpl", template="nope"), "not an object",
             item("k-tenant", tenant_id=str(notifier.tenant_id)), item("k-data", data={"name": "Ada"}),
             item("k-foreign", game_id=str(foreign_game)), item(first), item(second, channels=["in_app"]),
             item("k-key", idempotency_key=7), item(first, data={"name": "Eve", "level": 1})]
    answer = notifier.http.post("/v1/notifications/bulk", json={"notifications": items}, headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    results = body["results"]
    assert [r["status"] for r in results] == [202, 404, 404, 400, 400, 422, 404, 202, 202, 400, 422], results
    assert body["accepted"] == 3 and body["refused"] == 8
    assert "no player" in results[1]["error"] and "no template" in results[2]["error"]
    assert "tenant comes from the token" in results[4]["error"] and "level" in results[5]["error"]
    assert "different request" in results[10]["error"] and "idempotency_key" in results[9]["error"]
    # The same key twice in one bulk send is one notification, as two single sends would be.
    assert results[0]["id"] == results[7]["id"] and {results[0]["created"], results[7]["created"]} == {True, False}
    assert results[8]["created"] and results[8]["id"] != results[0]["id"]
    assert notifier.settled(results[0]["id"])["channels"]["email"]["state"] == "sent"
    assert notifier.settled(results[8]["id"])["state"] == "sent"
    assert notifier.sql("SELECT count(*) FROM notifications")[0][0] == 2
    # Sending the bulk again sends nothing more.
    again = notifier.http.post("/v1/notifications/bulk", json={"notifications": items[:1] + items[8:9]}, headers=auth)
    assert [(r["status"], r["created"]) for r in again.json()["results"]] == [(202, False), (202, False)]
    assert notifier.sql("SELECT count(*) FROM outbox")[0][0] == 3
    for body_sent, status, says in [
        ({"notifications": []}, 400, "notifications"),
        ([item(new_key())], 400, "notifications"),
        ({"notifications": [item(new_key())], "extra": 1}, 400, "notifications"),
        ({"notifications": [item(new_key()) for _ in range(101)]}, 413, "at most 100"),
    ]:
        refused = notifier.http.post("/v1/notifications/bulk", json=body_sent, headers=auth)
        assert refused.status_code == status and says in refused.json()["error"], refused.text
    keyed = notifier.http.post("/v1/notifications/bulk", json={"notifications": [item(new_key())]},
                               headers={**auth, "Idempotency-Key": new_key()})
    assert keyed.status_code == 400 and "its own idempotency_key" in keyed.json()["error"]
    assert notifier.http.post("/v1/notifications/bulk", json={"notifications": items[:1]},
                              headers=notifier.auth("players:write")).status_code == 403
    assert notifier.sql("SELECT count(*) FROM notifications")[0][0] == 2
