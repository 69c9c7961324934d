"""Swagger UI at /docs from the files the ``swagger-ui-bundle`` package ships (never a CDN: the
page shares its origin with the UI's token), off unless ``--api-docs``. The page loads only
scripts of this origin, so it works under the edge's Content-Security-Policy."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>podcap API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>
"""
INIT = """SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
"""


def install(app: FastAPI) -> None:
    import swagger_ui_bundle  # type: ignore[import-untyped]

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/docs/init.js", include_in_schema=False)
    def init() -> Response:
        return Response(INIT, media_type="text/javascript")
