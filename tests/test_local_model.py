"""End-to-end with the real embedded model (SmolLM2-135M via llama.cpp). Marked slow; kept few and short."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import BaseModel, Field

from copilot.gateway import Gateway
from copilot.prompting import load_prompt
from copilot.services import Services
from copilot.settings import Settings

pytestmark = pytest.mark.slow


class TicketTriage(BaseModel):
    topic: str = Field(max_length=40)
    urgent: bool
    priority: int = Field(ge=1, le=5)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Iterator[Gateway]:
    """The gateway on the embedded model; its model server is stopped with the services after the module."""
    services = Services(Settings(data_dir=tmp_path_factory.mktemp("local"), model="local/smollm2-135m-instruct"))
    gateway = services.gateway
    gateway.check_ready()
    yield gateway
    services.close()


def test_structured_output_with_the_local_model_is_a_valid_instance(local):
    messages = [
        {"role": "system", "content": "You triage support tickets. Reply with JSON."},
        {
            "role": "user",
            "content": "Ticket: 'We were charged twice and need a refund today!' Give topic, urgent and priority 1-5.",
        },
    ]
    result = local.structured(messages, TicketTriage, max_tokens=60)
    assert result.ok, result.error
    assert isinstance(result.value, TicketTriage)
    assert result.completion.model == "local/smollm2-135m-instruct" and result.completion.tokens_out > 0


class LongDraft(BaseModel):
    text: str = Field(max_length=1500)


def test_long_text_fields_do_not_crash_the_grammar(local):
    messages = [
        {"role": "system", "content": "Reply with JSON."},
        {"role": "user", "content": "Write a short reply about a refund delay."},
    ]
    result = local.structured(messages, LongDraft, max_tokens=40)
    assert result.completion.tokens_out > 0  # the process survived; llama.cpp used to segfault here


def test_ask_template_answers_offline_and_streams(local):
    messages = load_prompt("ask").render(question="What is an invoice?")
    stream = local.stream(messages, max_tokens=24)
    text = "".join(stream)
    assert text.strip() and stream.completion.tokens_out > 0 and stream.completion.latency_ms > 0


def test_concurrent_requests_share_one_model_safely(local):
    messages = [{"role": "system", "content": "Answer with one word."}, {"role": "user", "content": "Say hello."}]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: local.complete(messages, max_tokens=8, temperature=0.0), range(3)))
    assert len({r.text for r in results}) == 1  # deterministic, not interleaved
