"""Serving the API and web pages."""

from __future__ import annotations

import copy

import typer

from copilot.cli.common import console, load_settings


def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default $COPILOT_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default $COPILOT_PORT or 8000)."),
) -> None:
    """Serve the API and web pages."""
    import uvicorn

    from api.app import create_app
    from copilot.demo.service import demo_key_path

    settings = load_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    app = create_app(settings)
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["filters"] = {"no_query": {"()": "api.security.NoQueryStrings"}}
    log_config["handlers"]["access"]["filters"] = ["no_query"]
    console.print(f"copilot serving on [bold]http://{settings.host}:{settings.port}/[/] (API docs at /docs)")
    key_file = demo_key_path(settings, settings.workspace)
    if key_file.exists():
        console.print(f"log in with the demo admin key kept in {key_file} (readable by you only)")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=log_config,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=settings.keep_alive_s,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
