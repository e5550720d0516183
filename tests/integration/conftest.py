"""Fixtures of the integration tests beside the session's PostgreSQL (tests/conftest.py)."""

from tests.integration.buses import bus_platform, bus_settings  # noqa: F401  (a platform on each bus in turn)
from tests.integration.notifier_fixtures import notifier  # noqa: F401  (users and notifier on a fresh database)
from tests.integration.users_fixtures import users  # noqa: F401  (a users service on a fresh database)
