"""Generated tokens/s of the embedded model through the gateway vs bare llama-cpp-python, same prompts, same run.

Also reports time to first token for a ~500-token prompt. Last line: one JSON object (``ratio`` = gateway/bare).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from copilot.gateway import Gateway
from copilot.gateway.local import load_model
from copilot.settings import Settings

PROMPTS = [
    "Summarise this support ticket in one sentence: the customer was charged twice for invoice INV-2026-0042 and wants a refund.",
    "Write a short, friendly reply to a customer who cannot log in after changing phones.",
    "List three reasons a sales deal might stall in the negotiation stage.",
    "Rewrite more politely: 'Your app is broken, fix it now.'",
]
SYSTEM = {"role": "system", "content": "You are a helpful assistant for a customer support team."}


def messages(prompt: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": prompt}]


def bare_tokens_per_s(llama, max_tokens: int, rounds: int) -> float:
    tokens, seconds = 0, 0.0
    for _ in range(rounds):
        for prompt in PROMPTS:
            started = time.perf_counter()
            result = llama.create_chat_completion(
                messages=messages(prompt), max_tokens=max_tokens, temperature=0.0, seed=0
            )
            seconds += time.perf_counter() - started
            tokens += result["usage"]["completion_tokens"]
    return tokens / seconds


def gateway_tokens_per_s(gateway: Gateway, max_tokens: int, rounds: int) -> float:
    tokens, seconds = 0, 0.0
    for _ in range(rounds):
        for prompt in PROMPTS:
            started = time.perf_counter()
            completion = gateway.complete(messages(prompt), max_tokens=max_tokens, temperature=0.0, seed=0)
            seconds += time.perf_counter() - started
            tokens += completion.tokens_out
    return tokens / seconds


def time_to_first_token(gateway: Gateway) -> tuple[float, int]:
    long_prompt = " ".join(["The customer reports that invoices exported to CSV are empty after the last update."] * 33)
    started = time.perf_counter()
    stream = gateway.stream(messages(long_prompt + "\nSummarise the problem."), max_tokens=8, temperature=0.0)
    for _ in stream:
        return (time.perf_counter() - started) * 1000, len(long_prompt.split())
    return float("nan"), 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--rounds", "--n", dest="rounds", type=int, default=3, help="Measurement rounds (--n for a quick run)."
    )
    args = parser.parse_args()
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), model="local/smollm2-135m-instruct")
    gateway = Gateway(settings)
    gateway.check_ready()
    llama = load_model(None, None, settings.local_context_tokens).llama
    bare_tokens_per_s(llama, 8, 1)  # warm-up
    # Interleave the two measurements so drift on the shared machine hits both alike.
    bare, through = [], []
    for _ in range(args.rounds):
        bare.append(bare_tokens_per_s(llama, args.max_tokens, 1))
        through.append(gateway_tokens_per_s(gateway, args.max_tokens, 1))
    bare_rate, gateway_rate = sum(bare) / len(bare), sum(through) / len(through)
    ttft_ms, prompt_words = time_to_first_token(gateway)
    figures = {
        "bare_tokens_per_s": round(bare_rate, 1),
        "gateway_tokens_per_s": round(gateway_rate, 1),
        "ratio": round(gateway_rate / bare_rate, 3),
        "ttft_ms_500_token_prompt": round(ttft_ms, 1),
        "prompt_words": prompt_words,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}",
    }
    print(f"bare llama-cpp-python: {figures['bare_tokens_per_s']} generated tokens/s")
    print(
        f"through the gateway:   {figures['gateway_tokens_per_s']} generated tokens/s (ratio {figures['ratio']}, target >= 0.9)"
    )
    print(f"time to first token, ~500-token prompt: {figures['ttft_ms_500_token_prompt']} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
