"""Training a workspace's own sentiment head (the shipped one is built by ``python -m evals.studies.sentiment_head``).

A workspace head (``copilot sentiment train FILE``) is the same model fitted on the workspace's own labelled
messages, cross-validated against the shipped head and VADER on that file before it is saved.
Features: all-MiniLM-L6-v2 embedding + VADER scores. Model: multinomial logistic regression, balanced classes.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, BeforeValidator, Field
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score
from sklearn.model_selection import StratifiedKFold

from copilot.auth import Permission
from copilot.errors import InvalidInput
from copilot.jobs import JobContext, job_kind
from copilot.jsonl import json_objects
from copilot.store import Repo
from copilot.store.models import SentimentHead
from copilot.tasks.sentiment import (
    LABELS,
    Head,
    SentimentClassifier,
    features,
    shipped_head,
    vader_label,
    workspace_head_name,
    workspace_head_row,
)

WORKSPACE_C = 1.0  # a workspace's labels are in domain: fit them more closely
FOLDS = 5
MIN_PER_LABEL = 20
LABEL_ALIASES = {
    "negative": "negative",
    "neg": "negative",
    "-1": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "0": "neutral",
    "positive": "positive",
    "pos": "positive",
    "1": "positive",
    "+1": "positive",
}
ENCODE_CHUNK = 256


def canonical_label(value: object) -> str:
    label = LABEL_ALIASES.get(str(value).strip().lower()) if value is not None else None
    if label is None:
        raise ValueError(f"label {value!r}: use negative, neutral or positive (or -1, 0, 1)")
    return label


class LabelledText(BaseModel):
    text: str = Field(min_length=1, max_length=20_000, pattern=r"\S")
    label: Annotated[str, BeforeValidator(canonical_label)]


def check_label_counts(examples: list[LabelledText], where: str) -> None:
    counts = Counter(example.label for example in examples)
    if short := [f"{label} {counts[label]}" for label in LABELS if counts[label] < MIN_PER_LABEL]:
        raise InvalidInput(
            f"{where}: a head needs at least {MIN_PER_LABEL} examples of each label; this has {', '.join(short)}"
        )


class Scores(BaseModel):
    macro_f1: float
    macro_recall: float


class HeadEvaluation(BaseModel):
    """Figures on the training file: the new head by k-fold cross-validation, the others as they are."""

    folds: int
    workspace_head: Scores
    shipped_head: Scores
    vader: Scores

    @property
    def beats_shipped(self) -> bool:
        return self.workspace_head.macro_recall >= self.shipped_head.macro_recall


class HeadInfo(BaseModel):
    name: str
    examples: int
    label_counts: dict[str, int]
    evaluation: HeadEvaluation
    source: str
    trained_by: str


def fit_head(x: np.ndarray, labels: list[str], c: float, name: str) -> Head:
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=0).fit(x, labels)
    order = [list(model.classes_).index(label) for label in LABELS]
    return Head(model.coef_[order].astype(np.float32), model.intercept_[order].astype(np.float32), name)


def predict(head: Head, x: np.ndarray) -> list[str]:
    return [LABELS[i] for i in head.probabilities(x).argmax(axis=1)]


def scores(gold: list[str], predicted: list[str]) -> Scores:
    return Scores(
        macro_f1=round(float(f1_score(gold, predicted, labels=list(LABELS), average="macro", zero_division=0)), 4),
        macro_recall=round(
            float(recall_score(gold, predicted, labels=list(LABELS), average="macro", zero_division=0)), 4
        ),
    )


def cross_validated(
    x: np.ndarray, labels: list[str], *, c: float = WORKSPACE_C, folds: int = FOLDS, seed: int = 0
) -> list[str]:
    """Each example's label from a head fitted on the other folds."""
    gold = np.array(labels)
    predicted = np.empty(len(labels), dtype=object)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, gold):
        predicted[test] = predict(fit_head(x[train], list(gold[train]), c, "fold"), x[test])
    return list(predicted)


def read_labelled(path: Path, text_field: str = "text", label_field: str = "label") -> list[LabelledText]:
    """Labelled messages from JSONL or CSV; the first bad row stops it with ``file:line`` and what is wrong."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else json_objects(path, InvalidInput)
    out: list[LabelledText] = []
    for line, row in rows:
        text, label = row.get(text_field), row.get(label_field)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"{path}:{line}: '{text_field}' is missing or empty")
        try:
            out.append(LabelledText(text=text, label=canonical_label(label)))
        except ValueError as error:
            raise InvalidInput(f"{path}:{line}: '{label_field}': {error}") from None
    check_label_counts(out, str(path))
    return out


def _csv_rows(path: Path):
    with path.open(encoding="utf-8", newline="") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)


def encode_in_chunks(
    encode: Callable[[list[str]], np.ndarray], texts: list[str], progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        parts.append(encode(texts[start : start + ENCODE_CHUNK]))
        if progress:
            progress(min(start + ENCODE_CHUNK, len(texts)), len(texts))
    return np.vstack(parts)


def train_workspace_head(
    repo: Repo,
    classifier: SentimentClassifier,
    examples: list[LabelledText],
    *,
    source: str,
    actor: str,
    dry_run: bool = False,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> HeadInfo:
    """Cross-validate a head on the workspace's labelled messages and,
    unless it does worse than the shipped head, save it."""
    from copilot.review import record_event
    from retrieval.embeddings import WEIGHTS_SHA256

    texts, labels = [e.text for e in examples], [e.label for e in examples]
    x = features(encode_in_chunks(classifier.encode, texts, progress), classifier.vader, texts)
    evaluation = HeadEvaluation(
        folds=FOLDS,
        workspace_head=scores(labels, cross_validated(x, labels)),
        shipped_head=scores(labels, predict(shipped_head(), x)),
        vader=scores(labels, [vader_label(classifier.vader, t) for t in texts]),
    )
    counts = {label: labels.count(label) for label in LABELS}
    if dry_run:
        return HeadInfo(
            name="not saved (dry run)",
            examples=len(examples),
            label_counts=counts,
            evaluation=evaluation,
            source=source,
            trained_by=actor,
        )
    if not evaluation.beats_shipped and not force:
        raise InvalidInput(
            "the new head's cross-validated macro-recall "
            f"({evaluation.workspace_head.macro_recall:.3f}) is below the shipped head's "
            f"({evaluation.shipped_head.macro_recall:.3f}) on this file; nothing saved (force it with --force)"
        )
    row = workspace_head_row(repo)
    head = fit_head(x, labels, WORKSPACE_C, "workspace head")
    if row is None:
        row = SentimentHead(workspace_id=repo.workspace_id)
        repo.session.add(row)
    row.weights, row.embedding_sha256, row.examples = head.to_bytes(), WEIGHTS_SHA256, len(examples)
    row.label_counts, row.evaluation, row.source, row.trained_by = counts, evaluation.model_dump(), source[:500], actor
    repo.session.flush()
    record_event(
        repo,
        actor,
        "sentiment_head.train",
        after={"examples": len(examples), "source": source, **evaluation.model_dump()},
    )
    return head_info(row)


def head_info(row: SentimentHead) -> HeadInfo:
    return HeadInfo(
        name=workspace_head_name(row),
        examples=row.examples,
        label_counts=row.label_counts,
        evaluation=HeadEvaluation.model_validate(row.evaluation),
        source=row.source,
        trained_by=row.trained_by,
    )


def workspace_head(repo: Repo) -> HeadInfo | None:
    row = workspace_head_row(repo)
    return head_info(row) if row else None


def reset_workspace_head(repo: Repo, actor: str) -> bool:
    """Drop the workspace's head (its messages go back to the shipped one); False when it had none."""
    from copilot.review import record_event

    row = workspace_head_row(repo)
    if row is None:
        return False
    record_event(repo, actor, "sentiment_head.reset", before={"examples": row.examples, "source": row.source})
    repo.session.delete(row)
    return True


def file_source(path: Path) -> str:
    return f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]})"


@job_kind("sentiment_head", Permission.manage)
def train_job(job: JobContext) -> dict[str, object]:
    """Train (or dry-run) the workspace's own sentiment head from labelled examples."""
    params = job.params
    examples = [LabelledText.model_validate(example) for example in params["examples"]]
    with job.services.store.repo(job.workspace) as repo:
        info = train_workspace_head(
            repo,
            job.services.sentiment,
            examples,
            source=params["source"],
            actor=params["actor"],
            dry_run=bool(params.get("dry_run")),
            force=bool(params.get("force")),
            progress=lambda done, total: job.progress(done, total),
        )
    return info.model_dump()
