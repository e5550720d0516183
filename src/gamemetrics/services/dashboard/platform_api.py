"""The platform's own HTTP APIs, as the dashboard calls them for a logged-in operator.

Logins go to the users service (`POST /v1/operators/login`: argon2, rate limits, audit), numbers
to the analytics service (`/graphql`), management to `/v1/admin/...`, always with the operator's
token, so the dashboard sees exactly what that token may see and every action is audited there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class Refused(Exception):
    """An API answered with a refusal; `status` and the API's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Login:
    """A successful login: the token and who it belongs to."""

    token: str
    expires_in: int
    operator_id: str
    email: str
    role: str
    tenant_id: str


class PlatformApi:
    """An HTTP client of the platform's base URL."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def login(self, email: str, password: str, tenant_id: str | None, address: str) -> Login:
        """The operator's token; Refused(401) for a wrong email or password, 429 when rate-limited."""
        body: dict[str, str] = {"email": email, "password": password}
        if tenant_id:
            body["tenant_id"] = tenant_id
        # The users service limits attempts per address: it sees the browser's, not this host's.
        response = await self._http.post("/v1/operators/login", json=body, headers={"X-Forwarded-For": address})
        answer = _answer(response)
        operator = answer["operator"]
        return Login(answer["access_token"], int(answer["expires_in"]), str(operator["operator_id"]),
                     operator["email"], operator["role"], str(operator["tenant_id"] or tenant_id))

    async def operator(self, token: str) -> dict[str, Any]:
        """The token's operator as the users service has them now (role, disabled); Refused otherwise."""
        answer: dict[str, Any] = await self.call(token, "GET", "/v1/operators/me")
        return answer

    async def graphql(self, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The `data` of a GraphQL answer; Refused with the first error's code status when it has errors."""
        response = await self._http.post("/graphql", json={"query": query, "variables": variables},
                                         headers={"Authorization": f"Bearer {token}"})
        answer = _answer(response)
        errors = answer.get("errors") or []
        if errors:
            code = (errors[0].get("extensions") or {}).get("code", "")
            status = {"NOT_FOUND": 404, "BAD_USER_INPUT": 400, "FORBIDDEN": 403, "UNAUTHENTICATED": 401}.get(code, 502)
            raise Refused(status, str(errors[0].get("message", "the analytics API refused the query")))
        data: dict[str, Any] = answer["data"]
        return data

    async def call(self, token: str, method: str, path: str, body: Any = None) -> Any:
        """A JSON API call of the operator's; its JSON answer."""
        response = await self._http.request(method, path, json=body,
                                            headers={"Authorization": f"Bearer {token}"})
        return _answer(response)

    async def download(self, token: str, path: str) -> bytes:
        """The body of a GET of the operator's (an export document), whole."""
        response = await self._http.get(path, headers={"Authorization": f"Bearer {token}"})
        if response.status_code >= 400:
            _answer(response)
        return response.content


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        message = (body.get("error_description") or body.get("error") or body.get("message")) \
            if isinstance(body, dict) else None
        raise Refused(response.status_code, str(message or f"the platform answered {response.status_code}"))
    return body
