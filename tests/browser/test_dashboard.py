"""The dashboard in Chromium: login, the overview against the GraphQL API, the live panel while
events arrive, write keys, erasure, and the role and tenant walls."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from gamemetrics.adapters.pglog.bus import PgLogBus
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.events.envelope import partition_key
from gamemetrics.ports.bus import RAW_EVENTS, Message
from gamemetrics.web.graphiql_assets import asset_paths
from tests.browser.conftest import Dashboard, Operators, operator_token
from tests.e2e.conftest import BUS_PARTITIONS, RunningPlatform, new_event

OVERVIEW = """query ($g: ID!, $from: Date!, $to: Date!) {
  dau: activeUsers(gameId: $g, from: $from, to: $to, window: DAY) { value }
  wau: activeUsers(gameId: $g, from: $from, to: $to, window: WEEK) { value }
  mau: activeUsers(gameId: $g, from: $from, to: $to, window: MONTH) { value }
  newPlayers(gameId: $g, from: $from, to: $to) { value }
  revenue(gameId: $g, from: $from, to: $to) { gross payers dau }
  sessions(gameId: $g, from: $from, to: $to) { sessions }
}"""


def _send_players(platform: RunningPlatform, tag: str, players: int) -> list[str]:
    """A session start for each new player and a purchase by every other one, all through ingest."""
    events, names = [], [f"{tag}-{n}" for n in range(players)]
    for n, player in enumerate(names):
        events.append(new_event("session_start", player, session_id=f"s-{player}"))
        if n % 2 == 0:
            events.append(new_event("purchase", player, session_id=f"s-{player}",
                                    properties={"item_id": "gems", "price": 4.99, "currency": "USD"}))
    platform.send(events)
    return names


def _graphql(platform: RunningPlatform, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{platform.base_url}/graphql", json={"query": query, "variables": variables},
                        headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert "errors" not in answer, answer
    return dict(answer["data"])


def _tile(dashboard: Dashboard, key: str) -> float:
    value = dashboard.driver.find_element(By.ID, f"tile-{key}").get_attribute("data-value")
    assert value not in (None, ""), f"tile {key} shows no number"
    return float(value)


def test_a_wrong_password_says_not_which_half_and_the_overview_needs_a_login(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    dashboard.open(f"/dashboard/games/{platform.game_id}")
    assert dashboard.driver.current_url.endswith("/dashboard/login"), "an anonymous visit goes to the login page"
    dashboard.log_in(operators.admin, "not the password at all")
    assert dashboard.text("error") == "wrong email or password"
    dashboard.log_in(f"nobody-{uuid.uuid4().hex[:6]}@studio.test", "not the password at all")
    assert dashboard.text("error") == "wrong email or password"
    dashboard.shot("login")
    # An API-style request without a session gets 401, not a login page.
    live = httpx.get(f"{platform.base_url}/dashboard/games/{platform.game_id}/live",
                     headers={"Accept": "application/json"}, timeout=10)
    assert live.status_code == 401
    assert httpx.get(f"{platform.base_url}/", timeout=10).headers["location"] == "/dashboard/"


def test_the_overview_shows_the_graphql_numbers_of_its_range(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    _send_players(platform, f"ov-{uuid.uuid4().hex[:6]}", 6)
    platform.wait_drained()
    dashboard.log_in(operators.admin)
    dashboard.wait(lambda d: "/dashboard/games/" in d.current_url, "the overview after login")
    dashboard.open(f"/dashboard/games/{platform.game_id}?range=7d", shot="overview")
    today = datetime.now(UTC).date()
    data = _graphql(platform, operator_token(platform, operators.admin), OVERVIEW,
                    {"g": platform.game_id, "from": str(today - timedelta(days=6)), "to": str(today)})
    dau = [d["value"] for d in data["dau"]]
    gross = sum(float(d["gross"]) for d in data["revenue"])
    payers = sum(d["payers"] for d in data["revenue"])
    active = sum(d["dau"] for d in data["revenue"])
    assert _tile(dashboard, "dau") == sum(dau) / 7
    assert _tile(dashboard, "wau") == data["wau"][-1]["value"]
    assert _tile(dashboard, "mau") == data["mau"][-1]["value"]
    assert _tile(dashboard, "new_players") == sum(d["value"] for d in data["newPlayers"]) >= 6
    assert abs(_tile(dashboard, "revenue") - gross) < 1e-9 and gross >= 3 * 4.99 - 1e-9
    assert abs(_tile(dashboard, "conversion") - payers / active) < 1e-12
    assert abs(_tile(dashboard, "arppu") - gross / payers) < 1e-9
    assert _tile(dashboard, "sessions") == sum(d["sessions"] for d in data["sessions"])
    # A range the API would refuse is a message on the page, not a stack trace.
    dashboard.open(f"/dashboard/games/{platform.game_id}?range=custom&from={today}&to={today - timedelta(days=3)}")
    assert "before it starts" in dashboard.text("message-text")
    dashboard.open(f"/dashboard/games/{platform.game_id}?range=custom&from=2015-01-01&to={today}")
    assert "at most 366 days" in dashboard.text("message-text")
    csv = dashboard.driver.execute_script(
        "return fetch(arguments[0]).then(r => r.text())",
        f"/dashboard/games/{platform.game_id}/charts/dau.csv?range=7d")
    lines = csv.strip().splitlines()
    assert lines[0] == "date,dau" and len(lines) == 8 and [float(x.split(",")[1]) for x in lines[1:]] == dau


def test_the_live_counter_rises_while_events_arrive(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    dashboard.log_in(operators.analyst)
    dashboard.open(f"/dashboard/games/{platform.game_id}?range=today")

    def shown(driver: Any) -> int | None:
        value = driver.find_element(By.ID, "live-last-minute").get_attribute("data-value")
        return int(value) if value else None

    dashboard.wait(lambda d: shown(d) is not None, "the live panel's first figure")
    before = shown(dashboard.driver)
    assert before is not None
    url = dashboard.driver.current_url
    platform.send([new_event("custom", f"live-{n}", name="tick") for n in range(40)])
    dashboard.wait(lambda d: (shown(d) or 0) >= before + 40, "the live counter to count 40 more events")
    assert dashboard.driver.current_url == url, "the figure changed without a reload"
    dashboard.shot("overview-live")
    csv = str(dashboard.driver.execute_script("return fetch(arguments[0]).then(r => r.text())",
                                              dashboard.driver.find_element(By.ID, "live-csv").get_attribute("href")))
    lines = csv.strip().splitlines()
    assert lines[0] == "minute,events" and sum(int(line.split(",")[1]) for line in lines[1:]) >= before + 40, csv


def test_revoking_a_key_in_the_dashboard_makes_ingest_refuse_it(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    dashboard.log_in(operators.admin)
    dashboard.open(f"/dashboard/games/{platform.game_id}/keys")
    dashboard.driver.find_element(By.ID, "key-environment").clear()
    dashboard.driver.find_element(By.ID, "key-environment").send_keys("browser")
    dashboard.driver.find_element(By.ID, "create-key").click()
    dashboard.wait(lambda d: d.find_elements(By.ID, "new-key"), "the new key")
    secret = dashboard.text("new-key")
    dashboard.shot("write-keys")
    assert platform.post("/v1/events", {"events": [new_event()]}, key=secret).status_code == 200
    dashboard.open(f"/dashboard/games/{platform.game_id}/keys")
    assert secret not in dashboard.driver.page_source, "a key is shown once, when it is made"
    row = next(r for r in dashboard.driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr")
               if secret.startswith(str(r.get_attribute("data-prefix"))))
    row.find_element(By.CSS_SELECTOR, "button.revoke").click()
    dashboard.driver.switch_to.alert.accept()
    dashboard.wait(lambda d: "/keys" in d.current_url and "revoked" in d.page_source, "the key to show revoked")

    def refused() -> bool:
        return platform.post("/v1/events", {"events": [new_event()]}, key=secret).status_code == 401

    platform.wait_for(refused, "ingest to refuse the revoked key")


def test_erasing_a_player_from_the_dashboard_completes_in_every_store(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    player = _send_players(platform, f"gone-{uuid.uuid4().hex[:6]}", 1)[0]
    platform.wait_drained()
    dashboard.log_in(operators.admin)
    dashboard.open(f"/dashboard/games/{platform.game_id}/players?q={player}", shot="players")
    dashboard.driver.find_element(By.LINK_TEXT, player).click()
    dashboard.wait(lambda d: d.find_elements(By.ID, "player-id"), "the player's page")
    assert dashboard.text("player-id") == player and dashboard.text("player-events") == "2"
    dashboard.shot("player")
    dashboard.driver.find_element(By.ID, "erase").click()
    dashboard.wait(lambda d: d.find_elements(By.ID, "message-text"), "the page refusing an unconfirmed erasure")
    assert "type the player's id" in dashboard.text("message-text"), "an erasure needs its confirmation"
    dashboard.driver.back()
    dashboard.driver.find_element(By.ID, "erase-confirm").send_keys(player)
    dashboard.driver.find_element(By.ID, "erase").click()
    dashboard.wait(lambda d: d.find_element(By.ID, "erasure-state").text == "completed", "the erasure to complete")
    states = [e.text for e in dashboard.driver.find_elements(By.CSS_SELECTOR, "#stores .store-state")]
    assert states and all(not s.startswith("pending") for s in states), states
    dashboard.shot("erasure")
    assert platform.player(player) is None
    dashboard.open(f"/dashboard/games/{platform.game_id}/players/{player}")
    assert dashboard.driver.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert player in dashboard.text("message-text")


def test_another_tenants_game_is_not_found_and_an_analyst_manages_nothing(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    dashboard.log_in(operators.other_admin)
    dashboard.open(f"/dashboard/games/{platform.game_id}", shot="not-found")
    assert dashboard.driver.find_element(By.TAG_NAME, "h1").text == "Not found"
    dashboard.open(f"/dashboard/games/{operators.other_game}")
    assert dashboard.driver.find_elements(By.ID, "tile-dau"), "its own game shows"
    dashboard.log_in(operators.analyst)
    dashboard.open(f"/dashboard/games/{platform.game_id}")
    assert not dashboard.driver.find_elements(By.ID, "nav-keys"), "an analyst is offered no management"
    dashboard.open(f"/dashboard/games/{platform.game_id}/keys")
    assert dashboard.driver.find_element(By.TAG_NAME, "h1").text == "Not allowed"
    # A revoke posted by hand with the analyst's own session and CSRF token: 403, the key stays live.
    key_id = platform.doomed_key["key_id"]
    status = dashboard.driver.execute_script(
        "const body = new URLSearchParams({csrf: arguments[1]});"
        "return fetch(arguments[0], {method: 'POST', body}).then(r => r.status)",
        f"/dashboard/games/{platform.game_id}/keys/{key_id}/revoke", _csrf(dashboard))
    assert status == 403
    assert platform.post("/v1/events", {"events": [new_event()]}, key=platform.doomed_key["write_key"]).status_code \
        == 200
    # A form without the session's CSRF token is refused whatever the role.
    dashboard.log_in(operators.admin)
    dashboard.open(f"/dashboard/games/{platform.game_id}")
    status = dashboard.driver.execute_script(
        "return fetch(arguments[0], {method: 'POST', body: new URLSearchParams({csrf: 'forged'})}).then(r => r.status)",
        f"/dashboard/games/{platform.game_id}/keys/{key_id}/revoke")
    assert status == 403
    dashboard.driver.find_element(By.ID, "logout").click()
    dashboard.open(f"/dashboard/games/{platform.game_id}")
    assert dashboard.driver.current_url.endswith("/dashboard/login"), "logged out"


def _csrf(dashboard: Dashboard) -> str:
    return str(dashboard.driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value"))


def test_retention_funnels_and_the_events_tail(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    tag = f"fn-{uuid.uuid4().hex[:6]}"
    players = _send_players(platform, tag, 4)
    platform.wait_drained()
    dashboard.log_in(operators.analyst)
    dashboard.open(f"/dashboard/games/{platform.game_id}/retention?range=7d", shot="retention")
    rows = dashboard.driver.find_elements(By.CSS_SELECTOR, "#retention tbody tr")
    today = str(datetime.now(UTC).date())
    cohort = next(r for r in rows if r.find_elements(By.TAG_NAME, "td")[0].text == today)
    cells = cohort.find_elements(By.TAG_NAME, "td")
    assert int(cells[1].text) >= 4 and cells[2].text == "100%", "today's cohort is all active on day 0"
    # A funnel: every new player started a session, half of them bought.
    dashboard.open(f"/dashboard/games/{platform.game_id}/funnel")
    steps = dashboard.driver.find_element(By.ID, "funnel-steps")
    steps.clear()
    dashboard.driver.find_element(By.ID, "funnel-go").click()
    dashboard.wait(lambda d: d.find_elements(By.ID, "funnel-error"), "the empty funnel's message")
    assert "at least one step" in dashboard.text("funnel-error")
    dashboard.driver.find_element(By.ID, "funnel-steps").send_keys("session_start\npurchase")
    dashboard.driver.find_element(By.ID, "funnel-go").click()
    dashboard.wait(lambda d: d.find_elements(By.ID, "funnel"), "the funnel")
    dashboard.shot("funnel")
    shown = [int(e.text) for e in dashboard.driver.find_elements(By.CSS_SELECTOR, "#funnel .players")]
    answer = _graphql(platform, operator_token(platform, operators.analyst),
                      "query ($g: ID!, $from: Date!, $to: Date!) { funnel(gameId: $g, from: $from, to: $to,"
                      " steps: [{event: \"session_start\"}, {event: \"purchase\"}]) { players } }",
                      {"g": platform.game_id, "from": str(datetime.now(UTC).date() - timedelta(days=29)),
                       "to": today})
    assert shown == [s["players"] for s in answer["funnel"]]
    # The tail: filtered by player, and still while paused.
    dashboard.open(f"/dashboard/games/{platform.game_id}/events")
    dashboard.driver.find_element(By.ID, "tail-player").send_keys(players[0])
    dashboard.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tail .tail-row")) == 2,
                   "the player's two events in the tail")
    dashboard.shot("events")
    dashboard.driver.find_element(By.ID, "tail-pause").click()
    platform.send([new_event("custom", players[0], name="after-pause")])
    platform.wait_drained()
    time.sleep(2.5)  # more than two of the tail's refreshes
    assert len(dashboard.driver.find_elements(By.CSS_SELECTOR, "#tail .tail-row")) == 2, "paused"
    dashboard.driver.find_element(By.ID, "tail-pause").click()
    dashboard.wait(lambda d: "after-pause" in d.find_element(By.ID, "tail").text, "the tail to resume")


def _send_raw(platform: RunningPlatform, envelope: bytes, player: str) -> None:
    """Append one envelope to player.events.raw through the embedded bus, as ingest would."""
    async def send() -> None:
        pool = await open_pool(platform.database_url, max_size=2, name="browser-test")
        try:
            bus = PgLogBus(platform.database_url, pool, {RAW_EVENTS: BUS_PARTITIONS})
            producer = bus.producer()
            await producer.send(RAW_EVENTS, [Message(partition_key(uuid.UUID(platform.tenant_id), player), envelope)])
            await producer.close()
        finally:
            await pool.close()

    asyncio.run(send())


def test_a_dead_letter_is_shown_with_its_payload_and_replayed_once(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    # An event whose envelope was received an hour before its own timestamp (a skewed clock
    # upstream): the processor dead-letters it as a future event; replayed now, it is on time.
    player, event = f"dlq-{uuid.uuid4().hex[:6]}", new_event("custom", name="late-clock")
    event["player_id"] = player
    received = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    envelope = json.dumps({"tenant_id": platform.tenant_id, "game_id": platform.game_id, "received_at": received,
                           "event": event, "source": "live", "schema_version": 1}).encode()
    _send_raw(platform, envelope, player)
    letter = platform.dead_letters([event["event_id"]])[event["event_id"]]
    assert "in the future" in letter["reason"]
    kind = "timestamp <time> is more than N minutes in the future"
    dashboard.log_in(operators.analyst)
    dashboard.open(f"/dashboard/games/{platform.game_id}/quality")
    dashboard.driver.find_element(By.LINK_TEXT, kind).click()
    dashboard.wait(lambda d: d.find_elements(By.ID, f"letter-{letter['id']}"), "the letters of the reason")
    row = dashboard.driver.find_element(By.ID, f"letter-{letter['id']}")
    assert event["event_id"] in row.text and not row.find_elements(By.CSS_SELECTOR, "input.pick"), \
        "an analyst reads letters and replays none"
    assert player in row.find_element(By.TAG_NAME, "pre").get_attribute("textContent")
    dashboard.log_in(operators.admin)
    dashboard.open(f"/dashboard/games/{platform.game_id}/quality?reason={quote(kind)}")
    dashboard.driver.find_element(By.CSS_SELECTOR, f"#letter-{letter['id']} input.pick").click()
    csrf = _csrf(dashboard)
    dashboard.driver.find_element(By.ID, "replay").click()
    dashboard.wait(lambda d: d.find_elements(By.ID, "replayed"), "the replay's notice")
    assert dashboard.text("replayed").startswith("1 letter(s)")
    dashboard.shot("data-quality")
    assert platform.stored([event["event_id"]]), "the replayed event is stored"
    # The same letter posted again (a second click, a second operator): nothing is sent twice.
    status = dashboard.driver.execute_script(
        "const body = new URLSearchParams({csrf: arguments[1], letter: arguments[2]});"
        "return fetch(arguments[0], {method: 'POST', body}).then(r => r.url)",
        f"/dashboard/games/{platform.game_id}/quality/replay", csrf, str(letter["id"]))
    assert "replayed=0" in status
    platform.wait_drained()
    assert platform.query("SELECT count(*) AS n FROM events WHERE event_id = %s",
                          (event["event_id"],))[0]["n"] == 1
    assert len(platform.query("SELECT 1 FROM dead_letters WHERE event_id = %s", (event["event_id"],))) == 1


def test_ingest_refusals_are_shown_by_reason_and_only_to_their_tenant(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    answer = platform.post("/v1/events", {"events": [new_event("teleport"), new_event(timestamp=future),
                                                     new_event(timestamp=future), new_event()]})
    assert answer.status_code == 200 and len(answer.json()["rejected"]) == 3
    assert platform.post("/v1/events", {"events": [new_event() for _ in range(501)]}).status_code == 413
    dashboard.log_in(operators.analyst)

    def shown() -> dict[str, tuple[int, int]]:
        dashboard.open(f"/dashboard/games/{platform.game_id}/quality?range=today")
        return {str(row.get_attribute("data-reason")): (int(row.find_element(By.CLASS_NAME, "requests").text),
                                                        int(row.find_element(By.CLASS_NAME, "events").text))
                for row in dashboard.driver.find_elements(By.CSS_SELECTOR, "#refusals tbody tr[data-reason]")}

    # Other tests refuse events of this game too: the counts are at least this test's own.
    platform.wait_for(lambda: {"unknown_event_type", "timestamp_in_future", "too_large"} <= set(shown()),
                      "the refusals on the data-quality page")
    counts = shown()
    assert counts["too_large"][0] >= 1 and counts["too_large"][1] >= 501
    assert counts["timestamp_in_future"][1] >= 2 and counts["unknown_event_type"][1] >= 1
    row = dashboard.driver.find_element(By.ID, "refusal-too_large")
    assert "request too large" in row.text and row.find_elements(By.CSS_SELECTOR, "svg.chart path.line")
    dashboard.shot("ingest-refusals")
    csv = dashboard.driver.execute_script(
        "return fetch(arguments[0]).then(r => r.text())",
        f"/dashboard/games/{platform.game_id}/quality/refusals.csv?range=7d")
    assert str(csv).startswith("date,reason,events,requests") and ",too_large," in str(csv)
    dashboard.open(f"/dashboard/games/{platform.game_id}/quality?range=custom&from=2020-01-01&to=2026-01-01")
    assert "at most" in dashboard.text("message-text"), "a range of years is refused with a message"
    # Tenant B's admin gets a 404 page for tenant A's game, its counts and its CSV, whatever the URL says.
    dashboard.log_in(operators.other_admin)
    for path in ("quality?range=today", "quality/refusals.csv?range=90d"):
        dashboard.open(f"/dashboard/games/{platform.game_id}/{path}")
        assert dashboard.driver.find_element(By.TAG_NAME, "h1").text == "Not found", path
    dashboard.open(f"/dashboard/games/{operators.other_game}/quality?range=today")
    assert not dashboard.driver.find_elements(By.CSS_SELECTOR, "#refusals tbody tr[data-reason]")


def _operator_rows(dashboard: Dashboard) -> dict[str, Any]:
    return {str(row.get_attribute("data-email")): row
            for row in dashboard.driver.find_elements(By.CSS_SELECTOR, "#operators tbody tr[data-email]")}


def _operator_cell(dashboard: Dashboard, email: str, cell: str) -> str | None:
    """A cell of the operator's row, or None while the page that has it is still on its way."""
    row = _operator_rows(dashboard).get(email)
    return None if row is None else str(row.find_element(By.CLASS_NAME, cell).text)


def test_operators_are_listed_invited_and_disabled_and_another_tenant_reaches_none(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    dashboard.log_in(operators.admin)
    dashboard.open("/dashboard/settings/operators")
    listed = _operator_rows(dashboard)
    assert {operators.admin, operators.analyst} <= set(listed)
    assert operators.other_admin not in listed and operators.platform_admin not in listed
    assert not listed[operators.admin].find_elements(By.CSS_SELECTOR, "button.disable"), "no button to lock oneself out"
    email = f"invited-{uuid.uuid4().hex[:6]}@studio.test"
    dashboard.driver.find_element(By.ID, "invite-email").send_keys(email)
    dashboard.driver.find_element(By.ID, "invite").click()
    dashboard.wait(lambda d: d.find_elements(By.ID, "invited-password"), "the invited operator's password")
    password = dashboard.text("invited-password")
    dashboard.shot("operators")
    row = _operator_rows(dashboard)[email]
    invited_id = str(row.get_attribute("id")).removeprefix("operator-")
    assert row.find_element(By.CLASS_NAME, "role").text == "analyst"
    Select(row.find_element(By.CLASS_NAME, "role-choice")).select_by_value("tenant_admin")
    row.find_element(By.CSS_SELECTOR, "button.set-role").click()
    dashboard.wait(lambda d: _operator_cell(dashboard, email, "role") == "tenant_admin", "the new role")
    assert password not in dashboard.driver.page_source, "the password is shown once"
    dashboard.log_in(email, password)
    dashboard.open("/dashboard/settings/operators")
    assert email in _operator_rows(dashboard), "the invited operator logs in and manages"
    dashboard.log_in(operators.admin)
    dashboard.open("/dashboard/settings/operators")
    _operator_rows(dashboard)[email].find_element(By.CSS_SELECTOR, "button.disable").click()
    dashboard.wait(lambda d: _operator_cell(dashboard, email, "state") == "disabled", "the operator disabled")
    dashboard.log_in(email, password)
    assert "wrong email or password" in dashboard.driver.page_source, "a disabled operator cannot log in"
    dashboard.log_in(operators.admin)
    dashboard.open("/dashboard/settings/audit")
    actions = [e.text for e in dashboard.driver.find_elements(By.CSS_SELECTOR, "#audit .action")]
    assert {"operator.invited", "operator.role_changed", "operator.disabled"} <= set(actions[:10]), actions[:10]
    # Tenant B's admin lists only tenant B's operators, and a change posted for tenant A's is a 404.
    dashboard.log_in(operators.other_admin)
    dashboard.open("/dashboard/settings/operators")
    assert set(_operator_rows(dashboard)) == {operators.other_admin}
    for action in ("enable", "disable"):
        status = dashboard.driver.execute_script(
            "const body = new URLSearchParams({csrf: arguments[1], action: arguments[2]});"
            "return fetch(arguments[0], {method: 'POST', body}).then(r => r.status)",
            f"/dashboard/settings/operators/{invited_id}", _csrf(dashboard), action)
        assert status == 404, action
    assert platform.query("SELECT disabled_at IS NOT NULL AS off FROM operators WHERE operator_id = %s",
                          (invited_id,))[0]["off"] is True
    # An analyst has no operators page, and a form posted by hand is refused.
    dashboard.log_in(operators.analyst)
    dashboard.open("/dashboard/settings/operators")
    assert dashboard.driver.find_element(By.TAG_NAME, "h1").text == "Not allowed"
    dashboard.open(f"/dashboard/games/{platform.game_id}")
    status = dashboard.driver.execute_script(
        "const body = new URLSearchParams({csrf: arguments[1], action: 'enable'});"
        "return fetch(arguments[0], {method: 'POST', body}).then(r => r.status)",
        f"/dashboard/settings/operators/{invited_id}", _csrf(dashboard))
    assert status == 403


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _invite(platform: RunningPlatform, admin_token: str, role: str) -> dict[str, str]:
    made = httpx.post(f"{platform.base_url}/v1/admin/operators", headers=_bearer(admin_token), timeout=30,
                      json={"email": f"{role}-{uuid.uuid4().hex[:6]}@studio.test", "role": role})
    assert made.status_code == 201, made.text
    return {k: str(v) for k, v in made.json().items()}


def _own_token(platform: RunningPlatform, operator: dict[str, str]) -> str:
    answer = httpx.post(f"{platform.base_url}/v1/operators/login", timeout=30,
                        json={"email": operator["email"], "password": operator["password"]})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _change(platform: RunningPlatform, admin_token: str, operator: dict[str, str], change: dict[str, Any]) -> None:
    done = httpx.patch(f"{platform.base_url}/v1/admin/operators/{operator['operator_id']}", json=change,
                       headers=_bearer(admin_token), timeout=30)
    assert done.status_code == 200, done.text


def test_a_disabled_operators_open_page_is_logged_out_and_their_calls_refused(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    admin = operator_token(platform, operators.admin)
    analyst = _invite(platform, admin, "analyst")
    dashboard.log_in(analyst["email"], analyst["password"])
    dashboard.open(f"/dashboard/games/{platform.game_id}?range=today")
    dashboard.wait(lambda d: d.find_element(By.ID, "live-last-minute").get_attribute("data-value"),
                   "the live panel's first figure")
    cookie = {"gm_dashboard": str(dashboard.driver.get_cookie("gm_dashboard")["value"])}
    live = f"{platform.base_url}/dashboard/games/{platform.game_id}/live"
    assert httpx.get(live, cookies=cookie, timeout=30).status_code == 200
    own = _own_token(platform, analyst)
    players = f"{platform.base_url}/v1/games/{platform.game_id}/players"
    assert httpx.get(players, headers=_bearer(own), timeout=30).status_code == 200
    assert "errors" not in _graphql(platform, own, "{ games { id } }", {})
    _change(platform, admin, analyst, {"disabled": True})
    # The open overview is not reloaded by the test: its next live update finds the session ended.
    dashboard.wait(lambda d: d.current_url.endswith("/dashboard/login") and d.find_elements(By.ID, "ended"),
                   "the open overview to land on the login form")
    assert "disabled your account" in dashboard.text("ended")
    dashboard.shot("logged-out-disabled")
    refused = httpx.get(live, cookies=cookie, timeout=30)
    assert refused.status_code == 401 and "disabled your account" in refused.json()["error"], refused.text
    platform.wait_for(lambda: httpx.get(players, headers=_bearer(own), timeout=30).status_code == 401,
                      "the users API to refuse the disabled operator's token")
    assert "disabled" in httpx.get(players, headers=_bearer(own), timeout=30).json()["error"]
    platform.wait_for(lambda: httpx.post(f"{platform.base_url}/graphql", json={"query": "{ games { id } }"},
                                         headers=_bearer(own), timeout=30).status_code == 401,
                      "the analytics API to refuse the disabled operator's token")
    dashboard.log_in(analyst["email"], analyst["password"])
    assert "wrong email or password" in dashboard.driver.page_source

    # A demoted admin: the next refresh of a managing page is the login form; their admin token is refused.
    lead = _invite(platform, admin, "tenant_admin")
    dashboard.log_in(lead["email"], lead["password"])
    dashboard.open("/dashboard/settings/operators")
    assert lead["email"] in _operator_rows(dashboard)
    lead_token = _own_token(platform, lead)
    listing = f"{platform.base_url}/v1/admin/operators"
    assert httpx.get(listing, headers=_bearer(lead_token), timeout=30).status_code == 200
    _change(platform, admin, lead, {"role": "analyst"})

    def refreshed_to_login() -> bool:
        time.sleep(0.3)
        dashboard.driver.refresh()
        return bool(dashboard.driver.find_elements(By.ID, "ended"))

    platform.wait_for(refreshed_to_login, "a refresh of the operators page to land on the login form")
    assert "role was changed" in dashboard.text("ended")
    platform.wait_for(lambda: httpx.get(listing, headers=_bearer(lead_token), timeout=30).status_code == 401,
                      "the users API to refuse the demoted admin's admin token")
    dashboard.log_in(lead["email"], lead["password"])
    dashboard.open("/dashboard/settings/operators")
    assert dashboard.driver.find_element(By.TAG_NAME, "h1").text == "Not allowed", "logged in again as an analyst"


def test_a_rate_limited_login_says_when_to_retry_and_not_which_half(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    target = _invite(platform, operator_token(platform, operators.admin), "analyst")
    stop, limited = threading.Event(), threading.Event()

    def guess() -> None:
        # Someone guessing the target's password from many addresses: the per-email limit holds them,
        # and guesses faster than it refills keep it at its limit while the owner tries to log in.
        with httpx.Client(base_url=platform.base_url, timeout=30) as http:
            while not stop.is_set():
                answer = http.post("/v1/operators/login", json={"email": target["email"], "password": "a guess!!"},
                                   headers={"X-Forwarded-For": f"198.51.100.{secrets.randbelow(250) + 1}"})
                if answer.status_code == 429:
                    limited.set()
                stop.wait(0.05 if limited.is_set() else 0)

    guesser = threading.Thread(target=guess, daemon=True)
    guesser.start()
    try:
        assert limited.wait(120), "the guesses were never limited"
        dashboard.log_in(target["email"], target["password"])
        message = dashboard.text("error")
        dashboard.shot("login-rate-limited")
        dashboard.log_in(target["email"], "not the password at all")
        wrong = dashboard.text("error")
    finally:
        stop.set()
        guesser.join(30)
    for shown in (message, wrong):  # the right and a wrong password get the same answer
        assert re.fullmatch(r"too many login attempts; retry in \d+ s", shown), shown
    assert "password" not in message and "email" not in message
    assert "/dashboard/login" in dashboard.driver.current_url and not dashboard.driver.get_cookie("gm_dashboard")


def test_bad_input_is_a_message_on_the_page_and_the_theme_is_kept(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    dashboard.log_in(operators.analyst)
    today = datetime.now(UTC).date()
    game, nobody = f"/dashboard/games/{platform.game_id}", f"nobody-{uuid.uuid4().hex[:6]}"
    cases = {
        f"{game}?range=custom&from={today}&to={today - timedelta(days=1)}": "before it starts",
        f"{game}?range=custom&from={today - timedelta(days=3650)}&to={today}": "at most 366 days",
        f"{game}/quality?range=custom&from={today}&to={today + timedelta(days=1)}": "in the future",
        f"{game}/retention?range=custom&from=yesterday&to={today}": "as dates (YYYY-MM-DD)",
        f"{game}/players/{nobody}": nobody,
        f"{game}/charts/nonsense.csv?range=7d": "no chart",
        "/dashboard/no/such/page": "no such page",
    }
    for path, says in cases.items():
        dashboard.open(path)
        assert dashboard.driver.find_elements(By.ID, "message-text"), path
        assert says in dashboard.text("message-text"), (path, dashboard.text("message-text"))
        assert "Traceback" not in dashboard.driver.page_source and 'File "' not in dashboard.driver.page_source
    dashboard.shot("bad-range")
    # The theme: switched with its button, kept in this browser for the next page.
    dashboard.open(game)
    first = dashboard.driver.find_element(By.TAG_NAME, "html").get_attribute("data-theme")
    dashboard.driver.find_element(By.ID, "theme").click()
    switched = "dark" if first == "light" else "light"
    assert dashboard.driver.find_element(By.TAG_NAME, "html").get_attribute("data-theme") == switched
    dashboard.open(f"{game}/quality?range=7d")
    assert dashboard.driver.find_element(By.TAG_NAME, "html").get_attribute("data-theme") == switched
    background = dashboard.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    dashboard.driver.find_element(By.ID, "theme").click()
    assert dashboard.driver.execute_script("return getComputedStyle(document.body).backgroundColor") != background


def test_settings_audit_log_and_the_system_page(
        dashboard: Dashboard, platform: RunningPlatform, operators: Operators) -> None:
    dashboard.log_in(operators.admin)
    dashboard.open("/dashboard/settings")
    name = f"Browser Game {uuid.uuid4().hex[:6]}"
    dashboard.driver.find_element(By.ID, "game-name").send_keys(name)
    dashboard.driver.find_element(By.ID, "create-game").click()
    dashboard.wait(lambda d: name in d.find_element(By.ID, "games").text, "the new game in the list")
    dashboard.driver.find_element(By.ID, "create-client").click()
    dashboard.wait(lambda d: d.find_elements(By.ID, "client-secret"), "the new client's secret")
    client_id, secret = dashboard.text("client-secret").split(" / ")
    dashboard.shot("settings")
    token = httpx.post(f"{platform.base_url}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(client_id, secret), timeout=30)
    assert token.status_code == 200, token.text
    dashboard.open("/dashboard/settings/audit", shot="audit-log")
    assert dashboard.text("chain-state") == "verified"
    actions = [e.text for e in dashboard.driver.find_elements(By.CSS_SELECTOR, "#audit .action")]
    assert actions[:2] == ["client.created", "game.created"], actions[:5]
    assert "operator.login" in actions
    # The system page is the platform admin's; they name the tenant to act on when they log in.
    dashboard.open("/dashboard/system")
    assert dashboard.driver.find_element(By.TAG_NAME, "h1").text == "Not allowed"
    platform.send([new_event()])  # so that the consumers have committed positions to show
    platform.wait_drained()
    dashboard.log_in(operators.platform_admin, tenant=platform.tenant_id)

    def groups() -> set[str]:
        dashboard.open("/dashboard/system")
        return {str(row.find_element(By.TAG_NAME, "td").get_attribute("textContent"))
                for row in dashboard.driver.find_elements(By.CSS_SELECTOR, "#lag tbody tr")}

    platform.wait_for(lambda: {"processor", "dashboard.live"} <= groups(), "the consumers' lag on the system page")
    dashboard.shot("system")
    assert dashboard.text("ready") == "ready"
    dashboard.log_in(operators.analyst)
    dashboard.open("/dashboard/settings")
    assert dashboard.driver.find_element(By.TAG_NAME, "h1").text == "Not allowed"


def test_graphiql_loads_everything_from_the_platform(dashboard: Dashboard, platform: RunningPlatform) -> None:
    page = httpx.get(f"{platform.base_url}/graphql", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "unpkg" not in page.text
    assets = asset_paths(page.text)
    assert len(assets) >= 5, assets
    for path in assets:
        assert httpx.get(platform.base_url + path, timeout=10).status_code == 200, path
    dashboard.open("/graphql")
    dashboard.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".graphiql-container .graphiql-editors"),
                   "GraphiQL to draw its editors")
    dashboard.shot("graphiql")
    loaded = dashboard.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(str(url).startswith(platform.base_url) for url in loaded), loaded
