"""The API reference pages, served with their assets by the app itself (no CDN: a self-hosted install is offline).

Swagger UI and ReDoc come from the ``fastapi-offline`` wheel (MIT); the pages load no inline script, so they work
under the app's Content-Security-Policy. ReDoc's bundle is served with its one hard-coded outside address (the
Redocly logo on a CDN) pointed at a local image, so the page asks nothing of the network.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from copilot.errors import CopilotError
from copilot.integrity import package_dir

ASSETS = "/docs-assets"
REDOC_BUNDLE = "/docs-offline/redoc.standalone.js"
OUTSIDE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API reference</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css"><link rel="icon" href="{assets}/favicon.png"></head>
<body><div id="swagger-ui" data-spec="{spec}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script><script src="/static/docs.js"></script></body></html>
"""
REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API reference</title>
<link rel="icon" href="{assets}/favicon.png"></head>
<body><redoc spec-url="{spec}"></redoc><script src="{redoc_bundle}"></script></body></html>
"""


def install(app: FastAPI) -> None:
    """Mount the assets and the /docs and /redoc pages (the app is created with docs_url=redoc_url=None)."""
    folder = package_dir("fastapi_offline")
    if folder is None or not (folder / "static" / "swagger-ui-bundle.js").is_file():
        raise CopilotError("the API reference assets are missing: reinstall with `pip install fastapi-offline`")
    app.mount(ASSETS, StaticFiles(directory=folder / "static"), name="docs-assets")
    router = APIRouter(include_in_schema=False)
    values = {"title": app.title, "assets": ASSETS, "spec": app.openapi_url, "redoc_bundle": REDOC_BUNDLE}
    bundle = (
        (folder / "static" / "redoc.standalone.js").read_bytes().replace(OUTSIDE_LOGO, f"{ASSETS}/favicon.png".encode())
    )

    @router.get(REDOC_BUNDLE)
    def redoc_bundle() -> Response:
        return Response(bundle, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    @router.get("/docs", response_class=HTMLResponse)
    def swagger() -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE.format(**values))

    @router.get("/redoc", response_class=HTMLResponse)
    def redoc() -> HTMLResponse:
        return HTMLResponse(REDOC_PAGE.format(**values))

    app.include_router(router)
