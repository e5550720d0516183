"""A player's GDPR export from the users service carries the notifier's part: preferences,
devices, notifications with each channel's text and state, the inbox and the outbox copies; and
nothing of another player's."""

from __future__ import annotations

from tests.integration.notifier_fixtures import SEND, Notifier


def test_the_players_export_includes_what_the_notifier_holds(notifier: Notifier) -> None:
    notifier.template("welcome")
    ada = notifier.player("ada", email="ada@studio.example")
    game = notifier.game_id
    prefs = notifier.http.put(f"/v1/games/{game}/players/{ada}/notification-preferences",
                              json={"categories": {"news": {"sms": False}}, "daily_cap": {"email": 5}},
                              headers=notifier.auth(SEND))
    assert prefs.status_code == 200, prefs.text
    device = notifier.http.post(f"/v1/games/{game}/players/{ada}/devices", json={"kind": "push", "token": "ada-phone"},
                                headers=notifier.auth(SEND))
    assert device.status_code == 201, device.text
    sent = notifier.settled(notifier.send(ada, "welcome", channels=["email", "in_app"])["id"])
    other = notifier.settled(notifier.send(notifier.player("bob", email="bob@studio.example"), "welcome")["id"])

    response = notifier.http.get(f"/v1/games/{game}/players/{ada}/export", headers=notifier.auth("players:read"))
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["profile"]["traits"]["email"] == "ada@studio.example"
    part = document["notifier"]
    assert part["preferences"]["categories"] == {"news": {"sms": False}}
    assert part["preferences"]["daily_cap"] == {"email": 5}
    assert [(d["kind"], d["address"]) for d in part["devices"]] == [("push", "ada-phone")]
    [notification] = part["notifications"]
    assert notification["id"] == sent["id"] and notification["template"] == "welcome"
    assert [(c["channel"], c["state"], c["recipient"], c["subject"]) for c in notification["channels"]] == [
        ("email", "sent", "ada@studio.example", "Welcome, Ada"), ("in_app", "sent", "ada", "Level 7")]
    [message] = part["inbox"]
    assert (message["id"], message["title"], message["body"], message["read_at"]) == (
        sent["id"], "Level 7", "Well played, Ada!", None)
    assert sorted((o["channel"], o["recipient"]) for o in part["outbox"]) == [
        ("email", "ada@studio.example"), ("in_app", "ada")]
    assert other["id"] not in response.text and "bob@studio.example" not in response.text
