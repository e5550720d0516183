"""`/metrics`: the Prometheus exposition of the process (or of every process in multiprocess mode)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.observability import metrics

PATH = "/metrics"


async def exposition(request: Request) -> Response:
    """The metrics in Prometheus' text format."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


def metrics_route() -> Route:
    """The `/metrics` route of an app."""
    return Route(PATH, exposition, methods=["GET"])
