"""Generated tokens/s of each installed local model: the full path (gateway -> litellm -> supervised llama-cpp-python
server) against bare llama-cpp-python loaded in this process, on the same prompts, in the same run.

Also reports time to first token for a ~500-token prompt through the full path, each time a prompt the server has
not seen (its prompt cache would otherwise skip the prefill and report near zero). The two sides alternate prompt by
prompt so that load on the shared machine hits both alike. Last line: one JSON object; ``ratio`` is the lowest
full-path/bare ratio over the measured models (target >= 0.85).

    python bench/local_model.py                  # every installed local model
    python bench/local_model.py --model local/smollm2-135m-instruct --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from copilot.gateway import Gateway
from copilot.gateway.catalog import CATALOG
from copilot.services import Services
from copilot.settings import Settings

PROMPTS = [
    "Summarise this support ticket in one sentence: the customer was charged twice for invoice INV-2026-0042 "
    "and wants a refund.",
    "Write a short, friendly reply to a customer who cannot log in after changing phones.",
    "List three reasons a sales deal might stall in the negotiation stage.",
    "Rewrite more politely: 'Your app is broken, fix it now.'",
]
SYSTEM = {"role": "system", "content": "You are a helpful assistant for a customer support team."}
LONG_PROMPT = " ".join(["The customer reports that invoices exported to CSV are empty after the last update."] * 33)


def messages(prompt: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": prompt}]


def bare_rate(llama, prompt: str, max_tokens: int) -> tuple[int, float]:
    started = time.perf_counter()
    result = llama.create_chat_completion(messages=messages(prompt), max_tokens=max_tokens, temperature=0.0, seed=0)
    return result["usage"]["completion_tokens"], time.perf_counter() - started


def gateway_rate(gateway: Gateway, prompt: str, max_tokens: int) -> tuple[int, float]:
    started = time.perf_counter()
    completion = gateway.complete(messages(prompt), max_tokens=max_tokens, temperature=0.0, seed=0)
    return completion.tokens_out, time.perf_counter() - started


def time_to_first_token(gateway: Gateway, ticket: int) -> float:
    """Milliseconds to the first streamed token of a new ~500-token prompt (it differs from the start of the user
    message, so only the system prompt can come from the server's cache, as for a real new ticket)."""
    prompt = f"Ticket T-{ticket}: {LONG_PROMPT}\nSummarise the problem."
    started = time.perf_counter()
    for _chunk in gateway.stream(messages(prompt), max_tokens=8, temperature=0.0):
        return (time.perf_counter() - started) * 1000
    return float("nan")


def measure(model: str, data_dir: Path, max_tokens: int, rounds: int) -> dict[str, object]:
    from llama_cpp import Llama

    settings = Settings(data_dir=data_dir, model=model)
    gateway = Services(settings).gateway
    gateway.check_ready()
    file = gateway.local.file(model)
    threads = settings.local_threads or os.cpu_count() or 1
    llama = Llama(
        model_path=str(file.path),
        n_ctx=settings.local_context_tokens,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
        seed=0,
    )
    bare_rate(llama, PROMPTS[0], 8)
    gateway_rate(gateway, PROMPTS[0], 8)  # warm-up both sides
    bare, full = [0, 0.0], [0, 0.0]
    for _ in range(rounds):
        for prompt in PROMPTS:
            for side, run in (
                (bare, lambda p: bare_rate(llama, p, max_tokens)),
                (full, lambda p: gateway_rate(gateway, p, max_tokens)),
            ):
                tokens, seconds = run(prompt)
                side[0] += tokens
                side[1] += seconds
    ttft = statistics.median(time_to_first_token(gateway, ticket) for ticket in range(1001, 1004))
    prompt_tokens = len(llama.tokenize(LONG_PROMPT.encode(), add_bos=False))
    llama.close()
    gateway.local.servers.stop()
    bare_tps, full_tps = bare[0] / bare[1], full[0] / full[1]
    return {
        "model": model,
        "file": file.label,
        "size_mb": round(file.path.stat().st_size / 1e6),
        "bare_tokens_per_s": round(bare_tps, 1),
        "gateway_tokens_per_s": round(full_tps, 1),
        "ratio": round(full_tps / bare_tps, 3),
        "ttft_ms_500_token_prompt": round(ttft, 1),
        "prompt_tokens": prompt_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="local/<name>; repeat for several (default: all installed)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="Rounds over the 4 prompts per side.")
    parser.add_argument("--data-dir", type=Path, default=None, help="Where split models are assembled (reused).")
    args = parser.parse_args()
    models = args.model or [spec.model for spec in CATALOG.values() if spec.installed()]
    data_dir = args.data_dir or Path(os.environ.get("COPILOT_DATA_DIR") or tempfile.mkdtemp())
    results = []
    for model in models:
        figures = measure(model, data_dir, args.max_tokens, args.rounds)
        results.append(figures)
        print(
            f"{model}: bare {figures['bare_tokens_per_s']} tok/s, full path {figures['gateway_tokens_per_s']} tok/s "
            f"(ratio {figures['ratio']}, target >= 0.85); time to first token, ~500-token prompt: "
            f"{figures['ttft_ms_500_token_prompt']} ms"
        )
    summary = {
        "ratio": min(r["ratio"] for r in results),
        "models": results,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}",
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
