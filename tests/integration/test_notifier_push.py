"""Push and Web Push, from a device's registration to the provider, on a notifier whose settings
name FCM (behind its OAuth token endpoint) and a Web Push service (checking VAPID and decrypting
the payload), both on loopback; a dead token or expired subscription leaves the player's contact
points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.migrations import upgrade
from gamemetrics.settings import MailSettings
from tests.http_providers import ApnsServer, FcmServer, WebPushServer
from tests.integration.notifier_fixtures import SEND, WELCOME, Notifier, fast_settings
from tests.integration.users_fixtures import add_tenant

PUSHED: dict[str, Any] = {**WELCOME, "content": {**WELCOME["content"],
                                                 "push": {"title": "Level {{ level }}", "body": "Go, {{ name }}!"},
                                                 "web_push": {"title": "Hi {{ name }}", "body": "Come back"}}}


def test_push_and_web_push_reach_their_providers_and_dead_addresses_are_dropped(
        tmp_path: Path, database_url: str, fcm_server: FcmServer, web_push_server: WebPushServer) -> None:
    mail = MailSettings(**{**fcm_server.settings().model_dump(exclude_unset=True),
                           **web_push_server.settings().model_dump(exclude_unset=True)})
    settings = fast_settings(tmp_path, database_url).model_copy(update={"mail": mail})
    upgrade(database_url)
    ids = add_tenant(database_url)
    with TestClient(combined_app(settings, database_url, ["users", "notifier"])) as http:
        notifier = Notifier(http, settings, database_url, *ids)
        notifier.template("pushed", PUSHED)
        ada = notifier.player("ada")
        token = http.post(f"/v1/games/{notifier.game_id}/players/{ada}/inbox/token",
                          headers=notifier.auth(SEND)).json()["token"]
        devices = f"/v1/games/{notifier.game_id}/players/{ada}/devices"
        mine = {"Authorization": f"Bearer {token}"}
        assert http.post(devices, json={"kind": "push", "token": "device-1"}, headers=mine).status_code == 201
        browser = web_push_server.subscription("tab-1")
        assert http.post(devices, json={"kind": "web_push", "subscription": browser},
                         headers=notifier.auth(SEND)).status_code == 201
        for bad in ({"kind": "push"}, {"kind": "web_push", "subscription": {"endpoint": "ftp://x", "keys": {}}},
                    {"kind": "fax", "token": "x"},
                    {"kind": "web_push", "subscription": {**browser, "keys": {"p256dh": "abc", "auth": "def"}}}):
            assert http.post(devices, json=bad, headers=mine).status_code == 400, bad
        assert http.post(devices, json={"kind": "push", "token": "x"}).status_code == 401
        sent = notifier.settled(notifier.send(ada, "pushed", channels=["push", "web_push"])["id"])
        assert {c: s["state"] for c, s in sent["channels"].items()} == {"push": "sent", "web_push": "sent"}, sent
        [push] = fcm_server.received
        assert push["token"] == "device-1" and push["notification"] == {"title": "Level 7", "body": "Go, Ada!"}
        [web] = web_push_server.received
        assert (web["subscription"], web["title"], web["body"]) == ("tab-1", "Hi Ada", "Come back")
        # The device unregistered at FCM, the subscription expired: both refused for good and forgotten.
        assert http.post(devices, json={"kind": "push", "token": "dead-device"}, headers=mine).status_code == 201
        web_push_server.gone.add("tab-1")
        # Push goes to every device the player registered, a record each: the live one gets it.
        dead = notifier.settled(notifier.send(ada, "pushed", channels=["push", "web_push"])["id"])
        push = dead["channels"]["push"]
        assert push["state"] == "sent", push
        newest, older = push["devices"]
        assert newest["state"] == "failed" and "UNREGISTERED" in newest["reason"] and newest["attempts"] == 1
        assert older["state"] == "sent" and older["attempts"] == 1
        assert dead["channels"]["web_push"]["state"] == "failed" and "410" in dead["channels"]["web_push"]["reason"]
        assert [m["token"] for m in fcm_server.received] == ["device-1", "device-1"]
        assert notifier.sql("SELECT kind, address FROM notification_devices") == [("push", "device-1")]
        after = notifier.settled(notifier.send(ada, "pushed", channels=["push", "web_push"])["id"])
        assert after["channels"]["push"]["state"] == "sent" and "devices" not in after["channels"]["push"]
        assert after["channels"]["web_push"]["state"] == "suppressed"
        assert [m["token"] for m in fcm_server.received] == ["device-1", "device-1", "device-1"]
        assert http.request("DELETE", devices, json={"kind": "push", "token": "device-1"},
                            headers=mine).status_code == 204


def test_push_to_apple_devices_goes_through_apns_over_http2(
        tmp_path: Path, database_url: str, fcm_server: FcmServer, apns_server: ApnsServer) -> None:
    mail = MailSettings(**{**fcm_server.settings().model_dump(exclude_unset=True),
                           **apns_server.settings().model_dump(exclude_unset=True)})
    settings = fast_settings(tmp_path, database_url).model_copy(update={"mail": mail})
    upgrade(database_url)
    ids = add_tenant(database_url)
    with TestClient(combined_app(settings, database_url, ["users", "notifier"])) as http:
        notifier = Notifier(http, settings, database_url, *ids)
        notifier.template("pushed", PUSHED)
        iphone, android = notifier.player("iphone-user"), notifier.player("android-user")
        for player, device in ((iphone, {"token": "A1B2C3D4", "platform": "ios"}), (android, {"token": "fcm-1"})):
            registered = http.post(f"/v1/games/{notifier.game_id}/players/{player}/devices",
                                   json={"kind": "push", **device}, headers=notifier.auth(SEND))
            assert registered.status_code == 201, registered.text
        assert http.post(f"/v1/games/{notifier.game_id}/players/{iphone}/devices",
                         json={"kind": "push", "token": "not hex", "platform": "ios"},
                         headers=notifier.auth(SEND)).status_code == 400
        to_iphone = notifier.send(iphone, "pushed", channels=["push"])["id"]
        to_android = notifier.send(android, "pushed", channels=["push"])["id"]
        assert notifier.settled(to_iphone)["channels"]["push"]["state"] == "sent"
        assert notifier.settled(to_android)["channels"]["push"]["state"] == "sent"
        [apple] = apns_server.received
        assert apple["device"] == "a1b2c3d4" and apple["aps"]["alert"] == {"title": "Level 7", "body": "Go, Ada!"}
        assert apple["apns_id"] == notifier.sql("SELECT message_id::text FROM notification_deliveries"
                                                " WHERE notification_id = %s", (to_iphone,))[0][0]
        assert [m["token"] for m in fcm_server.received] == ["fcm-1"]
        apns_server.gone.add("a1b2c3d4")
        gone = notifier.settled(notifier.send(iphone, "pushed", channels=["push"])["id"])["channels"]["push"]
        assert gone["state"] == "failed" and "Unregistered" in gone["reason"] and gone["attempts"] == 1
        assert notifier.sql("SELECT player_id FROM notification_devices") == [(android,)]
