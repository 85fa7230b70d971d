"""Task adapters: how an eval case's inputs become a task call, and the result an output to score.

Adding a task to evals is one entry::

    @adapter("call_summary", metrics=("rougeL", "evidence_id_validity", "guard_pass_rate"))
    def call_summary(env: EvalEnv, case: Case) -> CaseOutput:
        outcome = summarize_transcript(env.context(), transcript_from(case.inputs), env.strategy)
        return from_outcome(outcome, text=outcome.result.as_text())

A registered task without an entry gets the generic adapter (``generic_adapter``): its case inputs are the task's
params and its result's JSON text is scored.

``prepare`` (optional) runs once per suite run, in case order, before the cases run
concurrently: use it to write records into the run's temporary store (ids then do not depend
on thread timing, so prompts and response-cache keys are stable from run to run).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copilot.errors import InvalidInput
from copilot.gateway import Completion, Gateway
from copilot.guards import check_citations, check_cited_ids
from copilot.services import Services
from copilot.settings import Settings
from copilot.tasks.base import TaskOutcome
from copilot.tasks.context import TaskContext
from evals.metrics import CaseOutput
from evals.suite import Case

if TYPE_CHECKING:
    from copilot.gateway.fake import FakeModel

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AUTHOR_KINDS = {
    "customer": "customer",
    "user": "customer",
    "client": "customer",
    "agent": "agent",
    "support": "agent",
    "internal_note": "internal_note",
    "note": "internal_note",
    "internal": "internal_note",
}


class CallCounter:
    """A gateway observer counting real model calls and cache hits (an unchanged cached re-run has zero calls)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.model_calls = 0
        self.cache_hits = 0

    def __call__(self, messages: list[dict[str, str]], completion: Completion) -> None:
        with self._lock:
            if completion.cached:
                self.cache_hits += 1
            else:
                self.model_calls += 1


@dataclass
class EvalEnv:
    """What adapters run with during one suite run: one Services (the model gateway, observed by a call counter,
    a temporary store, the shared embedder, index and classifier) and the judge's gateway when there is one."""

    services: Services
    calls: CallCounter
    strategy: str = "auto"
    judge: Gateway | None = None
    state: dict[str, Any] = field(default_factory=dict)  # adapters keep what prepare() built here
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards ``state`` across the case threads

    @classmethod
    def create(
        cls,
        settings: Settings,
        strategy: str,
        workdir: Path,
        *,
        fake: FakeModel | None = None,
        judge_model: str | None = None,
    ) -> EvalEnv:
        """A run environment whose database and vector index live under ``workdir`` (a temporary folder).

        The store, embedder, index and classifier are built on first use (a tone suite never loads the embedder).
        """
        settings = settings.model_copy(
            update={"data_dir": workdir, "database_url": None, "chroma_path": None, "chroma_url": None}
        )
        calls = CallCounter()
        services = Services(settings, fake=fake, observers=(calls,), sleep=lambda _s: None)
        judge = None
        if judge_model:
            judge_settings = settings.model_copy(update={"model": judge_model, "fallback_models": []})
            servers = services.gateway.local.servers  # one local model server per model, shared with the judge
            judge = Services(judge_settings, fake=fake, servers=servers, observers=(calls,), sleep=lambda _s: None)
            judge = judge.gateway
        return cls(services=services, calls=calls, strategy=strategy, judge=judge)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def embedder(self) -> Any:
        return self.services.embedder

    @property
    def store(self) -> Any:
        """A migrated SQLite store in the run's temporary folder (created on first use)."""
        return self.services.store

    @property
    def index(self) -> Any:
        return self.services.index

    def context(self, repo: Any = None) -> TaskContext:
        return self.services.context(repo)

    def task_strategy(self, task: str) -> str:
        """The suite's strategy if the task has it, else what "auto" runs for the task (COPILOT_TASK_STRATEGIES,
        then the model's profile)."""
        from copilot.tasks import registry

        entry = registry.get(task)
        asked = self.strategy if self.strategy in entry.strategies else "auto"
        chosen = self.services.settings.task_strategies.get(task)
        return entry.resolve_strategy(asked, self.services.gateway.profile, chosen)

    def close(self) -> None:
        built = "store" in self.services.__dict__
        self.services.close()
        if built:
            self.services.store.engine.dispose()


Runner = Callable[[EvalEnv, Case], CaseOutput]
Preparer = Callable[[EvalEnv, list[Case]], None]


@dataclass(frozen=True)
class TaskAdapter:
    task: str
    run: Runner
    metrics: tuple[str, ...]  # what a suite measures when it lists no metrics
    prepare: Preparer | None = None
    kind: str = "text"  # "text" or "label": what the output is
    baselines: dict[str, Runner] = field(default_factory=dict)  # eval-only reference systems, run as strategies

    def runner_for(self, strategy: str | None) -> Runner:
        """The task itself, or the named baseline (e.g. ``lead2``) when the run asks for it as its strategy."""
        return self.baselines.get(strategy or "", self.run)


ADAPTERS: dict[str, TaskAdapter] = {}


def adapter(
    task: str,
    *,
    metrics: tuple[str, ...],
    prepare: Preparer | None = None,
    kind: str = "text",
    baselines: dict[str, Runner] | None = None,
) -> Callable[[Runner], Runner]:
    """Register ``function(env, case) -> CaseOutput`` as the eval adapter of ``task``; ``baselines`` are reference
    systems (LEAD-2, ...) a run selects as its strategy, e.g. ``--model local/smollm2-135m-instruct@lead2``."""

    def decorate(function: Runner) -> Runner:
        ADAPTERS[task] = TaskAdapter(
            task=task, run=function, metrics=metrics, prepare=prepare, kind=kind, baselines=dict(baselines or {})
        )
        return function

    return decorate


def get_adapter(task: str) -> TaskAdapter:
    """The task's own adapter, else the generic one for a registered task (see ``generic_adapter``)."""
    if task in ADAPTERS:
        return ADAPTERS[task]
    from copilot.tasks import registry

    registered = registry.tasks()
    if task in registered:
        return generic_adapter(task)
    known = sorted(set(ADAPTERS) | set(registered))
    raise InvalidInput(f"task: no eval adapter for '{task}' (known: {', '.join(known)})")


def from_outcome(
    outcome: TaskOutcome[Any], *, text: str | None = None, label: str | None = None, **signals: Any
) -> CaseOutput:
    """A CaseOutput from a task's outcome: result, verdicts, fallback and provenance."""
    provenance = outcome.provenance
    schema_failed = any(v.name == "schema" and not v.passed for v in outcome.verdicts)
    return CaseOutput(
        text=text,
        label=label,
        data=outcome.result.model_dump(mode="json"),
        verdicts=[v.model_dump(mode="json") for v in outcome.verdicts],
        schema_valid=signals.pop("schema_valid", not schema_failed),
        used_fallback=outcome.used_fallback,
        fallback_reason=outcome.fallback_reason,
        model=provenance.model,
        prompt_name=provenance.prompt_name,
        prompt_version=provenance.prompt_version,
        tokens_in=provenance.tokens_in,
        tokens_out=provenance.tokens_out,
        cost_usd=provenance.cost_usd,
        **signals,
    )


# -- shared input helpers --------------------------------------------------------------------------


def need(case: Case, name: str) -> Any:
    value = case.inputs.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"case {case.id}: inputs.{name}: required")
    return value


def case_messages(case: Case) -> list[dict[str, Any]]:
    """The case's conversation as [{author_kind, author, text}]:
    from ``messages`` / ``turns`` or a single ``message``."""
    raw = case.inputs.get("messages") or case.inputs.get("turns")
    if raw is None and case.inputs.get("message"):
        raw = [{"author_kind": "customer", "text": case.inputs["message"]}]
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(
            f"case {case.id}: inputs.messages: a non-empty list of messages (or inputs.message) is required"
        )
    messages = []
    for n, item in enumerate(raw, start=1):
        if isinstance(item, str):
            item = {"author_kind": "customer", "text": item}
        kind = str(item.get("author_kind") or item.get("speaker") or item.get("role") or "customer").lower()
        text = item.get("text") if item.get("text") is not None else item.get("body")
        if kind not in AUTHOR_KINDS or not isinstance(text, str):
            raise InvalidInput(
                f"case {case.id}: inputs.messages[{n - 1}]: needs author_kind (customer/agent/internal_note) and text"
            )
        messages.append(
            {"id": item.get("id"), "author_kind": AUTHOR_KINDS[kind], "author": item.get("author"), "text": text}
        )
    return messages


def customer(case: Case) -> dict[str, Any]:
    value = case.inputs.get("customer") or {}
    return {"name": value} if isinstance(value, str) else dict(value)


# -- ticket_summary --------------------------------------------------------------------------------


def _thread(case: Case) -> Any:
    from copilot.tasks.thread import Thread, ThreadMessage

    messages = case_messages(case)
    return Thread(
        subject=str(case.inputs.get("subject") or ""),
        channel=str(case.inputs.get("channel") or "email"),
        status=str(case.inputs.get("status") or "open"),
        messages=[
            ThreadMessage(
                id=int(m["id"]) if m["id"] is not None else n,
                author_kind=m["author_kind"],
                author=m["author"],
                text=m["text"],
            )
            for n, m in enumerate(messages, start=1)
        ],
    )


def _load_embedder(env: EvalEnv, cases: list[Case]) -> None:
    """Load the embedding model before the clock starts on the cases (it takes a few seconds, once per process)."""
    env.embedder.encode(["warm up"])


def lead_summary(env: EvalEnv, case: Case) -> CaseOutput:
    """LEAD-2: the thread's first two messages, the simple baseline every summary must beat."""
    thread = _thread(case)
    return CaseOutput(text=" ".join(m.text for m in thread.messages[:2]), model="lead2", evidence_valid=True)


@adapter(
    "ticket_summary",
    prepare=_load_embedder,
    baselines={"lead2": lead_summary},
    metrics=(
        "rougeL",
        "schema_validity",
        "guard_pass_rate",
        "evidence_id_validity",
        "checks_pass_rate",
        "fallback_rate",
        "latency_ms",
        "tokens",
        "cost_usd",
    ),
)
def ticket_summary(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: subject, channel, status, messages [{author_kind, author, text}] (ids 1..n unless given)."""
    from copilot.tasks.ticket_summary import summarize_thread

    thread = _thread(case)
    outcome = summarize_thread(env.context(), thread, env.strategy)
    evidence = check_cited_ids(outcome.result.cited_ids(), thread.ids, what="message")
    return from_outcome(outcome, text=outcome.result.as_text(), evidence_valid=evidence.passed)


# -- reply_draft -----------------------------------------------------------------------------------


def _prepare_reply_drafts(env: EvalEnv, cases: list[Case]) -> None:
    """One workspace holds the demo help center and one account per case (search is account-scoped);
    a case with its own ``kb`` list gets a workspace of its own. Records are written in case order."""
    from copilot.demo import kb
    from copilot.store import get_or_create_workspace
    from copilot.store.models import KbArticle

    store = env.store
    tickets: dict[str, tuple[str, int]] = {}
    errors: dict[str, str] = {}
    intents: dict[tuple, str] = {}  # (workspace, record kind, id) -> the intent of a history row or library entry
    to_index: dict[str, dict[str, list[int]]] = {}
    for number, case in enumerate(cases, start=1):
        own_kb = case.inputs.get("kb")
        if own_kb not in (None, "demo", "none") and not isinstance(own_kb, list):
            errors[case.id] = f"case {case.id}: inputs.kb: use 'demo', 'none' or a list of {{title, body}} articles"
            continue
        own_workspace = isinstance(own_kb, list) or bool(case.inputs.get("library"))  # a library is workspace-wide
        slug = "evals-nokb" if own_kb == "none" else f"case-{number}" if own_workspace else "evals"
        if slug not in to_index:
            with store.session() as session:
                get_or_create_workspace(session, slug)
            with store.repo(slug) as repo:
                articles = (
                    own_kb if isinstance(own_kb, list) else [] if own_kb == "none" else _demo_articles(kb.ARTICLES)
                )
                rows = [
                    repo.add(
                        KbArticle(
                            title=str(a.get("title", "")), body=str(a.get("body", "")), tags=list(a.get("tags") or [])
                        )
                    )
                    for a in articles
                ]
                repo.session.flush()
                to_index[slug] = {"kb_article": [r.id for r in rows], "ticket": [], "message": [], "reply": []}
        try:
            tickets[case.id] = _write_case(store, slug, case, to_index[slug], intents)
        except Exception as error:  # one malformed case must not sink the others
            errors[case.id] = f"{type(error).__name__}: {error}"
    for slug, kinds in to_index.items():  # one embedding batch per record kind and workspace
        with store.repo(slug) as repo:
            for kind, record_ids in kinds.items():
                env.index.index_records(repo, kind, record_ids)
    env.state["tickets"], env.state["errors"], env.state["intents"] = tickets, errors, intents
    _load_intent_judge(env, cases)


def _load_intent_judge(env: EvalEnv, cases: list[Case]) -> None:
    """The intent judges (evals/intent_judge.py) for cases with an intent, when their public data is present: two
    folds of cases, each judged by a judge that never saw the fold's expected replies."""
    from evals.data import shared_data_dir
    from evals.intent_judge import DATA, load_intent_judges

    judged = [case for case in cases if case.inputs.get("intent")]
    if not judged or not (shared_data_dir() / DATA).is_file():
        return
    folds = [judged[0::2], judged[1::2]]
    cache = (env.settings.cache_dir or Path(tempfile.gettempdir())) / "intent-judge"
    references = [{reference for case in fold for reference in case.references} for fold in folds]
    judges = load_intent_judges(shared_data_dir(), cache, references, env.embedder.encode)
    env.state["intent_judges"] = {case.id: judge for fold, judge in zip(folds, judges, strict=True) for case in fold}


def _write_library(repo: Any, case: Case, written: dict[str, list[int]], intents: dict[tuple, str]) -> None:
    """The workspace's reply library: approved question/answer pairs shared with every customer."""
    from copilot.store.models import ReplyTemplate

    for entry in case.inputs.get("library") or []:
        row = repo.add(ReplyTemplate(question=str(entry["customer"]), answer=str(entry["agent"])))
        repo.session.flush()
        written["reply"].append(row.id)
        intents[(repo.workspace.slug, "reply", row.id)] = str(entry.get("intent"))


def _write_case(
    store: Any, slug: str, case: Case, ids: dict[str, list[int]], intents: dict[tuple, str] | None = None
) -> tuple[str, int]:
    from copilot.store.models import AuthorKind, Channel, Message, Ticket

    intents = intents if intents is not None else {}
    with store.repo(slug) as repo:
        written: dict[str, list[int]] = {kind: [] for kind in ids}
        _write_library(repo, case, written, intents)
        account_id, contact_id = _write_customer(repo, case)
        at = _write_history(repo, slug, case, (account_id, contact_id), written, intents)
        ticket = repo.add(
            Ticket(
                subject=str(case.inputs.get("subject") or "(no subject)"),
                account_id=account_id,
                contact_id=contact_id,
                channel=Channel(case.inputs.get("channel") or "email"),
                assignee=case.inputs.get("assignee"),
                opened_at=at + timedelta(days=1),
            )
        )
        repo.session.flush()
        written["ticket"].append(ticket.id)
        at += timedelta(days=1)
        for m in case_messages(case):
            at += timedelta(minutes=5)
            message = repo.add(
                Message(
                    ticket_id=ticket.id,
                    author_kind=AuthorKind(m["author_kind"]),
                    author=m["author"],
                    body=m["text"],
                    sent_at=at,
                )
            )
            repo.session.flush()
            written["message"].append(message.id)
    for kind, new in written.items():  # only once the case's transaction committed
        ids[kind] += new
    return slug, ticket.id


def _write_customer(repo: Any, case: Case) -> tuple[int | None, int | None]:
    """The case's account (unless ``no_account``) and its customer as a contact; returns their ids."""
    from copilot.store.models import Account, Contact

    person = customer(case)
    account = None
    if not case.inputs.get("no_account"):
        account = repo.add(Account(name=str(case.inputs.get("account") or f"Account of case {case.id}")))
        repo.session.flush()
    account_id = account.id if account else None
    if not person.get("name"):
        return account_id, None
    contact = repo.add(
        Contact(
            account_id=account_id,
            name=str(person["name"]),
            email=person.get("email"),
            language=person.get("language"),
        )
    )
    repo.session.flush()
    return account_id, contact.id


def _write_history(
    repo: Any,
    slug: str,
    case: Case,
    owner: tuple[int | None, int | None],
    written: dict[str, list[int]],
    intents: dict[tuple, str],
) -> datetime:
    """The account's earlier tickets (where past agent replies come from); returns the time of the last message."""
    from copilot.store.models import AuthorKind, Channel, Message, Ticket

    at = T0
    for past in case.inputs.get("history") or []:
        old = repo.add(
            Ticket(
                subject=str(past.get("subject", "Earlier request")),
                account_id=owner[0],
                contact_id=owner[1],
                channel=Channel(past.get("channel", "email")),
                opened_at=at,
            )
        )
        repo.session.flush()
        written["ticket"].append(old.id)
        for kind, key in ((AuthorKind.customer, "customer"), (AuthorKind.agent, "agent")):
            if past.get(key):
                at += timedelta(minutes=7)
                message = repo.add(Message(ticket_id=old.id, author_kind=kind, body=str(past[key]), sent_at=at))
                repo.session.flush()
                written["message"].append(message.id)
                if past.get("intent"):
                    intents[(slug, "message", message.id)] = str(past["intent"])
    return at


def _demo_articles(articles: list[tuple]) -> list[dict[str, Any]]:
    out = []
    for title, overview, steps, tips, tags in articles:
        body = f"## Overview\n{overview}\n\n## Steps\n" + "\n".join(f"{n}. {s}" for n, s in enumerate(steps, start=1))
        if tips:
            body += "\n\n## Troubleshooting\n" + "\n".join(f"- {t}" for t in tips)
        out.append({"title": title, "body": body, "tags": tags})
    return out


@adapter(
    "reply_draft",
    prepare=_prepare_reply_drafts,
    metrics=(
        "chrF",
        "guard_pass_rate",
        "citation_validity",
        "checks_pass_rate",
        "fallback_rate",
        "latency_ms",
        "tokens",
        "cost_usd",
    ),
)
def reply_draft(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: subject, channel, customer {name, language}, assignee, messages, history [{subject, customer, agent}],
    kb ("demo" (default), "none" or a list of {title, body})."""
    from copilot.store.models import Ticket
    from copilot.tasks.reply_draft import draft_for_thread
    from copilot.tasks.thread import load_thread

    if case.id in env.state["errors"]:
        raise InvalidInput(env.state["errors"][case.id])
    slug, ticket_id = env.state["tickets"][case.id]
    with env.store.repo(slug) as repo:
        ticket = repo.get(Ticket, ticket_id)
        outcome = draft_for_thread(env.context(repo), ticket, load_thread(repo, ticket), env.strategy)
        draft = outcome.result
        citations = check_citations(draft.text, [s.label for s in draft.sources])
        repo.session.rollback()  # the eval never keeps what a task might have written
    output = from_outcome(outcome, text=draft.text, citations_valid=citations.passed)
    if intent := case.inputs.get("intent"):
        output.data["intent_addressed"] = _addressed(env, slug, draft, str(intent))
        if judge := env.state.get("intent_judges", {}).get(case.id):
            output.data["intent_judged"] = judge.intent_of([draft.text], env.embedder.encode)[0] == str(intent)
    return output


def _addressed(env: EvalEnv, slug: str, draft: Any, intent: str) -> bool:
    """The draft answers the request's intent: the first source it cites is an answer to that intent."""
    cited = re.findall(r"\[(S\d+)\]", draft.text)
    by_label = {s.label: s for s in draft.sources}
    for label in cited:
        source = by_label.get(label)
        if source is not None and source.record_kind in ("message", "reply"):
            return env.state["intents"].get((slug, source.record_kind, source.record_id)) == intent
    return False


# -- tone_rewrite ----------------------------------------------------------------------------------


def _load_tone_judge(env: EvalEnv, cases: list[Case]) -> None:
    """The politeness judge (evals/tone_judge.py) when the public data it is fitted on is present."""
    from evals.data import shared_data_dir
    from evals.tone_judge import load_judge

    data = shared_data_dir()
    if (data / "stanford_politeness" / "stack_exchange_dev.jsonl").is_file():
        cache = (env.settings.cache_dir or Path(tempfile.gettempdir())) / "tone-judge"
        env.state["tone_judge"] = load_judge(data, cache, env.embedder.encode)


@adapter(
    "tone_rewrite",
    prepare=_load_tone_judge,
    metrics=(
        "chrF",
        "fact_preservation",
        "guard_pass_rate",
        "changed_rate",
        "checks_pass_rate",
        "fallback_rate",
        "latency_ms",
        "tokens",
        "cost_usd",
    ),
)
def tone_rewrite(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: text, tone (a built-in tone; default friendly)."""
    from copilot.tasks.tone_rewrite import rewrite_text

    outcome = rewrite_text(
        env.context(), str(need(case, "text")), str(case.inputs.get("tone") or "friendly"), env.strategy
    )
    result = outcome.result
    output = from_outcome(outcome, text=result.text, facts_preserved=not result.lost)
    judge = env.state.get("tone_judge")
    if judge is not None:
        output.data["moved"] = judge.moved(result.tone, [result.original], [result.text], env.embedder.encode)[0]
    return output


# -- call_summary ----------------------------------------------------------------------------------


def _transcript(case: Case) -> Any:
    from copilot.tasks.call_summary import Transcript, TranscriptTurn

    raw = case.inputs.get("turns")
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"case {case.id}: inputs.turns: a non-empty list of {{speaker, text}} turns is required")
    participants = case.inputs.get("participants") or []
    roles = {str(p.get("name")): p.get("role") for p in participants if isinstance(p, dict)}
    turns = [
        TranscriptTurn(
            id=int(t.get("id", n)),
            position=n,
            speaker=str(t.get("speaker") or "Speaker"),
            start_s=float(t.get("start_s", n)),
            text=str(t.get("text") or ""),
            role=t.get("role") or roles.get(str(t.get("speaker"))),
        )
        for n, t in enumerate(raw)
    ]
    started = case.inputs.get("started_at")
    return Transcript(
        title=str(case.inputs.get("title") or ""),
        started_at=datetime.fromisoformat(str(started)) if started else None,
        participants=participants,
        turns=turns,
    )


def lead_call(env: EvalEnv, case: Case) -> CaseOutput:
    """LEAD-N: the transcript's first N words, N = the reference's length (the same budget as the answer)."""
    words = max(len(case.references[0].split()), 1) if case.references else 60
    transcript = _transcript(case)
    out: list[str] = []
    for turn in transcript.turns:
        out += turn.text.split()
        if len(out) >= words:
            break
    return CaseOutput(text=" ".join(out[:words]), model="lead", evidence_valid=True)


@adapter(
    "call_summary",
    prepare=_load_embedder,
    baselines={"lead": lead_call},
    metrics=("rouge1", "rouge2", "rougeL", "evidence_id_validity", "guard_pass_rate", "fallback_rate", "latency_ms"),
)
def call_summary(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: turns [{speaker, text, role?}], title, participants, query_type (general | decisions: both are scored on
    the recap, what a rep reads). A transcript shared by several cases (queries on one meeting) is
    summarised once."""
    from copilot.tasks.call_summary import objection_topic, summarize_transcript

    transcript = _transcript(case)
    key = hashlib.sha256(transcript.model_dump_json().encode()).hexdigest()
    with env.lock:
        cached = env.state.setdefault("call_outcomes", {}).get(key)
    outcome = cached or summarize_transcript(env.context(), transcript, env.strategy)
    with env.lock:
        env.state["call_outcomes"][key] = outcome
    result = outcome.result
    evidence = check_cited_ids(result.cited_ids(), transcript.ids, what="turn")
    output = from_outcome(outcome, text=result.as_text(), evidence_valid=evidence.passed)
    output.data.update(
        due_dates=sorted(f"{a.owner or '-'}: {a.due_date}" for a in result.action_items if a.due_date),
        objection_topics=sorted(
            {objection_topic(p.text) for p in result.objections} | ({"competitor"} if result.competitors else set())
        ),
    )
    return output


# -- sentiment -------------------------------------------------------------------------------------


def _load_classifier(env: EvalEnv, cases: list[Case]) -> None:
    env.services.sentiment.classify(["warm up"])


@adapter(
    "sentiment", kind="label", prepare=_load_classifier, metrics=("macro_f1", "macro_recall", "accuracy", "latency_ms")
)
def sentiment(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: message (the text to classify). Expected: negative, neutral or positive."""
    result = env.services.sentiment.classify([str(need(case, "message"))])[0]
    return CaseOutput(
        label=result.label, text=result.label, data=result.model_dump(mode="json"), model="sentiment-head"
    )


# -- any other registered task ---------------------------------------------------------------------

GENERIC_WORKSPACE = "evals"
GENERIC_METRICS = (
    "chrF",
    "schema_validity",
    "guard_pass_rate",
    "checks_pass_rate",
    "fallback_rate",
    "latency_ms",
    "tokens",
    "cost_usd",
)


def _prepare_generic(env: EvalEnv, cases: list[Case]) -> None:
    from copilot.store import get_or_create_workspace

    with env.store.session() as session:
        get_or_create_workspace(session, GENERIC_WORKSPACE)


def generic_adapter(task: str) -> TaskAdapter:
    """The default adapter of a registered task without its own: the case's ``inputs`` are the task's params
    (``strategy`` comes from the suite unless the inputs name one and the suite says auto); the task runs through
    the registry in the run's temporary store (in a workspace of its own, rolled back afterwards), and the result's
    JSON text is what is scored."""

    def run(env: EvalEnv, case: Case) -> CaseOutput:
        params = dict(case.inputs)
        if env.strategy != "auto" or "strategy" not in params:
            params["strategy"] = env.strategy
        with env.store.repo(GENERIC_WORKSPACE) as repo:
            outcome = env.services.run_task(repo, task, params)
            repo.session.rollback()  # the eval never keeps what a task wrote
        text = json.dumps(outcome.result.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
        return from_outcome(outcome, text=text)

    return TaskAdapter(task=task, run=run, metrics=GENERIC_METRICS, prepare=_prepare_generic, kind="text")


def scratch_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="copilot-eval-", ignore_cleanup_errors=True)


# the adapters of the insight scoring tasks, NPS themes, the deal brief and ticket triage register themselves
from evals import insights_adapters, nps_adapters, sales_adapters, triage_adapters  # noqa: E402, F401
