"""What `/readyz` answers: every service's checks, those of this process and of its peers.

A peer is another process of the platform (under `gamemetrics up`, each processor) whose own
`/readyz` this one includes, so one probe of the base URL covers every service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from gamemetrics.web.health import HealthCheck, Probe

Peers = Mapping[str, Sequence[str]]
"""Service name → the `/readyz` URLs of the processes running it."""

_PEER_TIMEOUT_S = 2.0


async def readiness(checks: Mapping[str, Mapping[str, Probe]], peers: Peers | None = None
                    ) -> tuple[bool, dict[str, Any]]:
    """Each service's checks, and per check name the worst answer any service gave."""
    local = list(checks)
    answers = dict(zip(local, await asyncio.gather(*(HealthCheck(dict(checks[n])).check() for n in local)),
                       strict=True))
    if peers:
        async with httpx.AsyncClient(timeout=_PEER_TIMEOUT_S) as client:
            remote = await asyncio.gather(*(_replicas(client, name, urls) for name, urls in peers.items()))
        answers.update(zip(peers, remote, strict=True))
    merged = merge(answers)
    services = {name: {"status": status(answer), "checks": answer} for name, answer in answers.items()}
    return status(merged) == "ok", {"status": status(merged), "checks": merged, "services": services}


def merge(answers: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Per check name: `ok` when every answer that has it says so, else the first failure, named
    after whose answer it was when there are several."""
    merged: dict[str, str] = {}
    for name, answer in answers.items():
        for check, result in answer.items():
            if merged.get(check, "ok") == "ok":
                merged[check] = result if result == "ok" or len(answers) == 1 else f"{name}: {result}"
    return merged


def status(answer: Mapping[str, str]) -> str:
    return "ok" if all(result == "ok" for result in answer.values()) else "unavailable"


async def _replicas(client: httpx.AsyncClient, name: str, urls: Sequence[str]) -> dict[str, str]:
    answers = await asyncio.gather(*(_peer(client, name, url) for url in urls))
    return merge({f"{name} {n}": answer for n, answer in enumerate(answers, 1)})


async def _peer(client: httpx.AsyncClient, name: str, url: str) -> dict[str, str]:
    """The checks `name` reports at `url`; a peer that does not answer fails a `process` check."""
    try:
        body = (await client.get(url)).json()
        return {str(check): str(result) for check, result in body["services"][name]["checks"].items()}
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return {"process": f"unavailable: {exc!r} from {url}"}
