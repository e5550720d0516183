"""The tenant's operators through the admin API: listed, invited, given a role, disabled and
enabled, each audited; another tenant's operators are out of reach whatever the path names."""

from __future__ import annotations

import uuid

from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.settings import Settings
from tests.integration.users_fixtures import Users, add_tenant, basic, users_service


def _login(users: Users, email: str, password: str) -> int:
    return users.http.post("/v1/operators/login", json={"email": email, "password": password}).status_code


def test_an_admin_invites_an_operator_who_logs_in_and_is_listed(users: Users) -> None:
    admin = users.auth("admin")
    email = f"new-{uuid.uuid4().hex[:6]}@studio.test"
    made = users.http.post("/v1/admin/operators", json={"email": email.upper(), "role": "analyst"}, headers=admin)
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store", made.text
    invited = made.json()
    assert (invited["email"], invited["role"], invited["tenant_id"]) == (email, "analyst", str(users.tenant_id))
    assert _login(users, email, invited["password"]) == 200
    listed = users.http.get("/v1/admin/operators", headers=admin).json()["operators"]
    assert [(o["email"], o["role"], o["disabled"]) for o in listed] == [(email, "analyst", False)]
    assert "password" not in listed[0] and "password_hash" not in listed[0]
    again = users.http.post("/v1/admin/operators", json={"email": email, "role": "analyst"}, headers=admin)
    assert again.status_code == 409 and "exists already" in again.json()["error"]
    hashes = users.sql("SELECT password_hash FROM operators WHERE email = %s", (email,))
    assert hashes[0][0].startswith("$argon2id$") and invited["password"] not in hashes[0][0]


def test_role_and_disabled_change_the_login_and_are_audited(users: Users) -> None:
    admin = users.auth("admin")
    email = f"ops-{uuid.uuid4().hex[:6]}@studio.test"
    invited = users.http.post("/v1/admin/operators", json={"email": email, "role": "analyst"}, headers=admin).json()
    path = f"/v1/admin/operators/{invited['operator_id']}"
    promoted = users.http.patch(path, json={"role": "tenant_admin"}, headers=admin)
    assert promoted.status_code == 200 and promoted.json()["role"] == "tenant_admin"
    login = users.http.post("/v1/operators/login", json={"email": email, "password": invited["password"]}).json()
    assert "admin" in login["scope"].split()
    assert users.http.patch(path, json={"disabled": True}, headers=admin).json()["disabled"] is True
    assert _login(users, email, invited["password"]) == 401, "a disabled operator cannot log in"
    assert users.http.patch(path, json={"disabled": False}, headers=admin).json()["disabled"] is False
    assert _login(users, email, invited["password"]) == 200
    actions = [a for (a,) in users.sql("SELECT action FROM audit_log WHERE subject = %s ORDER BY seq",
                                       (invited["operator_id"],))]
    assert actions == ["operator.invited", "operator.role_changed", "operator.disabled", "operator.enabled"]
    # An admin cannot lock themselves out.
    own = {"Authorization": f"Bearer {login['access_token']}"}
    for change in ({"disabled": True}, {"role": "analyst"}):
        refused = users.http.patch(path, json=change, headers=own)
        assert refused.status_code == 409 and "yourself" in refused.json()["error"]


def test_bad_input_and_missing_scope_are_refused_with_a_reason(users: Users) -> None:
    admin = users.auth("admin")
    for body in ({"email": "no-at-sign", "role": "analyst"}, {"email": "a@b.test", "role": "platform_admin"},
                 {"role": "analyst"}, ["a@b.test"]):
        answer = users.http.post("/v1/admin/operators", json=body, headers=admin)
        assert answer.status_code == 400 and "send" in answer.json()["error"], body
    unknown = users.http.patch(f"/v1/admin/operators/{uuid.uuid4()}", json={"disabled": True}, headers=admin)
    assert unknown.status_code == 404
    assert users.http.patch("/v1/admin/operators/not-a-uuid", json={"disabled": True}, headers=admin).status_code \
        == 404
    assert users.http.patch(f"/v1/admin/operators/{uuid.uuid4()}", json={}, headers=admin).status_code == 400
    assert users.http.get("/v1/admin/operators", headers=users.auth("analytics:read")).status_code == 403
    assert users.http.get("/v1/admin/operators").status_code == 401


def test_another_tenant_neither_sees_nor_changes_the_operators(users: Users) -> None:
    email = f"mine-{uuid.uuid4().hex[:6]}@studio.test"
    mine = users.http.post("/v1/admin/operators", json={"email": email, "role": "analyst"},
                           headers=users.auth("admin")).json()
    _, _, other_id, other_secret = add_tenant(users.database_url)
    token = users.http.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "admin"},
                            headers=basic(other_id, other_secret)).json()["access_token"]
    other = {"Authorization": f"Bearer {token}"}
    assert users.http.get("/v1/admin/operators", headers=other).json()["operators"] == []
    for change in ({"disabled": True}, {"role": "tenant_admin"}):
        refused = users.http.patch(f"/v1/admin/operators/{mine['operator_id']}", json=change, headers=other)
        assert refused.status_code == 404, change
    assert users.sql("SELECT role, disabled_at FROM operators WHERE email = %s", (email,)) == [("analyst", None)]


def test_login_attempts_are_rate_limited_with_a_message_that_names_no_half(
        settings: Settings, database_url: str) -> None:
    # Logins take their rate from the token settings: a burst of 3 and one attempt every 100 s.
    strict = settings.updated(users={"token_rate_client_burst": 3.0, "token_rate_per_client_per_second": 0.01})
    served = users_service(strict, database_url)
    try:
        _limited_logins(next(served))
    finally:
        served.close()


def _limited_logins(users: Users) -> None:
    email = f"target-{uuid.uuid4().hex[:6]}@studio.test"
    invited = users.http.post("/v1/admin/operators", json={"email": email, "role": "analyst"},
                              headers=users.auth("admin")).json()
    answers = [users.http.post("/v1/operators/login", json={"email": email, "password": "wrong password!!"})
               for _ in range(5)]
    statuses = [a.status_code for a in answers]
    assert statuses == [401, 401, 401, 429, 429], statuses
    limited = answers[statuses.index(429)]
    assert limited.json()["error"].startswith("too many login attempts; retry in")
    assert "retry-after" in limited.headers
    # The right password is refused too while the attempts are limited: guessing gains nothing.
    assert _login(users, email, invited["password"]) == 429


def test_a_disabled_or_demoted_operators_token_is_refused_before_it_expires(
        settings: Settings, database_url: str) -> None:
    now = settings.updated(users={"operator_state_seconds": 0.0})
    served = users_service(now, database_url)
    try:
        with TestClient(combined_app(now, database_url, ["analytics"])) as analytics:
            _tokens_follow_the_operator(next(served), analytics)
    finally:
        served.close()


def _tokens_follow_the_operator(users: Users, analytics: TestClient) -> None:
    def graphql(token: str) -> int:
        return analytics.post("/graphql", json={"query": "{ games { id } }"},
                              headers={"Authorization": f"Bearer {token}"}).status_code

    admin = users.auth("admin")
    email = f"lead-{uuid.uuid4().hex[:6]}@studio.test"
    invited = users.http.post("/v1/admin/operators", json={"email": email, "role": "tenant_admin"},
                              headers=admin).json()
    path = f"/v1/admin/operators/{invited['operator_id']}"
    token = users.http.post("/v1/operators/login", json={"email": email, "password": invited["password"]}
                            ).json()["access_token"]
    own = {"Authorization": f"Bearer {token}"}
    me = users.http.get("/v1/operators/me", headers=own)
    assert me.status_code == 200 and me.headers["cache-control"] == "no-store"
    assert (me.json()["email"], me.json()["role"], me.json()["disabled"]) == (email, "tenant_admin", False)
    assert users.http.get("/v1/admin/operators", headers=own).status_code == 200
    # Demoted: the admin token of the earlier login is refused; an analyst's token of a new login is not.
    assert users.http.patch(path, json={"role": "analyst"}, headers=admin).status_code == 200
    refused = users.http.get("/v1/admin/operators", headers=own)
    assert refused.status_code == 401 and "role is now analyst" in refused.json()["error"], refused.text
    assert users.http.get("/v1/operators/me", headers=own).json()["role"] == "analyst", "the state is still told"
    analyst = users.http.post("/v1/operators/login", json={"email": email, "password": invited["password"]}
                              ).json()["access_token"]
    players = f"/v1/games/{users.game_id}/players"
    assert users.http.get(players, headers={"Authorization": f"Bearer {analyst}"}).status_code == 200
    assert graphql(analyst) == 200 and graphql(token) == 401, "analytics refuses the admin token of before"
    # Disabled: every token of theirs is refused; /me still says why.
    assert users.http.patch(path, json={"disabled": True}, headers=admin).status_code == 200
    refused = users.http.get(players, headers={"Authorization": f"Bearer {analyst}"})
    assert refused.status_code == 401 and "disabled" in refused.json()["error"], refused.text
    assert "invalid_token" in refused.headers["www-authenticate"]
    assert graphql(analyst) == 401, "analytics refuses a disabled operator's token"
    assert users.http.get("/v1/operators/me", headers=own).json()["disabled"] is True
    # A client's token names no operator: nothing to look up, and no /me.
    assert users.http.get(players, headers=users.auth("players:read")).status_code == 200
    assert users.http.get("/v1/operators/me", headers=admin).status_code == 403
