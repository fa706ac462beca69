"""What plugins/bursting_ui.py declares: the FastAPI app Airflow's api-server mounts and the
external views that put it in Airflow's UI (Browse -> Burst pool; a Campaign tab on a campaign
DAG's page and on each of its runs).

The app is built at its first request, not when Airflow imports the plugin: every Airflow
process loads plugins, and only the api-server serves them.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

URL_PREFIX = "/bursting"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LazyApp:
    """An ASGI app that builds the real one (bursting.ui.app.create_app) on first use, off the
    event loop, once."""

    def __init__(self, factory: Callable[[], ASGIApp] | None = None) -> None:
        self._factory = factory
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def _build(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                if self._factory is None:
                    from bursting.ui.app import create_app

                    self._app = create_app()
                else:
                    self._app = self._factory()
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:
            import anyio.to_thread

            app = await anyio.to_thread.run_sync(self._build)
        await app(scope, receive, send)

    def __repr__(self) -> str:
        return "bursting.ui.app:create_app"


def base_path() -> str:
    """The path Airflow's UI is served under ([api] base_url), without a trailing slash."""
    from airflow.configuration import conf

    base_url = conf.get("api", "base_url", fallback="/") or "/"
    path = urlsplit(base_url).path if "://" in base_url else base_url
    return path.rstrip("/")


def fastapi_apps() -> list[dict[str, Any]]:
    return [
        {"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "bursting: burst pool and campaigns"}
    ]


def external_views() -> list[dict[str, Any]]:
    """Airflow fills {DAG_ID} and {RUN_ID} in the hrefs of DAG and run tabs."""
    root = base_path() + URL_PREFIX
    return [
        {
            "name": "Burst pool",
            "href": f"{root}/pool",
            "destination": "nav",
            "category": "browse",
            "url_route": "burst-pool",
        },
        {
            "name": "Campaign",
            "href": f"{root}/runs?dag_id={{DAG_ID}}",
            "destination": "dag",
            "url_route": "campaigns",
        },
        {
            "name": "Campaign",
            "href": f"{root}/campaign?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "campaign",
        },
    ]
