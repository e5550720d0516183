"""The analytics HTTP app: `/graphql` (queries over HTTP, subscriptions over graphql-transport-ws,
GraphiQL for browsers) behind bearer tokens with the analytics:read scope."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import strawberry
import structlog
from graphql import ASTValidationRule, GraphQLError, get_operation_ast, value_from_ast_untyped
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.language import FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode, SelectionNode
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, HTTPExceptionHandler, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import AddValidationRules, ParserCache, SchemaExtension, ValidationCache
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.types import ExecutionContext

from gamemetrics.auth.tokens import InsufficientScope, InvalidToken, Principal, TokenVerifier
from gamemetrics.ports.cache import MISS, Memo
from gamemetrics.services.analytics.errors import AnalyticsError
from gamemetrics.services.analytics.metrics import field_cost
from gamemetrics.services.analytics.responses import Answer, AnswerKey, ResponseCache, TenantVersions
from gamemetrics.services.analytics.schema import SCOPE, AnalyticsContext, Limits, Query, Subscription
from gamemetrics.services.analytics.store import AnalyticsStore
from gamemetrics.web.errors import ApiError
from gamemetrics.web.graphiql_assets import offline_ide_html
from gamemetrics.web.principal import SubjectCheck
from gamemetrics.web.refusals import exception_handlers
from gamemetrics.web.responses import json_response

log = structlog.get_logger("analytics")


class CostLimit(SchemaExtension):
    """Refuses an operation whose root fields would read more than `max_cost` days of rollups
    (see `field_cost`), before anything is read."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        cost = operation_cost(context)
        if cost > self.max_cost:
            context.result = GraphQLExecutionResult(data=None, errors=[GraphQLError(
                f"this operation would cost {cost}; the limit is {self.max_cost} (a day of rollups costs 1)",
                extensions={"code": "QUERY_TOO_COMPLEX"},
            )])
        yield


def operation_cost(context: ExecutionContext) -> int:
    document = context.graphql_document
    if document is None:
        return 0
    operation = get_operation_ast(document, context.operation_name)
    if operation is None:
        return 0
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    variables = context.variables or {}
    total = 0
    for node in _root_fields(operation.selection_set.selections, fragments, set()):
        args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments or ()}
        total += field_cost(node.name.value, args)
    return total


def _root_fields(selections: Iterable[SelectionNode], fragments: dict[str, FragmentDefinitionNode],
                 seen: set[str]) -> Iterator[FieldNode]:
    for node in selections:
        if isinstance(node, FieldNode):
            yield node
        elif isinstance(node, InlineFragmentNode):
            yield from _root_fields(node.selection_set.selections, fragments, seen)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen and node.name.value in fragments:
            seen.add(node.name.value)
            yield from _root_fields(fragments[node.name.value].selection_set.selections, fragments, seen)


class AnalyticsSchema(strawberry.Schema):
    """Logs only unexpected errors, and hides their details from clients."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if _unexpected(error):
                log.error("query failed", error=repr(error.original_error), path=error.path,
                          exc_info=error.original_error)


def _unexpected(error: GraphQLError) -> bool:
    """A resolver failed in a way no client caused (errors before execution have no path)."""
    return (error.original_error is not None and error.path is not None
            and not isinstance(error.original_error, AnalyticsError))


class ErrorCodes(SchemaExtension):
    """Every error leaves with a code; unexpected ones leave without their details."""

    def on_operation(self) -> Iterator[None]:
        yield
        _add_codes(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each result of a subscription."""
        _add_codes(result)
        yield


def _add_codes(result: Any) -> None:
    if result is not None and getattr(result, "errors", None):
        result.errors = [_with_code(e) for e in result.errors]


def _with_code(error: GraphQLError) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    if _unexpected(error):
        code, message = "INTERNAL_SERVER_ERROR", "internal error; it has been logged"
    elif error.original_error is None:  # syntax, validation, depth and alias limits: the message helps
        code, message = "GRAPHQL_VALIDATION_FAILED", error.message
    else:  # a variable or argument value that does not parse
        code, message = "BAD_USER_INPUT", error.message
    return GraphQLError(message, nodes=error.nodes, positions=error.positions, path=error.path,
                        source=error.source, extensions={"code": code})


def build_schema(*, max_depth: int, max_aliases: int, max_cost: int) -> AnalyticsSchema:
    """The schema with its guards; the rule classes are made once so validation results cache."""
    rules: list[type[ASTValidationRule]] = [max_depth_rule(max_depth, None, None), max_aliases_rule(max_aliases)]
    return AnalyticsSchema(
        query=Query,
        subscription=Subscription,
        extensions=[
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
            lambda: CostLimit(max_cost),
            ErrorCodes,
        ],
    )


class AnalyticsGraphQL(GraphQL[AnalyticsContext, None]):
    """Strawberry's ASGI view with our context; WebSocket clients authenticate in connection_init."""

    def __init__(self, schema: AnalyticsSchema, store: AnalyticsStore, limits: Limits, verifier: TokenVerifier,
                 subjects: SubjectCheck | None = None) -> None:
        super().__init__(schema, graphql_ide="graphiql", keep_alive=True, keep_alive_interval=15,
                         max_subscriptions_per_connection=20)
        self._store = store
        self._limits = limits
        self._verifier = verifier
        self._subjects = subjects

    @property
    def graphql_ide_html(self) -> str:
        """GraphiQL with its scripts and styles served by the platform (`/graphql/assets/`)."""
        return offline_ide_html(super().graphql_ide_html)

    async def get_context(self, request: Any, response: Any) -> AnalyticsContext:
        principal = request.scope.get("state", {}).get("principal")
        return AnalyticsContext(self._store, self._limits, principal, request, response)

    async def on_ws_connect(self, context: AnalyticsContext) -> dict[str, object] | None:
        params = context.connection_params or {}
        token = _bearer(params.get("Authorization") or params.get("authorization") or params.get("token"))
        if token is None:
            token = _bearer(context.request.headers.get("authorization"))
        try:
            principal = await _authenticate(self._verifier, token)
            if self._subjects is not None:
                await self._subjects(principal)
        except (InvalidToken, InsufficientScope) as exc:
            raise ConnectionRejectionError({"message": str(exc)}) from None
        context.principal = principal
        return None


def _bearer(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if not token:
        return scheme or None  # a bare token in connection_init
    return token.strip() if scheme.lower() == "bearer" else None


async def _authenticate(verifier: TokenVerifier, token: str | None) -> Principal:
    if token is None:
        raise InvalidToken("a bearer token is required (Authorization: Bearer <access token>)")
    principal = await verifier.verify(token)
    principal.require(SCOPE)
    return principal


class BearerAuth:
    """Checks the bearer token of every HTTP request before GraphQL sees it (GraphiQL's page, which
    asks for nothing, is served to browsers without one): InvalidToken or InsufficientScope
    otherwise, which the app's exception handlers answer (`refusals`)."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, verified: Memo[str, Principal],
                 subjects: SubjectCheck | None = None) -> None:
        self._app = app
        self._verifier = verifier
        self._subjects = subjects  # asked of every request, a kept token too: an operator may be disabled since
        # Verified tokens, for as long as `verified` keeps them (and never past their expiry): a
        # dashboard sends the same token on every request, and a signature check costs more than
        # the cached answer it unlocks.
        self._verified = verified

    async def _principal(self, token: str | None) -> Principal:
        seen = self._verified.get(token) if token is not None else MISS
        if seen is not MISS and not seen.expired:
            principal = seen
        else:
            principal = await _authenticate(self._verifier, token)
            if token is not None:
                self._verified.put(token, principal)
        if self._subjects is not None:
            await self._subjects(principal)
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            wants_page = request.method == "GET" and "query" not in request.query_params \
                and "text/html" in request.headers.get("accept", "")
            if not wants_page:
                principal = await self._principal(_bearer(request.headers.get("authorization")))
                scope.setdefault("state", {})["principal"] = principal
        await self._app(scope, receive, send)


_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
          503: "SERVICE_UNAVAILABLE"}


def graphql_refusal(error: ApiError) -> Response:
    """A refusal as a GraphQL error body, its code in `extensions`."""
    code = error.code or _CODES.get(error.status, "BAD_REQUEST")
    body = {"data": None, "errors": [{"message": error.message, "extensions": {"code": code}}]}
    return json_response(body, error.status, error.headers)


def refusals() -> Mapping[type[Exception], HTTPExceptionHandler]:
    """The analytics app's exception handlers: every refusal as a GraphQL error body."""
    return exception_handlers(render=graphql_refusal, unavailable="storage is unavailable; retry later")


def graphql_app(store: AnalyticsStore, verifier: TokenVerifier, *, limits: Limits, max_depth: int, max_aliases: int,
                max_cost: int, versions: TenantVersions, answers: Memo[AnswerKey, Answer],
                verified: Memo[str, Principal], subjects: SubjectCheck | None = None) -> Callable[..., Any]:
    """`/graphql` as one ASGI app: token check, then kept answers, then Strawberry's view."""
    schema = build_schema(max_depth=max_depth, max_aliases=max_aliases, max_cost=max_cost)
    view = AnalyticsGraphQL(schema, store, limits, verifier, subjects)
    return BearerAuth(ResponseCache(view, versions, answers), verifier, verified, subjects)
