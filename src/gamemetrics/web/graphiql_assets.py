"""GraphiQL served from the platform: the page's scripts and styles come from `/graphql/assets/`,
not from a CDN, so the IDE at `/graphql` works with no internet connection.

The files under `graphiql/` are the exact bytes of the npm packages the page names (its
subresource-integrity hashes still hold); `deploy/graphiql/vendor.sh` refreshes them.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/graphql/assets"
ASSETS_DIR = Path(__file__).parent / "graphiql"
_CDN = re.compile(r"https://unpkg\.com/")


def offline_ide_html(html: str) -> str:
    """The IDE page with every CDN address turned into the platform's own."""
    return _CDN.sub(ASSETS_PATH + "/", html)


def asset_paths(html: str) -> list[str]:
    """The platform paths of the scripts and styles an (offline) IDE page loads."""
    return re.findall(rf'(?:src|href)="({re.escape(ASSETS_PATH)}/[^"]+)"', html)


def assets_route() -> Mount:
    """`/graphql/assets/...`: the vendored files."""
    return Mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="graphiql-assets")
