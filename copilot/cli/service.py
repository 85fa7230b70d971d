"""Serving the API and web pages."""

from __future__ import annotations

import typer

from copilot.cli.common import console, load_settings
from copilot.demo.service import demo_key_path


def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default $COPILOT_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default $COPILOT_PORT or 8000)."),
) -> None:
    """Serve the API and web pages."""
    import uvicorn

    from api.app import create_app

    settings = load_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    app = create_app(settings)
    console.print(f"copilot serving on [bold]http://{settings.host}:{settings.port}/[/] (API docs at /docs)")
    key_file = demo_key_path(settings, settings.workspace)
    if key_file.exists():
        console.print(f"log in with the demo key: [bold]{key_file.read_text().strip()}[/]")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
