"""KB article drafts from resolved tickets that share a question: the knowledge loop's writing half.

A draft is made from a cluster of solved or closed tickets whose questions are alike (``kb_drafts`` finds the
clusters: the workspace's recurring questions, biggest first, leaving out those the help center already answers;
or one ticket names the cluster: it and the resolved tickets like it). The draft has a title, the question in the
customers' own words, the answer agents gave (a reply a reviewer approved when there is one, else the agents' most
typical reply), and the steps in that answer. Personal data and case facts are taken out (``kb_scrub``); a guard
blocks any that remain, and a reviewer's edit is held to the same guard. The draft cites its tickets and waits for
review; approving it creates the KB article, which is indexed for search, so reply drafts can use it.

Extractive: it writes nothing a ticket did not say (with any model, the same path runs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from copilot.auth import Permission
from copilot.errors import InvalidInput, NotFound
from copilot.guards import GuardVerdict, Severity, find_injection
from copilot.jobs import JobContext, job_kind
from copilot.profiles import Profile
from copilot.records import people_names
from copilot.store import Repo
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    AuthorKind,
    Job,
    JobStatus,
    KbArticle,
    Message,
    Ticket,
    TicketRouting,
    TicketStatus,
)
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.kb_scrub import Scrubber, check_clean, policy_values
from copilot.tasks.knowledge import (
    KB_ANSWERS,
    KB_MATCH,
    KbMatch,
    article_topics,
    best_kb_matches,
    clean_sentences,
    kb_passages,
    questions,
)
from copilot.tasks.registry import RecordRef, TaskParams, task

if TYPE_CHECKING:
    from copilot.services import Services

TASK = "kb_article_draft"
INDEX_KIND = "kb_article_index"
Strategy = Literal["auto", "extractive"]
RESOLVED = (TicketStatus.solved, TicketStatus.closed)
CLUSTER_SIMILARITY = 0.62  # two questions this alike ask the same thing (MiniLM cosine; see README)
MIN_CLUSTER = 3
MAX_CLUSTER = 20
HISTORY = 2000  # most recent resolved tickets a cluster is looked for in
MAX_STEPS = 6
PHRASINGS = 3
INSTRUCTION = re.compile(
    r"^(?:please\s+)?(?:open|go to|click|choose|select|add|upload|send|ask|check|enable|turn|re-?send|download|"
    r"mark|set|use|update|enter|copy|paste|verify|log ?in|sign ?in|remove|delete|merge|map|pick|try|look|"
    r"compare|contact|connect|reconnect|disable|install|reinstall|restart|make sure)\b|\s>\s",
    re.I,
)
CHATTER = re.compile(
    r"\b(?:sorry|apolog\w*|thanks?\b|thank you|appreciate|hope (?:this|that) helps|let me know|glad|"
    r"happy to help|for flagging|for reporting|for your patience)\b",
    re.I,
)
CASE_SPECIFIC = re.compile(r"\b(?:I|I'm|I've|I'll|I'd)\b|\[(?:amount|invoice number|date|number|name)\]")


class KbDraftParams(TaskParams):
    ticket_id: RecordRef | None = Field(default=None, description="A ticket: draft from it and resolved ones like it.")
    ticket_ids: list[RecordRef] | None = Field(
        default=None, min_length=1, max_length=50, description="The cluster's tickets."
    )
    strategy: Strategy = "auto"

    @model_validator(mode="after")
    def _one_subject(self) -> KbDraftParams:
        if (self.ticket_id is None) == (self.ticket_ids is None):
            raise ValueError("give ticket_id (a ticket and the resolved ones like it) or ticket_ids (a cluster)")
        return self


class KbArticleDraft(BaseModel):
    title: str
    question: str = Field(description="The question in a customer's words (personal data and case facts removed).")
    phrasings: list[str] = Field(default_factory=list, description="Other customers' words for it.")
    answer: str = Field(description="The answer agents gave.")
    steps: list[str] = Field(default_factory=list)
    topic: str | None = None
    source_ticket_ids: list[int] = Field(description="The tickets it was drafted from.")
    answer_sources: list[str] = Field(default_factory=list, description="ai_result:<id> (approved reply), message:<id>")
    removed: dict[str, int] = Field(default_factory=dict, description="Personal data and case facts taken out.")
    closest_article: KbMatch | None = Field(default=None, description="The existing KB article closest to it.")
    text: str = Field(description="The article as a reviewer approves it: '# title' then its sections.")

    def job_summary(self) -> dict[str, Any]:
        return {"title": self.title, "tickets": len(self.source_ticket_ids)}


class Answer(BaseModel):
    ticket_id: int
    text: str
    source: str
    approved: bool


def article_body(question: str, phrasings: list[str], answer: str, steps: list[str]) -> str:
    parts = ["## Question", question]
    if phrasings:
        parts += ["", "Customers also ask:", *(f"- {p}" for p in phrasings)]
    parts += ["", "## Answer", answer]
    if steps:
        parts += ["", "## Steps", *(f"{n}. {s}" for n, s in enumerate(steps, start=1))]
    return "\n".join(parts)


def resolved_tickets(repo: Repo, limit: int = HISTORY, since: datetime | None = None) -> list[Ticket]:
    query = repo.select(Ticket).where(Ticket.status.in_(RESOLVED))
    if since is not None:
        query = query.where(Ticket.opened_at >= since)
    return repo.all(query.order_by(Ticket.opened_at.desc(), Ticket.id.desc()).limit(limit))


def cluster_around(context: TaskContext, seed: Ticket) -> list[Ticket]:
    """The seed ticket and the resolved tickets whose questions are most like its own."""
    repo = context.repo
    candidates = [t for t in resolved_tickets(repo) if t.id != seed.id]
    asked = questions(repo, [seed, *candidates])
    vectors = context.embedder.encode([asked[t.id] for t in [seed, *candidates]])
    similarity = vectors[1:] @ vectors[0] if candidates else np.zeros(0)
    order = [i for i in np.argsort(-similarity) if similarity[i] >= CLUSTER_SIMILARITY][: MAX_CLUSTER - 1]
    return [seed, *(candidates[i] for i in order)]


def medoid(vectors: np.ndarray) -> int:
    """The row most similar on average to the others: the most typical text."""
    if len(vectors) <= 2:
        return 0
    return int((vectors @ vectors.T).mean(axis=1).argmax())


def answers_for(repo: Repo, tickets: list[Ticket]) -> list[Answer]:
    """Replies a reviewer approved for these tickets, and the last agent reply of each resolved one."""
    ids = [t.id for t in tickets]
    approved = repo.all(
        repo.select(AiResult).where(
            AiResult.task == "reply_draft",
            AiResult.subject_kind == "ticket",
            AiResult.subject_id.in_(ids),
            AiResult.status.in_((AiStatus.approved, AiStatus.edited, AiStatus.sent)),
            AiResult.final_text.is_not(None),
        )
    )
    out = [
        Answer(ticket_id=r.subject_id, text=r.final_text, source=f"ai_result:{r.id}", approved=True)
        for r in approved
        if r.final_text and not find_injection(r.final_text)
    ]
    last: dict[int, Message] = {}
    resolved = {t.id for t in tickets if t.status in RESOLVED}
    query = (
        select(Message)
        .where(
            Message.workspace_id == repo.workspace_id,
            Message.ticket_id.in_(list(resolved)),
            Message.author_kind == AuthorKind.agent,
        )
        .order_by(Message.sent_at, Message.id)
    )
    for message in repo.session.scalars(query):
        last[message.ticket_id] = message
    out += [
        Answer(ticket_id=t, text=m.body, source=f"message:{m.id}", approved=False)
        for t, m in last.items()
        if not find_injection(m.body)
    ]
    return out


def generic_sentences(text: str, scrubber: Scrubber) -> list[str]:
    """An answer's sentences that hold for every customer: no thanks or apologies, nothing about one case."""
    scrubbed = [scrubber.scrub(s).text for s in clean_sentences(text)]
    kept = [s for s in scrubbed if not CHATTER.search(s) and not CASE_SPECIFIC.search(s)]
    return kept or [s for s in scrubbed if not CHATTER.search(s)]


def split_steps(sentences: list[str]) -> tuple[list[str], list[str]]:
    steps = [re.sub(r"^(?:\d+\.|-)\s+", "", s) for s in sentences if INSTRUCTION.search(s)]
    prose = [s for s in sentences if not INSTRUCTION.search(s)]
    return prose, steps[:MAX_STEPS]


def cluster_topic(repo: Repo, ids: list[int]) -> str | None:
    topics = [
        t
        for t in repo.session.scalars(
            select(TicketRouting.topic).where(
                TicketRouting.workspace_id == repo.workspace_id, TicketRouting.ticket_id.in_(ids)
            )
        )
        if t
    ]
    return max(set(topics), key=topics.count) if topics else None


def names_of(repo: Repo) -> list[str]:
    accounts = repo.session.scalars(select(Account.name).where(Account.workspace_id == repo.workspace_id))
    return [*people_names(repo), *(a for a in accounts if a)]


def draft_article(context: TaskContext, tickets: list[Ticket]) -> TaskOutcome[KbArticleDraft]:
    repo = context.repo
    asked = questions(repo, tickets)
    answers = answers_for(repo, tickets)
    per_ticket = [[a.text for a in answers if a.ticket_id == t.id] for t in tickets]
    names = names_of(repo)
    scrubber = Scrubber(names, policy_values(per_ticket))
    question_vectors = context.embedder.encode([asked[t.id] for t in tickets])
    order = list(np.argsort(-(question_vectors @ question_vectors[medoid(question_vectors)])))
    phrased = [scrubber.scrub(" ".join(clean_sentences(asked[tickets[i].id].split("\n", 1)[-1]))).text for i in order]
    phrased = list(dict.fromkeys(p for p in phrased if p))
    subjects = [scrubber.scrub(tickets[i].subject).text for i in order if not find_injection(tickets[i].subject)]
    title = next((s for s in subjects if "[" not in s), None) or (subjects[0] if subjects else "Untitled")
    chosen = _typical_answer(context, answers)
    said = generic_sentences(chosen.text, scrubber) if chosen else []
    prose, steps = split_steps(said)
    if not prose and len(steps) == 1:  # a one-instruction answer needs no list of steps
        steps = []
    answer_text = " ".join(said)
    question = phrased[0] if phrased else title
    body = article_body(question, phrased[1 : 1 + PHRASINGS], answer_text, steps)
    text = f"# {title}\n\n{body}"
    removed = _removed(scrubber, [asked[t.id] for t in tickets], [chosen.text] if chosen else [])
    passages = kb_passages(repo)
    closest = best_kb_matches(context.embedder, passages, context.embedder.encode([question]))[0]
    draft = KbArticleDraft(
        title=title,
        question=question,
        phrasings=phrased[1 : 1 + PHRASINGS],
        answer=answer_text,
        steps=steps,
        topic=cluster_topic(repo, [t.id for t in tickets]),
        source_ticket_ids=[t.id for t in tickets],
        answer_sources=[chosen.source] if chosen else [],
        removed=removed,
        closest_article=closest,
        text=text,
    )
    sources = [asked[t.id] for t in tickets] + [a.text for a in answers]
    verdicts = [*check_clean(text, names, sources, scrubber.policy), *_flags(tickets, chosen, closest, repo)]
    provenance = Provenance(
        task=TASK,
        model="extractive",
        input_ids=[f"ticket:{t.id}" for t in tickets],
        source_ids=[chosen.source] if chosen else [],
    )
    return TaskOutcome[KbArticleDraft](
        task=TASK, result=draft, verdicts=verdicts, provenance=provenance, subject_id=tickets[0].id
    )


def _typical_answer(context: TaskContext, answers: list[Answer]) -> Answer | None:
    """The approved reply most like the others when reviewers approved any, else the most typical agent reply."""
    pool = [a for a in answers if a.approved] or answers
    if not pool:
        return None
    vectors = context.embedder.encode([" ".join(clean_sentences(a.text)) or a.text for a in pool])
    return pool[medoid(vectors)]


def _removed(scrubber: Scrubber, *groups: list[str]) -> dict[str, int]:
    total: dict[str, int] = {}
    for text in (t for group in groups for t in group):
        for kind, n in scrubber.scrub(text).removed.items():
            total[kind] = total.get(kind, 0) + n
    return total


def _flags(tickets: list[Ticket], chosen: Answer | None, closest: KbMatch | None, repo: Repo) -> list[GuardVerdict]:
    flags = []
    if chosen is None:
        flags.append(GuardVerdict(name="answer", passed=False, details=["no agent answered these tickets yet"]))
    if len(tickets) < MIN_CLUSTER:
        flags.append(
            GuardVerdict(
                name="cluster_size",
                passed=False,
                severity=Severity.flag,
                details=[f"drafted from {len(tickets)} ticket(s); check it holds beyond them"],
            )
        )
    if closest is not None and closest.similarity >= KB_MATCH:
        flags.append(
            GuardVerdict(
                name="kb_duplicate",
                passed=False,
                severity=Severity.flag,
                details=[f"'{closest.title}' may already answer this ({closest.similarity:.2f})"],
            )
        )
    injected = [
        f"ticket {t.id}: {hit}"
        for t in tickets
        for m in t.messages
        if m.author_kind is AuthorKind.customer and (hit := find_injection(m.body))
    ]
    if injected:
        flags.append(
            GuardVerdict(
                name="prompt_injection",
                passed=False,
                severity=Severity.flag,
                details=[*injected, "left out of the draft"],
            )
        )
    return flags


def check_edited_article(repo: Repo, row: AiResult, text: str) -> list[GuardVerdict]:
    """A reviewer's edit is held to the same guard: no personal data, no case fact of the source tickets."""
    ids = row.content.get("result", {}).get("source_ticket_ids") or []
    tickets = repo.all(repo.select(Ticket).where(Ticket.id.in_(ids)))
    sources = [m.body for t in tickets for m in t.messages] + [t.subject for t in tickets]
    answers = [[m.body for m in t.messages if m.author_kind is AuthorKind.agent] for t in tickets]
    return check_clean(text, names_of(repo), sources, policy_values(answers))


def approved_article(row: AiResult) -> tuple[str, str]:
    """(title, body) of an approved draft: the reviewer's edit when there is one ('# title' on its first line)."""
    result = row.content.get("result", {})
    text = row.final_text or result.get("text") or ""
    first, _, rest = text.strip().partition("\n")
    if first.startswith("# "):
        return first[2:].strip()[:300] or result.get("title", "Untitled"), rest.strip()
    return str(result.get("title") or "Untitled")[:300], text.strip()


def create_article(repo: Repo, ai_result_id: int) -> KbArticle:
    """Approval hook: the approved draft becomes a KB article (indexed for search by a background job)."""
    row = repo.get(AiResult, ai_result_id)
    if row is None or row.task != TASK:
        raise NotFound(f"no KB article draft {ai_result_id} in workspace '{repo.workspace.slug}'")
    if row.status not in (AiStatus.approved, AiStatus.edited):
        raise InvalidInput(f"ai_result_id: draft {ai_result_id} is {row.status.value}; only an approved one is added")
    title, body = approved_article(row)
    external_id = f"kb-draft-{row.id}"
    article = repo.by_external_id(KbArticle, external_id) or repo.add(
        KbArticle(external_id=external_id, title=title, body=body)
    )
    article.title, article.body = title, body
    topic = row.content.get("result", {}).get("topic")
    article.tags = ["from-tickets", *([topic] if topic else [])]
    repo.session.flush()
    repo.add(
        Job(
            kind=INDEX_KIND,
            params={"article_ids": [article.id]},
            status=JobStatus.queued,
            dedupe_key=f"kb-index:{article.id}",
        )
    )
    return article


@task(
    TASK,
    subject="ticket",
    subject_field="ticket_id",
    permission=Permission.run_support,
    review=Permission.review_support,
    defaults={Profile.small: "extractive", Profile.capable: "extractive"},
    on_approve=create_article,
    carriers=("message",),
    check_edit=check_edited_article,
    extra={"recheck_edits": True},  # a reviewer's edit may not put personal data or case facts back
)
def draft_kb_article(context: TaskContext, params: KbDraftParams) -> TaskOutcome[KbArticleDraft]:
    """Draft a KB article from resolved tickets that share a question; it waits for review."""
    repo = context.repo
    if params.ticket_ids is not None:
        tickets = [repo.resolve(Ticket, ref) for ref in dict.fromkeys(params.ticket_ids)]
    else:
        tickets = cluster_around(context, repo.resolve(Ticket, params.ticket_id))
    return draft_article(context, tickets)


# -- the recurring questions -------------------------------------------------------------------------------


class Cluster(BaseModel):
    ticket_ids: list[int]
    question: str
    topic: str | None = None
    closest_article: KbMatch | None = None
    on_topic: bool = False  # the closest article is one about the cluster's topic

    @property
    def covered(self) -> bool:
        """The KB answers it: a passage of an article about its topic is close enough (when the cluster has no
        topic: any passage, much closer)."""
        if self.closest_article is None:
            return False
        if self.on_topic:
            return self.closest_article.similarity >= KB_ANSWERS
        return self.topic is None and self.closest_article.similarity >= KB_MATCH


def recurring_questions(
    encoder: object, repo: Repo, *, days: int = 365, min_tickets: int = MIN_CLUSTER
) -> list[Cluster]:
    """Clusters of resolved tickets asking the same question (average-linkage, cosine), biggest first."""
    from sklearn.cluster import AgglomerativeClustering

    tickets = resolved_tickets(repo, since=datetime.now(UTC) - timedelta(days=days))
    if len(tickets) < min_tickets:
        return []
    asked = questions(repo, tickets)
    vectors = encoder.encode([asked[t.id] for t in tickets])  # type: ignore[attr-defined]
    labels = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1 - CLUSTER_SIMILARITY
    ).fit_predict(vectors)
    groups = [np.flatnonzero(labels == label) for label in set(labels)]
    groups = sorted((g for g in groups if len(g) >= min_tickets), key=lambda g: (-len(g), int(g[0])))
    centres = [int(g[medoid(vectors[g])]) for g in groups]
    passages, about = kb_passages(repo), article_topics(repo, encoder)
    clusters = []
    for group, centre in zip(groups, centres, strict=True):
        ids = [tickets[i].id for i in group][:MAX_CLUSTER]
        topic = cluster_topic(repo, ids)
        own = [p for p in passages if topic and about.get(p.article_id) == topic]
        match = best_kb_matches(encoder, own or passages, vectors[[centre]])[0]
        clusters.append(
            Cluster(
                ticket_ids=ids,
                question=asked[tickets[centre].id],
                topic=topic,
                closest_article=match,
                on_topic=bool(own),
            )
        )
    return clusters


def already_drafted(repo: Repo, ticket_ids: list[int]) -> bool:
    """A pending or approved draft already cites at least half of these tickets."""
    rows = repo.all(
        repo.select(AiResult).where(
            AiResult.task == TASK, AiResult.status.in_((AiStatus.pending, AiStatus.approved, AiStatus.edited))
        )
    )
    wanted = set(ticket_ids)
    return any(
        len(wanted & set(r.content.get("result", {}).get("source_ticket_ids") or [])) * 2 >= len(wanted) for r in rows
    )


def draft_recurring_questions(
    services: Services, workspace: str, params: dict[str, Any], progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Draft KB articles for the workspace's top recurring questions (those the KB does not answer, unless
    ``include_covered``); each draft waits in the review queue."""
    with services.store.repo(workspace) as repo:
        clusters = recurring_questions(
            services.embedder,
            repo,
            days=int(params.get("days", 365)),
            min_tickets=int(params.get("min_tickets", MIN_CLUSTER)),
        )
        todo = [
            c
            for c in clusters
            if (params.get("include_covered") or not c.covered) and not already_drafted(repo, c.ticket_ids)
        ][: int(params.get("limit", 5))]
    drafted = []
    for n, cluster in enumerate(todo, start=1):
        outcome = services.run_in_workspace(workspace, TASK, {"ticket_ids": cluster.ticket_ids})
        drafted.append(
            {"ai_result_id": outcome.ai_result_id, "title": outcome.result.title, "tickets": len(cluster.ticket_ids)}
        )
        if progress:
            progress(n, len(todo))
    return {"clusters": len(clusters), "covered": sum(c.covered for c in clusters), "drafted": drafted}


@job_kind("kb_drafts", Permission.run_support)
def kb_drafts_job(job: JobContext) -> dict[str, Any]:
    """Draft KB articles for the workspace's top recurring questions."""
    return draft_recurring_questions(job.services, job.workspace, job.params, lambda d, t: job.progress(d, t))


@job_kind(INDEX_KIND, Permission.review_support)
def index_articles_job(job: JobContext) -> dict[str, Any]:
    """Index approved KB articles for search (so reply drafts find them)."""
    ids = [int(i) for i in job.params["article_ids"]]
    with job.services.store.repo(job.workspace) as repo:
        written = job.services.index.index_records(repo, "kb_article", ids)
    return {"article_ids": ids, "chunks": written}
