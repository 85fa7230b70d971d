"""An intent judge for reply drafts: is the draft an answer to what the customer asked, whatever it cites?

A logistic regression from MiniLM sentence embeddings to the intent of Bitext's agent replies (CDLA-Sharing-1.0,
../shared/data/bitext_customer_support/dev.jsonl), fitted on the replies that are not the expected answer of the
cases it judges (two folds of cases, two judges). It reads the draft's words, so a model draft that answers the
request without citing a source counts, and a draft citing a same-intent source while saying something else does
not (the citation-based ``intent_addressed`` metric judges the other way round). Used only in evals, never in the
product. ``held_out_accuracy`` is its accuracy on a held-out fifth of the replies it learns from.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copilot.guards import signature_block

DATA = Path("bitext_customer_support") / "dev.jsonl"


@dataclass(frozen=True)
class IntentJudge:
    coef: np.ndarray
    intercept: np.ndarray
    intents: tuple[str, ...]
    held_out_accuracy: float

    def intent_of(self, texts: list[str], encode) -> list[str]:  # noqa: ANN001 - an Embedder's encode
        scores = encode([_body(text) for text in texts]) @ self.coef.T + self.intercept
        return [self.intents[i] for i in scores.argmax(axis=1)]


def _body(text: str) -> str:
    """The reply without its greeting line and signature (the judge learns from bare Bitext replies)."""
    if signature := signature_block(text):
        text = text[: text.rindex(signature)]
    lines = text.strip().split("\n")
    return "\n".join(lines[1:] if len(lines) > 1 and lines[0].rstrip().endswith(",") else lines).strip()


def load_intent_judges(data_dir: Path, cache_dir: Path, folds: list[set[str]], encode) -> list[IntentJudge]:  # noqa: ANN001
    """One judge per fold of cases, each fitted on the Bitext dev replies except that fold's expected replies (a
    case is never judged by a model that learnt its own answer). The reply vectors are cached."""
    rows = [json.loads(line) for line in (data_dir / DATA).read_text(encoding="utf-8").splitlines() if line.strip()]
    vectors = _reply_vectors(data_dir / DATA, cache_dir, [row["response"] for row in rows], encode)
    intents = np.array([row["intent"] for row in rows])
    judges = []
    for fold in folds:
        keep = np.array([row["response"] not in fold for row in rows])
        judges.append(fit_intent_judge(vectors[keep], intents[keep]))
    return judges


def _reply_vectors(source: Path, cache_dir: Path, replies: list[str], encode) -> np.ndarray:  # noqa: ANN001
    cached = cache_dir / f"bitext-replies-{hashlib.sha256(source.read_bytes()).hexdigest()[:16]}.npy"
    if cached.is_file():
        return np.load(cached)
    vectors = np.asarray(encode(replies), dtype=np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    cached.write_bytes(buffer.getvalue())
    return vectors


def fit_intent_judge(vectors: np.ndarray, intents: np.ndarray) -> IntentJudge:
    from sklearn.linear_model import LogisticRegression

    order = np.random.default_rng(0).permutation(len(intents))
    cut = len(order) // 5
    test, train = order[:cut], order[cut:]
    probe = LogisticRegression(C=10.0, max_iter=2000).fit(vectors[train], intents[train])
    accuracy = float((probe.predict(vectors[test]) == intents[test]).mean())
    model = LogisticRegression(C=10.0, max_iter=2000).fit(vectors, intents)
    coef, intercept = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
    if len(model.classes_) == 2:  # sklearn keeps one row for two classes: score the first class as its negative
        coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
    return IntentJudge(coef, intercept, tuple(str(c) for c in model.classes_), round(accuracy, 3))
