"""`copilot models`: the local models this install has, their profile, size and measured speed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from copilot.cli.common import console, load_settings

SPEED_PROMPT = "Write a short, friendly reply to a customer who cannot log in after changing phones."


def speeds_path(data_dir: Path) -> Path:
    return data_dir / "models" / "speeds.json"


def read_speeds(data_dir: Path) -> dict[str, dict[str, float]]:
    try:
        return json.loads(speeds_path(data_dir).read_text())
    except (OSError, ValueError):
        return {}


def measure_speed(model: str) -> dict[str, float]:
    """Generated tokens/s and time to first token through the full gateway + server path."""
    from copilot.services import Services

    settings = load_settings()
    settings.model = model
    gateway = Services(settings).gateway
    gateway.check_ready()
    messages = [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": SPEED_PROMPT}]
    gateway.complete(messages, max_tokens=4)
    started = time.perf_counter()
    stream = gateway.stream(messages, max_tokens=64, temperature=0.0)
    first = None
    for _chunk in stream:
        first = first or time.perf_counter()
    seconds = time.perf_counter() - started
    tokens = stream.completion.tokens_out if stream.completion else 0
    return {"tokens_per_s": round(tokens / seconds, 1), "first_token_ms": round(((first or started) - started) * 1000)}


def models(
    measure: Annotated[bool, typer.Option("--measure", help="Measure each installed model's speed.")] = False,
) -> None:
    """List the local models: installed or not, profile, size, file and measured speed."""
    from copilot.gateway.catalog import CATALOG

    settings = load_settings()
    speeds = read_speeds(settings.data_dir)
    if measure:
        for spec in CATALOG.values():
            if spec.installed():
                with console.status(f"measuring {spec.model} (loads the model)..."):
                    speeds[spec.model] = measure_speed(spec.model)
        speeds_path(settings.data_dir).parent.mkdir(parents=True, exist_ok=True)
        speeds_path(settings.data_dir).write_text(json.dumps(speeds, indent=2))
    table = Table("model", "profile", "size", "installed / speed")
    table.columns[0].no_wrap = True
    for spec in CATALOG.values():
        speed = speeds.get(spec.model)
        if not spec.installed():
            shown = f"not installed: {spec.install}"
        elif speed:
            shown = f"{speed['tokens_per_s']} tok/s, first token {speed['first_token_ms']} ms"
        else:
            shown = "installed, speed not measured"
        table.add_row(spec.model, spec.profile.value, f"{spec.size_bytes / 1e6:,.0f} MB", shown)
    console.print(table)
    default = " (a GGUF file set by COPILOT_LOCAL_MODEL_PATH)" if settings.local_model_path else ""
    console.print(f"COPILOT_MODEL is [bold]{settings.model}[/]{default}; `copilot models --measure` measures speed.")


def register(app: typer.Typer) -> None:
    app.command("models")(models)
