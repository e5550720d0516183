from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.tools import VALUES_FILES, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """The chart rendered with its defaults and with each environment's values file."""
    return {"values.yaml": render(), **{name: render(values=name) for name in VALUES_FILES}}
