"""Call-summary quality on QMSum meetings: ROUGE of our summaries against a LEAD baseline with the same word budget.

QMSum (qmsum/val.jsonl) holds meeting transcripts (product-design, academic and parliamentary
meetings; speaker turns) with query-focused reference summaries. Two query sets:
  general    "Summarize the whole meeting" and the like; scored: the summary as prose (CallNotes.as_text)
  decisions  specific queries asking what was decided / concluded / agreed (not "why ..." or opinions);
             scored: decisions, action items and next step as prose (CallNotes.decisions_text),
             once over the whole meeting and once over the gold relevant span (the region the query is about)
LEAD-N is the first N words of the same transcript, N = the word count of our prediction for that query,
so both sides have the same length budget. ROUGE-1/2/L F1 with stemming (rouge-score).
The extractive path runs on every meeting (or the --limit N shortest); --model also runs the configured
model (default: the embedded SmolLM2) on the general queries of the same meetings, which takes minutes
per meeting on 2 CPU cores: use it with a small --limit.
Run: python -m evals.call_summary_qmsum [--limit 2 --model]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rouge_score import rouge_scorer

from copilot.services import Services
from copilot.settings import Settings
from copilot.tasks.call_summary import (
    CallNotes,
    Transcript,
    TranscriptTurn,
    extractive_notes,
    split_windows,
    summarize_transcript,
    window_budget,
)
from evals.data import DataUnavailable, dataset

METRICS = ("rouge1", "rouge2", "rougeL")
DECISION_QUERY = re.compile(
    r"\b(?:decid\w*|decision\w*|conclu\w*|agreed|agree on|next steps?|action items?|follow[- ]up)\b", re.I
)
NOT_DECISION = re.compile(r"^\s*why\b|\bopinion\b", re.I)
MARKUP = re.compile(r"\{\w+\}")  # {disfmarker}, {vocalsound}, {gap}, ...


def clean(text: str) -> str:
    text = MARKUP.sub(" ", text)
    text = re.sub(r"\s+([.,?!;:])", r"\1", text)
    text = re.sub(r"\s+('s|'re|'ll|'ve|'d|'m|n't)\b", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


class Meeting:
    def __init__(self, row: dict) -> None:
        self.row = row
        self.turns = [
            TranscriptTurn(id=i, position=i, speaker=t["speaker"], start_s=float(i), text=clean(t["content"]))
            for i, t in enumerate(row["meeting_transcripts"])
        ]
        self.turns = [t for t in self.turns if t.text]
        self.words = sum(len(t.text.split()) for t in self.turns)

    def transcript(self, span: list[list[str]] | None = None) -> Transcript:
        if span is None:
            return Transcript(title="", turns=self.turns)
        keep = set()
        for start, end in span:
            keep |= set(range(int(start), int(end) + 1))
        return Transcript(title="", turns=[t for t in self.turns if t.id in keep])


def load_meetings(limit: int | None) -> list[Meeting]:
    meetings = [Meeting(json.loads(line)) for line in dataset("qmsum/val.jsonl").open(encoding="utf-8")]
    return meetings if limit is None else sorted(meetings, key=lambda m: m.words)[:limit]


def lead(transcript: Transcript, words: int) -> str:
    out: list[str] = []
    for turn in transcript.turns:
        out += turn.text.split()
        if len(out) >= words:
            break
    return " ".join(out[:words])


class Scores:
    def __init__(self) -> None:
        self.scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
        self.rows: dict[str, list[dict[str, float]]] = {}
        self.words: dict[str, list[int]] = {}

    def add(self, system: str, prediction: str, reference: str) -> None:
        scores = self.scorer.score(reference, prediction)
        self.rows.setdefault(system, []).append({m: scores[m].fmeasure for m in METRICS})
        self.words.setdefault(system, []).append(len(prediction.split()))

    def pair(self, suite: str, ours: str, transcript: Transcript, reference: str, name: str = "ours") -> None:
        self.add(f"{suite}/{name}", ours, reference)
        self.add(f"{suite}/lead@{name}", lead(transcript, len(ours.split())), reference)

    def table(self) -> dict[str, dict[str, float]]:
        return {
            system: {
                **{m: round(sum(r[m] for r in rows) / len(rows), 4) for m in METRICS},
                "cases": len(rows),
                "words": round(sum(self.words[system]) / len(rows), 1),
            }
            for system, rows in self.rows.items()
        }


class CachedEncoder:
    """Sentence vectors memoised by text: a gold span re-uses the vectors of its meeting."""

    def __init__(self, encode) -> None:
        self.encode_batch, self.cache = encode, {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            self.cache.update(zip(missing, self.encode_batch(missing), strict=True))
        return np.array([self.cache[t] for t in texts])


def decisions_prose(notes: CallNotes) -> str:
    return notes.decisions_text() or notes.summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="only the N shortest meetings")
    parser.add_argument(
        "--model",
        action="store_true",
        help="also run the model path on the general queries (slow: use a small --limit)",
    )
    args = parser.parse_args()
    try:
        meetings = load_meetings(args.limit)
    except DataUnavailable as error:
        print(f"qmsum: {error}")
        print(json.dumps({"skipped": str(error)}))
        return 0
    services = Services(Settings(data_dir=Path(tempfile.mkdtemp())))
    settings, context = services.settings, services.context(None)
    encode = CachedEncoder(context.embedder.encode)
    scores = Scores()
    started = time.monotonic()
    for meeting in meetings:
        whole = meeting.transcript()
        windows = split_windows(whole.turns, window_budget(settings.local_context_tokens))
        notes = extractive_notes(whole, encode, windows=windows)
        for query in meeting.row["general_query_list"]:
            scores.pair("general", notes.as_text(), whole, query["answer"])
        for query in meeting.row["specific_query_list"]:
            if not DECISION_QUERY.search(query["query"]) or NOT_DECISION.search(query["query"]):
                continue
            scores.pair("decisions", decisions_prose(notes), whole, query["answer"], "whole")
            span = meeting.transcript(query.get("relevant_text_span"))
            if span.turns:
                scores.pair("decisions", decisions_prose(extractive_notes(span, encode)), span, query["answer"], "span")
    extractive_s = time.monotonic() - started
    if args.model:
        started = time.monotonic()
        for meeting in meetings:
            outcome = summarize_transcript(context, meeting.transcript(), "model")
            for query in meeting.row["general_query_list"]:
                scores.pair("general", outcome.result.as_text(), meeting.transcript(), query["answer"], "model")
            print(
                f"  model path on a {meeting.words}-word meeting: {outcome.result.windows} window(s), "
                f"{outcome.provenance.tokens_in}+{outcome.provenance.tokens_out} tokens, "
                f"fallback: {outcome.fallback_reason or 'none'}"
            )
        model_s = time.monotonic() - started
    services.close()
    table = scores.table()
    print(
        f"\nQMSum val: {len(meetings)} meetings, extractive path {extractive_s:.0f} s"
        + (f", model path {model_s:.0f} s" if args.model else "")
    )
    print(f"  {'suite/system':<28} {'cases':>5} {'words':>6} {'R-1':>7} {'R-2':>7} {'R-L':>7}")
    for system, row in table.items():
        print(
            f"  {system:<28} {row['cases']:>5} {row['words']:>6} "
            f"{row['rouge1']:>7.4f} {row['rouge2']:>7.4f} {row['rougeL']:>7.4f}"
        )
    failed = [
        s for s in table if "/lead@" not in s and table[s]["rougeL"] < table[s.replace("/", "/lead@", 1)]["rougeL"]
    ]
    for system in failed:
        print(f"  below LEAD on ROUGE-L: {system}")
    print(json.dumps({"dataset": "qmsum/val", "meetings": len(meetings), "results": table, "below_lead": failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
