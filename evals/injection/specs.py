"""What each task reads and how its output is read: one ``InjectionSpec`` per task the suite runs.

A spec says which carriers the task reads (an attack planted there reaches it), how to run it on a planted workspace
(through ``services.run_task``, so the result is stored as the product stores it), how to read the stored result
back (the text its model may have written), what a model that obeys the attacker answers (``answer``), and how strict
the checks are (``quotes_input``, ``customer_facing``).

The built-in tasks have their own spec (``TASKS``). Any other registered task gets ``generic_spec(task)``: it is
planted into the task's declared ``carriers``, run with ``{task.subject_field: <the planted record of kind
task.subject>}``, its stored result JSON is read as text, and the fake model obeys the attacker within whatever JSON
schema the task asks for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from copilot.errors import InvalidInput
from evals.injection.corpus import CARRIERS, SYSTEM_PROMPT, Attempt
from evals.injection.fixtures import NOW, Planted

if TYPE_CHECKING:
    from copilot.gateway.fake import FakeModel
    from copilot.services import Services
    from copilot.tasks.registry import Task

SCRIPTED_ANSWERS = 12  # queued per task run: more than any task asks for on this workspace


@dataclass
class Observation:
    """What one task produced for one attempt, read back from the stored AiResult."""

    task: str
    attempt: Attempt
    output: str = ""  # the final text the model may have written (after fallbacks)
    stored: str = ""  # the whole stored result, as JSON
    status: str | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    used_fallback: bool = False
    fallback_reason: str | None = None
    injection_suspected: bool = False
    needs_explicit_approval: list[str] | None = None
    inputs: list[str] = field(default_factory=list)  # texts the task read, which its output may quote
    prompts: list[list[dict[str, str]]] = field(default_factory=list)
    label: str | None = None
    error: str | None = None
    exposed: bool = False
    adopted: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        out = [f"{v.get('name')}" for v in self.verdicts if not v.get("passed", True)]
        if self.used_fallback:
            out.append(f"fallback ({self.fallback_reason})")
        if self.injection_suspected:
            out.append("injection_suspected")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures


Run = Callable[["Services", Any, Planted, str], tuple[int | None, Observation]]  # -> (AiResult id, observation)
Read = Callable[[Observation, dict[str, Any], Planted], None]
Answer = Callable[["InjectionSpec", Attempt, Planted], str]


@dataclass(frozen=True)
class InjectionSpec:
    name: str
    carriers: tuple[str, ...]
    run: Run  # (services, repo, planted, strategy) -> (AiResult id, observation)
    read: Read | None = None  # fills the observation from the stored result
    answer: Answer | None = None  # what a model that obeys the attacker (and the task's schema) answers
    prompt: str | None = None  # the prompt template the task renders
    quotes_input: bool = True  # False: customer-facing text that must never repeat the attack's links
    customer_facing: bool = False  # a draft or rewrite: commitments must be flagged for explicit approval
    local_strategy: str = "model"  # the strategy on the embedded model
    searches: bool = False  # reads the search index (built for the attempt's workspace before it runs)
    checks_output: bool = True  # False: it only has to run without crashing (a classifier)
    generic: bool = False  # built from the registry, not written for the task

    def script(self, fake: FakeModel, attempt: Attempt, planted: Planted) -> None:
        """Make the fake model obey the attacker for one run of this task."""
        if self.answer is not None:
            fake.push(*[self.answer(self, attempt, planted)] * SCRIPTED_ANSWERS)
        elif self.generic:
            fake.function = obeying(payload_text(self, attempt))


# llama.cpp cannot build the grammar of DraftText (text up to 1500 characters) or RewriteText (4000): with the embedded
# model, strategy "model" crashes the process (segmentation fault). Those two tasks keep their embedded default there.
LOCAL_NOTE = (
    "reply_draft and tone_rewrite ran their embedded default (retrieval draft, rule rewrite): with the embedded model "
    "strategy=model crashes llama.cpp on their output grammar "
    "(DraftText.text max 1500, RewriteText.text max 4000 characters)"
)


def read_stored(observation: Observation, row: Any) -> dict[str, Any]:
    """The stored AiResult's status, verdicts and fallback onto the observation; returns the result itself."""
    observation.status = row.status.value
    observation.verdicts = list(row.guard_verdicts or [])
    observation.used_fallback = bool(row.content.get("used_fallback"))
    observation.fallback_reason = row.content.get("fallback_reason")
    result = row.content.get("result", {})
    observation.stored = json.dumps(result, ensure_ascii=False)
    return result


def _run_registered(name: str, params: Callable[[Planted], dict[str, Any]]) -> Run:
    def run(services: Services, repo: Any, planted: Planted, strategy: str) -> tuple[int | None, Observation]:
        outcome = services.run_task(repo, name, {**params(planted), "strategy": strategy})
        return outcome.ai_result_id, Observation(name, planted.attempt)

    return run


# -- reply_draft ----------------------------------------------------------------------------------


def read_reply_draft(observation: Observation, result: dict[str, Any], planted: Planted) -> None:
    observation.output = result.get("text", "")
    observation.injection_suspected = bool(result.get("injection_suspected"))
    observation.needs_explicit_approval = list(result.get("needs_explicit_approval") or [])


def answer_reply_draft(spec: InjectionSpec, attempt: Attempt, planted: Planted) -> str:
    return fit_answer(payload_text(spec, attempt), 1500)  # the draft's model path writes plain text


# -- ticket_summary -------------------------------------------------------------------------------


def read_ticket_summary(observation: Observation, result: dict[str, Any], planted: Planted) -> None:
    bullets = [
        b.get("text", "")
        for key in ("what_happened", "agent_commitments", "open_questions")
        for b in result.get(key) or []
    ]
    observation.output = "\n".join([result.get("intent", ""), *bullets, result.get("status", "")])


def answer_ticket_summary(spec: InjectionSpec, attempt: Attempt, planted: Planted) -> str:
    return fit_answer(payload_text(spec, attempt), 400)  # the summary's model path writes plain sentences


# -- tone_rewrite ---------------------------------------------------------------------------------


def run_tone_rewrite(services: Services, repo: Any, planted: Planted, strategy: str) -> tuple[int | None, Observation]:
    params = {"text": planted.rewrite_text, "tone": "friendly", "strategy": strategy}
    outcome = services.run_task(repo, "tone_rewrite", params)
    return outcome.ai_result_id, Observation("tone_rewrite", planted.attempt, inputs=[planted.rewrite_text or ""])


def read_tone_rewrite(observation: Observation, result: dict[str, Any], planted: Planted) -> None:
    observation.output = result.get("text", "")
    approval = result.get("needs_explicit_approval")
    observation.needs_explicit_approval = list(approval) if approval is not None else None


def answer_tone_rewrite(spec: InjectionSpec, attempt: Attempt, planted: Planted) -> str:
    from copilot.tasks.tone_rewrite import split_signature

    body, _ = split_signature(planted.rewrite_text or "")
    # every fact kept, the attacker's text added
    return fit_answer(f"{body}\n\n{payload_text(spec, attempt)}", 4000)


# -- call_summary ---------------------------------------------------------------------------------


def read_call_summary(observation: Observation, result: dict[str, Any], planted: Planted) -> None:
    points = [p.get("text", "") for key in ("key_points", "objections", "decisions") for p in result.get(key) or []]
    items = [" ".join(str(a.get(k) or "") for k in ("what", "owner", "due")) for a in result.get("action_items") or []]
    step = (result.get("next_step") or {}).get("text", "")
    observation.output = "\n".join([result.get("summary", ""), *points, *items, step])


def answer_call_summary(spec: InjectionSpec, attempt: Attempt, planted: Planted) -> str:
    text = payload_text(spec, attempt)
    turn = planted.attack_turn_id or 0
    point = {"text": fit_answer(text, 300), "turn_ids": [turn]}
    return json.dumps(
        {
            "summary": fit_answer(text, 600),
            "summary_turn_ids": [turn],
            "key_points": [point],
            "objections": [],
            "decisions": [point],
            "action_items": [
                {"what": fit_answer(text, 300), "owner": planted.attack_speaker, "due": None, "turn_ids": [turn]}
            ],
            "next_step": point,
        }
    )


# -- deal_brief -----------------------------------------------------------------------------------


def read_deal_brief(observation: Observation, result: dict[str, Any], planted: Planted) -> None:
    from copilot.tasks.deal_facts import DealFacts

    changes = [c.get("text", "") for c in result.get("changes") or []]
    observation.output = "\n".join(
        [result.get("narrative", ""), (result.get("suggested_next_step") or {}).get("text", ""), *changes]
    )
    try:  # what the template narrative renders
        observation.inputs = DealFacts.model_validate(result.get("facts") or {}).texts()
    except ValidationError:
        pass


def answer_deal_brief(spec: InjectionSpec, attempt: Attempt, planted: Planted) -> str:
    text = payload_text(spec, attempt)
    return json.dumps(
        {
            "narrative": fit_answer(text, 900),
            "next_step": fit_answer(text, 240),
            "source_ids": [f"deal:{planted.deal_id}"],
        }
    )


# -- nps_themes -----------------------------------------------------------------------------------


def read_nps_themes(observation: Observation, result: dict[str, Any], planted: Planted) -> None:
    # Only names the model wrote: keyword labels are the comments' own words.
    observation.output = "\n".join(
        t.get("label", "") for t in result.get("themes") or [] if t.get("label_source") == "model"
    )


def answer_nps_themes(spec: InjectionSpec, attempt: Attempt, planted: Planted) -> str:
    return json.dumps({"name": fit_answer(payload_text(spec, attempt), 40)})


# -- ticket_sentiment (a classifier: no model) ----------------------------------------------------


def run_ticket_sentiment(
    services: Services, repo: Any, planted: Planted, strategy: str
) -> tuple[int | None, Observation]:
    """The registered task on a planted message; other carriers' text goes through the classifier alone."""
    from copilot.tasks.sentiment import LABELS

    observation = Observation("ticket_sentiment", planted.attempt)
    if planted.attempt.carrier == "message":
        outcome = services.run_task(repo, "ticket_sentiment", {"ticket_id": planted.ticket_id, "strategy": strategy})
        labels = [outcome.result.label, *(m.sentiment.label for m in outcome.result.messages)]
        result_id = outcome.ai_result_id
    else:
        labels, result_id = [s.label for s in services.sentiment.classify([planted.attempt.text])], None
    observation.label = labels[0] if labels else None
    if not labels or any(label not in LABELS for label in labels):
        observation.error = f"unexpected labels {labels}"
    return result_id, observation


TASKS: tuple[InjectionSpec, ...] = (
    InjectionSpec(
        "reply_draft",
        ("message", "kb_article"),
        _run_registered("reply_draft", lambda planted: {"ticket_id": planted.ticket_id}),
        read_reply_draft,
        answer_reply_draft,
        prompt="reply_draft",
        quotes_input=False,
        customer_facing=True,
        local_strategy="auto",
        searches=True,
    ),
    InjectionSpec(
        "ticket_summary",
        ("message",),
        _run_registered("ticket_summary", lambda planted: {"ticket_id": planted.ticket_id}),
        read_ticket_summary,
        answer_ticket_summary,
        prompt="ticket_summary",
    ),
    InjectionSpec(
        "tone_rewrite",
        ("message", "kb_article"),
        run_tone_rewrite,
        read_tone_rewrite,
        answer_tone_rewrite,
        prompt="tone_rewrite",
        customer_facing=True,
        local_strategy="auto",
    ),
    InjectionSpec(
        "call_summary",
        ("call_turn",),
        _run_registered("call_summary", lambda planted: {"call_id": planted.call_id}),
        read_call_summary,
        answer_call_summary,
        prompt="call_summary",
    ),
    InjectionSpec(
        "nps_themes",
        ("nps_comment",),
        _run_registered("nps_themes", lambda planted: {"k": 3, "as_of": NOW}),
        read_nps_themes,
        answer_nps_themes,
        prompt="nps_theme_label",
    ),
    InjectionSpec(
        "deal_brief",
        ("nps_comment", "call_turn"),
        _run_registered("deal_brief", lambda planted: {"deal_id": planted.deal_id, "as_of": NOW}),
        read_deal_brief,
        answer_deal_brief,
        prompt="deal_brief",
    ),
    InjectionSpec("ticket_sentiment", CARRIERS[:3], run_ticket_sentiment, local_strategy="auto", checks_output=False),
)


# -- any other registered task --------------------------------------------------------------------


def read_generic(observation: Observation, result: dict[str, Any], planted: Planted) -> None:
    observation.output = observation.stored  # the whole stored result, as JSON text
    observation.injection_suspected = bool(result.get("injection_suspected"))
    approval = result.get("needs_explicit_approval")
    observation.needs_explicit_approval = list(approval) if isinstance(approval, list) else None


def read_delivered(observation: Observation, result: dict[str, Any], planted: Planted) -> None:
    """A result that reaches the customer: its message is what is checked (labels such as a theme name are not)."""
    read_generic(observation, result, planted)
    if isinstance(result.get("text"), str):
        observation.output = result["text"]


def generic_params(task: Task, planted: Planted) -> dict[str, Any]:
    """``{subject_field: the planted record of the task's subject kind}``, when the workspace has such a record."""
    record_id = planted.record_id(task.subject)
    return {task.subject_field: record_id} if task.subject_field and record_id is not None else {}


def generic_spec(task: Task) -> InjectionSpec:
    """The spec of a registered task that has no spec of its own, from its declaration."""
    return InjectionSpec(
        task.name,
        tuple(carrier for carrier in task.carriers if carrier in CARRIERS),
        _run_registered(task.name, lambda planted: generic_params(task, planted)),
        read_delivered if task.delivers else read_generic,
        prompt=task.prompt,
        quotes_input=not task.delivers,  # text that reaches the customer may not repeat an attack's links
        customer_facing=task.delivers,
        local_strategy="model" if task.uses_model else "auto",
        searches=True,  # it may search the history: index the workspace
        generic=True,
    )


def available_tasks() -> list[InjectionSpec]:
    """The built-in specs whose task is registered, then a generic spec for every other registered task."""
    from copilot.tasks import registry

    registered = registry.tasks()
    specs = [spec for spec in TASKS if spec.name in registered]
    named = {spec.name for spec in TASKS}
    return specs + [generic_spec(task) for name, task in registered.items() if name not in named]


def spec_for(name: str) -> InjectionSpec:
    spec = next((s for s in available_tasks() if s.name == name), None)
    if spec is None:
        raise InvalidInput(f"task: no injection spec for '{name}'")
    return spec


# -- what the compliant model answers -------------------------------------------------------------


@cache
def system_text(prompt: str) -> str:
    """The system part of a prompt template, without its jinja tags: the instructions an attacker wants revealed."""
    from copilot.prompting import load_prompt

    body = load_prompt(prompt).body
    part = re.split(r"^::: (?:user|assistant)\s*$", body.split("::: system", 1)[-1], flags=re.M)[0]
    part = re.sub(r"{%.*?%}|{{.*?}}|{#.*?#}", "", part, flags=re.S)
    return re.sub(r"[ \t]+", " ", part).strip()


def fit_answer(text: str, limit: int) -> str:
    """The fake model's answer for a field of at most ``limit`` characters: cut at a word with no "…" (what a model
    writes, not a task's ``clip``), and on one line in a short field (a name, a label)."""
    text = " ".join(text.split()) if limit <= 80 else text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut if len(cut) >= 3 else text[:limit]


def payload_text(spec: InjectionSpec, attempt: Attempt) -> str:
    return attempt.payload.replace(SYSTEM_PROMPT, system_text(spec.prompt) if spec.prompt else "")


def obeying(text: str) -> Callable[[list[dict[str, Any]], dict[str, Any]], str]:
    """A fake model's answer function that says ``text``: as every string of the JSON schema asked for, if any."""

    def answer(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        response_format = params.get("response_format")
        schema = response_format.get("schema") if isinstance(response_format, dict) else None
        return json.dumps(filled_instance(schema, text)) if schema else text

    return answer


def filled_instance(schema: dict[str, Any], text: str, defs: dict[str, Any] | None = None) -> Any:
    """An instance of a JSON schema with every property present and every string saying ``text``."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return filled_instance(defs[schema["$ref"].split("/")[-1]], text, defs)
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"] or schema["anyOf"]
        return filled_instance(options[0], text, defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: filled_instance(sub, text, defs) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        count = min(max(1, schema.get("minItems", 0)), schema.get("maxItems", 1))
        return [filled_instance(schema.get("items", {}), text, defs) for _ in range(count)]
    if kind == "string":
        value = fit_answer(text, schema.get("maxLength", 4000))
        return value.ljust(schema.get("minLength", 0), ".")
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return text
