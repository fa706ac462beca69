"""Who may read the page: Airflow's own access checks on every route, as Airflow's core API does
them (the `_token` cookie the UI sets, or a Bearer token). Plugin apps are not behind Airflow's
login by themselves, so each route depends on one of these."""

from __future__ import annotations

from html import escape
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag, requires_access_view
from fastapi import Depends, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response

# The pool and the clouds are cluster activity; a campaign is a DAG run's.
READ_POOL: Any = Depends(requires_access_view(access_view=AccessView.CLUSTER_ACTIVITY))
# The page's own stylesheet and script: anyone allowed to see Airflow's pages.
READ_SITE: Any = Depends(requires_access_view(access_view=AccessView.WEBSITE))
READ_RUN: Any = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN))

SIGN_IN = """<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title></head>
<body><p>{detail}. <a href="{login}" target="_top">Sign in to Airflow</a> to see this page.</p>
</body></html>"""


def login_url() -> str:
    from airflow.api_fastapi.app import get_auth_manager

    try:
        return str(get_auth_manager().get_url_login())
    except Exception:  # no auth manager or a login it cannot name: the site root still works
        return "/"


async def refused(request: Request, exc: Exception) -> Response:
    """401/403 as a page with a sign-in link for a browser, as JSON for anything else."""
    assert isinstance(exc, HTTPException)
    detail = str(exc.detail)
    if exc.status_code in (401, 403) and "text/html" in request.headers.get("accept", ""):
        body = SIGN_IN.format(detail=escape(detail), login=escape(login_url()))
        return HTMLResponse(body, status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
