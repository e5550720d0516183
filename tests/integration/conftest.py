"""Fixtures of the integration tests beside the session's PostgreSQL (tests/conftest.py)."""

from tests.integration.users_fixtures import users  # noqa: F401  (a users service on a fresh database)
