"""Training a workspace's own topic head (the shipped one is built by ``python -m evals.studies.triage_head``).

The same model as the shipped head (multinomial logistic regression over the ticket's MiniLM features), fitted on
the workspace's labelled tickets: a JSONL or CSV file of (text, label), or the tickets whose topic the team set.
Before it is saved it is scored by 5-fold cross-validation on those examples, beside the head in use on the same
rows (leaving out rows that head was trained on); a new head that scores below the current one is not saved unless
forced. Training and resets are audited.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, Field
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sqlalchemy import select
from threadpoolctl import threadpool_limits

from copilot.auth import Permission
from copilot.errors import InvalidInput
from copilot.jobs import JobContext, job_kind
from copilot.jsonl import json_objects
from copilot.store import Repo
from copilot.store.models import Message, Ticket, TicketRouting, TriageHead
from copilot.tasks.triage_labels import NAME_PATTERN, label_names, triage_settings
from copilot.tasks.triage_model import (
    HASHED,
    TopicClassifier,
    TopicHead,
    combine,
    head_for,
    text_hash,
    workspace_head_name,
    workspace_head_row,
)

C = 30.0  # banking77 fold 1 of 5, MiniLM + n-grams: C=10 0.920, C=30 0.925, C=100 0.923 (5-fold at 30: 0.927)
FOLDS = 5
MIN_PER_LABEL = 5
MIN_CURRENT_ROWS = 20  # fewer held-out rows than this: the current head is scored on every row
ENCODE_CHUNK = 256
Features = np.ndarray | sp.csr_matrix


class LabelledTicket(BaseModel):
    text: str = Field(min_length=1, max_length=20_000, pattern=r"\S")
    label: str = Field(pattern=NAME_PATTERN)


class Scores(BaseModel):
    accuracy: float
    macro_f1: float
    unsure_rate: float = Field(description="Share of examples below the confidence threshold.")
    confident_accuracy: float | None = Field(description="Accuracy on the examples at or above the threshold.")
    threshold: float
    rows: int


class TopicHeadEvaluation(BaseModel):
    folds: int
    new_head: Scores = Field(description="The new head, by k-fold cross-validation.")
    current_head: Scores | None = Field(default=None, description="The head in use, on rows it was not trained on.")
    current_head_name: str | None = None

    @property
    def beats_current(self) -> bool:
        return self.current_head is None or self.new_head.accuracy >= self.current_head.accuracy


class TopicHeadInfo(BaseModel):
    name: str
    examples: int
    labels: list[str]
    label_counts: dict[str, int]
    evaluation: TopicHeadEvaluation
    source: str
    trained_by: str


def check_examples(repo: Repo | None, examples: list[LabelledTicket], where: str) -> None:
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        raise InvalidInput(f"{where}: a head needs at least two labels")
    if short := sorted(f"{label} {n}" for label, n in counts.items() if n < MIN_PER_LABEL):
        raise InvalidInput(f"{where}: a head needs at least {MIN_PER_LABEL} examples of each label; {', '.join(short)}")
    if repo is not None:
        names = set(label_names(repo))
        if outside := sorted(set(counts) - names):
            raise InvalidInput(
                f"{where}: labels not in this workspace's label set: {', '.join(outside)} "
                "(add them first: `copilot triage labels add NAME --queue QUEUE`)"
            )


def read_labelled(path: Path, text_field: str = "text", label_field: str = "label") -> list[LabelledTicket]:
    """Labelled tickets from JSONL or CSV; the first bad row stops it with ``file:line`` and what is wrong."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else json_objects(path, InvalidInput)
    out = []
    for line, row in rows:
        text, label = row.get(text_field), row.get(label_field)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"{path}:{line}: '{text_field}' is missing or empty")
        try:
            out.append(LabelledTicket(text=text, label=str(label or "").strip()))
        except ValueError:
            raise InvalidInput(f"{path}:{line}: '{label_field}': {label!r} is not a label name (a slug)") from None
    return out


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)


def labelled_tickets(repo: Repo) -> list[LabelledTicket]:
    """The workspace's tickets whose topic a person set (by hand or by applying a triage), as training examples."""
    from copilot.tasks.triage import ticket_text

    routings = repo.all(
        repo.select(TicketRouting).where(
            TicketRouting.topic.is_not(None), TicketRouting.source.in_(("agent", "triage"))
        )
    )
    by_ticket = {r.ticket_id: r.topic for r in routings}
    if not by_ticket:
        return []
    subjects = dict(repo.session.execute(select(Ticket.id, Ticket.subject).where(Ticket.id.in_(list(by_ticket)))).all())
    bodies: dict[int, list[str]] = {}
    query = (
        select(Message.ticket_id, Message.body)
        .where(Message.ticket_id.in_(list(by_ticket)), Message.author_kind == "customer")
        .order_by(Message.sent_at, Message.id)
    )
    for ticket_id, body in repo.session.execute(query):
        bodies.setdefault(ticket_id, []).append(body)
    return [
        LabelledTicket(text=ticket_text(subjects[t], bodies.get(t, [])) or subjects[t], label=label)
        for t, label in by_ticket.items()
        if t in subjects
    ]


def encode_in_chunks(encoder: object, texts: list[str], progress: Callable[[int, int], None] | None) -> np.ndarray:
    """The texts' sentence vectors, a chunk at a time (with progress)."""
    parts = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        parts.append(encoder.encode(texts[start : start + ENCODE_CHUNK]))  # type: ignore[attr-defined]
        if progress:
            progress(min(start + ENCODE_CHUNK, len(texts)), len(texts))
    return np.vstack(parts)


def fit_head(
    x: Features, labels: list[str], encoder_name: str, name: str, c: float = C, layout: str = HASHED
) -> TopicHead:
    """A head over features of ``layout`` (``combine``), keeping its examples' sentence vectors for the neighbour vote
    (``TopicHead.probabilities``). One thread: on a busy machine, scikit-learn's OpenMP threads made a fit 20 times
    slower (measured: 4.2 s against 0.2 s for 18 tickets, load 13 on 2 cores)."""
    with threadpool_limits(1):
        model = LogisticRegression(C=c, max_iter=3000, random_state=0).fit(x, labels)
    head = TopicHead(
        coef=model.coef_.astype(np.float32) if len(model.classes_) > 2 else _binary(model.coef_),
        intercept=model.intercept_.astype(np.float32) if len(model.classes_) > 2 else _binary(model.intercept_),
        labels=tuple(str(c) for c in model.classes_),
        embedding_model=encoder_name,
        name=name,
        layout=layout,
    )
    return head.remembering(x, labels)


def _binary(weights: np.ndarray) -> np.ndarray:
    """Two classes: scikit-learn keeps one row (class 1 vs 0); a softmax head needs both rows."""
    row = weights.reshape(1, -1) if weights.ndim == 2 else weights.reshape(1)
    return np.concatenate([-row / 2, row / 2]).astype(np.float32)


def cross_validated(
    x: Features,
    labels: list[str],
    encoder_name: str,
    *,
    folds: int = FOLDS,
    seed: int = 0,
    c: float = C,
    layout: str = HASHED,
) -> tuple[list[str], list[float]]:
    """Each example's label and confidence from a head fitted on the other folds."""
    gold = np.array(labels)
    predicted, confidence = np.empty(len(labels), dtype=object), np.zeros(len(labels))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(gold)), gold):
        head = fit_head(x[train], list(gold[train]), encoder_name, "fold", c, layout)
        p = head.probabilities(x[test], range(len(head.labels)))
        predicted[test] = [head.labels[i] for i in p.argmax(axis=1)]
        confidence[test] = p.max(axis=1)
    return list(predicted), confidence.tolist()


def scores(gold: list[str], predicted: list[str | None], confidence: list[float], threshold: float) -> Scores:
    n = len(gold)
    correct = [g == p for g, p in zip(gold, predicted, strict=True)]
    sure = [c >= threshold for c in confidence]
    sure_correct = [ok for ok, s in zip(correct, sure, strict=True) if s]
    labels = sorted(set(gold))
    filled = [p if p is not None else "(none)" for p in predicted]
    return Scores(
        accuracy=round(sum(correct) / n, 4),
        macro_f1=round(float(f1_score(gold, filled, labels=labels, average="macro", zero_division=0)), 4),
        unsure_rate=round(1 - sum(sure) / n, 4),
        confident_accuracy=round(sum(sure_correct) / len(sure_correct), 4) if sure_correct else None,
        threshold=threshold,
        rows=n,
    )


def current_head_scores(
    classifier: TopicClassifier,
    x: Features,
    examples: list[LabelledTicket],
    allowed: tuple[str, ...],
    threshold: float,
) -> Scores:
    """The head in use, as the product uses it (restricted to the label set), on rows it was not trained on."""
    held_out = [i for i, e in enumerate(examples) if text_hash(e.text) not in classifier.head.trained_on]
    rows = held_out if len(held_out) >= MIN_CURRENT_ROWS else list(range(len(examples)))
    topics = classifier.suggest(x[rows], allowed, threshold)
    return scores(
        [examples[i].label for i in rows], [t.label for t in topics], [t.confidence for t in topics], threshold
    )


def train_workspace_head(
    repo: Repo,
    encoder: object,
    examples: list[LabelledTicket],
    *,
    source: str,
    actor: str,
    dry_run: bool = False,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TopicHeadInfo:
    """Cross-validate a head on the workspace's labelled tickets and, unless it does worse than the head in use,
    save it (``dry_run``: only report)."""
    from copilot.review import record_event

    check_examples(repo, examples, source)
    encoder_name = str(getattr(encoder, "name", "encoder"))
    texts, labels = [e.text for e in examples], [e.label for e in examples]
    embeddings = encode_in_chunks(encoder, texts, progress)
    x = combine(embeddings, texts, HASHED)
    threshold = triage_settings(repo).unsure_below
    predicted, confidence = cross_validated(x, labels, encoder_name)
    in_use = head_for(repo, encoder_name)  # a head over another encoder's features cannot read these rows
    current = None
    if in_use is not None:
        current = current_head_scores(
            TopicClassifier(encoder, in_use), combine(embeddings, texts, in_use.layout), examples,
            label_names(repo), threshold,
        )  # fmt: skip
    evaluation = TopicHeadEvaluation(
        folds=FOLDS,
        new_head=scores(labels, predicted, confidence, threshold),
        current_head=current,
        current_head_name=in_use.name if in_use else None,
    )
    counts = dict(sorted(Counter(labels).items()))
    info = TopicHeadInfo(
        name="not saved (dry run)",
        examples=len(examples),
        labels=sorted(counts),
        label_counts=counts,
        evaluation=evaluation,
        source=source,
        trained_by=actor,
    )
    if dry_run:
        return info
    if not evaluation.beats_current and not force:
        raise InvalidInput(
            f"the new head's cross-validated accuracy ({evaluation.new_head.accuracy:.3f}) is below the "
            f"{in_use.name}'s ({evaluation.current_head.accuracy:.3f}) on these tickets; nothing saved "
            "(force it with --force)"
        )
    head = fit_head(x, labels, encoder_name, "workspace head")
    head = dataclasses.replace(head, trained_on=frozenset(text_hash(t) for t in texts))
    row = workspace_head_row(repo) or repo.add(TriageHead(workspace_id=repo.workspace_id))
    row.weights, row.labels, row.embedding_model, row.examples = (
        head.to_bytes(),
        list(head.labels),
        encoder_name,
        len(examples),
    )
    row.label_counts, row.evaluation, row.source, row.trained_by = counts, evaluation.model_dump(), source[:500], actor
    repo.session.flush()
    record_event(
        repo, actor, "triage_head.train", after={"examples": len(examples), "source": source, **evaluation.model_dump()}
    )
    return head_info(row)


def head_info(row: TriageHead) -> TopicHeadInfo:
    return TopicHeadInfo(
        name=workspace_head_name(row),
        examples=row.examples,
        labels=list(row.labels),
        label_counts=row.label_counts,
        evaluation=TopicHeadEvaluation.model_validate(row.evaluation),
        source=row.source,
        trained_by=row.trained_by,
    )


def workspace_head(repo: Repo) -> TopicHeadInfo | None:
    row = workspace_head_row(repo)
    return head_info(row) if row else None


def reset_workspace_head(repo: Repo, actor: str) -> bool:
    from copilot.review import record_event

    row = workspace_head_row(repo)
    if row is None:
        return False
    record_event(repo, actor, "triage_head.reset", before={"examples": row.examples, "source": row.source})
    repo.session.delete(row)
    return True


def file_source(path: Path) -> str:
    return f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]})"


@job_kind("triage_head", Permission.manage)
def train_job(job: JobContext) -> dict[str, Any]:
    """Train (or dry-run) the workspace's own topic head, from examples or from its labelled tickets."""
    params = job.params
    with job.services.store.repo(job.workspace) as repo:
        if params.get("from_tickets"):
            examples = labelled_tickets(repo)
        else:
            examples = [LabelledTicket.model_validate(e) for e in params["examples"]]
        info = train_workspace_head(
            repo,
            job.services.embedder,
            examples,
            source=params["source"],
            actor=params["actor"],
            dry_run=bool(params.get("dry_run")),
            force=bool(params.get("force")),
            progress=lambda done, total: job.progress(done, total),
        )
    return info.model_dump()
