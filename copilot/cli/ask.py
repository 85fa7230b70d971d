"""`copilot ask`: one question to the configured model, with model, tokens and latency shown."""

from __future__ import annotations

from typing import Annotated

import typer

from copilot.cli.common import console, load_settings


def ask(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str | None, typer.Option(help="litellm model name (default $COPILOT_MODEL).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 160,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print tokens as they arrive.")] = True,
) -> None:
    """Ask the model a question (offline on the embedded model by default)."""
    settings = load_settings()
    if model:
        settings.model = model
    with console.status(f"loading {settings.model} (the first use starts the local model server)...", spinner="dots"):
        from copilot.prompting import load_prompt
        from copilot.services import Services  # litellm: imported when a command needs a model, not for --help

        gateway = Services(settings).gateway
        gateway.check_ready()
    prompt = load_prompt("ask")
    messages = prompt.render(question=question)
    if stream:
        streaming = gateway.stream(messages, max_tokens=max_tokens, temperature=0.2)
        for chunk in streaming:
            console.print(chunk, end="", markup=False, highlight=False)
        console.print()
        completion = streaming.completion
    else:
        completion = gateway.complete(messages, max_tokens=max_tokens, temperature=0.2)
        console.print(completion.text, markup=False, highlight=False)
    if completion is not None:
        console.print(
            f"[dim]model {completion.model} · {completion.tokens_in} tokens in · {completion.tokens_out} out · "
            f"{completion.latency_ms:.0f} ms · prompt {prompt.name}@{prompt.version}[/]"
        )


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
