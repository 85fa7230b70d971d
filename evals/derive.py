"""Case derivations: suites whose cases are built from a whole dataset, not row by row.

``support_history``: each Bitext request becomes a ticket of an account whose history holds 30 earlier
request/reply pairs taken from other rows (two of the same intent, 28 of other intents, in random order), so a
draft that answers the request has to find the right earlier answer. ``support_library``: the same 30 pairs as
the workspace's reply library, for a new customer with no history of their own. Deterministic (seeded by row).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable

from evals.suite import Case

HISTORY_SIZE, SAME_INTENT = 30, 2


def _pairs_for(index: int, cases: list[Case], by_intent: dict[str, list[int]]) -> list[dict[str, str]]:
    rng = random.Random(index)
    intent = str(cases[index].inputs.get("intent"))
    same = [i for i in by_intent[intent] if i != index]
    others = [i for i in range(len(cases)) if i != index and str(cases[i].inputs.get("intent")) != intent]
    chosen = rng.sample(same, min(SAME_INTENT, len(same))) + rng.sample(others, HISTORY_SIZE - SAME_INTENT)
    rng.shuffle(chosen)
    return [
        {
            "subject": str(cases[i].inputs.get("intent", "")).replace("_", " "),
            "customer": str(cases[i].inputs["message"]),
            "agent": cases[i].references[0],
            "intent": str(cases[i].inputs.get("intent")),
        }
        for i in chosen
    ]


def _with_pairs(key: str) -> Callable[[list[Case], int | None], list[Case]]:
    def derive(cases: list[Case], limit: int | None) -> list[Case]:
        by_intent: dict[str, list[int]] = defaultdict(list)
        for i, case in enumerate(cases):
            by_intent[str(case.inputs.get("intent"))].append(i)
        picked = range(min(limit or len(cases), len(cases)))
        out = []
        for i in picked:
            case = cases[i]
            inputs = {
                **case.inputs,
                "messages": [{"author_kind": "customer", "text": str(case.inputs["message"])}],
                key: _pairs_for(i, cases, by_intent),
            }
            if key == "library":
                inputs["no_account"] = True
            out.append(case.model_copy(update={"inputs": inputs}))
        return out

    return derive


def dialogue_turns(cases: list[Case], limit: int | None) -> list[Case]:
    """DialogSum's "#Person1#: ..." lines as messages (Person1 speaks first and asks: taken as the customer)."""
    out = []
    for case in cases[: limit or len(cases)]:
        messages = []
        for line in str(case.inputs.get("dialogue", "")).split("\n"):
            speaker, sep, text = line.strip().partition(":")
            if sep and speaker.startswith("#Person") and text.strip():
                role = "customer" if speaker == "#Person1#" else "agent"
                messages.append({"author_kind": role, "text": text.strip().replace(" ' ", "'")})
        out.append(case.model_copy(update={"inputs": {**case.inputs, "messages": messages}}))
    return out


TONE_CYCLE = ("friendly", "formal", "concise", "empathetic", "expand")


def tone_variants(cases: list[Case], limit: int | None) -> list[Case]:
    """Bitext agent replies, each to be rewritten in the next tone of TONE_CYCLE (no reference: a direction)."""
    out = []
    for n, case in enumerate(cases[: limit or len(cases)]):
        text = case.references[0] if case.references else str(case.inputs.get("text", ""))
        tone = TONE_CYCLE[n % len(TONE_CYCLE)]
        out.append(case.model_copy(update={"inputs": {"text": text, "tone": tone}, "expected": None, "tags": [tone]}))
    return out


QMSUM_MARKUP = re.compile(r"\{\w+\}")  # {disfmarker}, {vocalsound}, {gap}, ...
DECISION_QUERY = re.compile(
    r"\b(?:decid\w*|decision\w*|conclu\w*|agreed|agree on|next steps?|action items?|follow[- ]up)\b", re.I
)
NOT_DECISION = re.compile(r"^\s*why\b|\bopinion\b", re.I)


def _clean(text: str) -> str:
    text = QMSUM_MARKUP.sub(" ", text)
    text = re.sub(r"\s+([.,?!;:])", r"\1", text)
    text = re.sub(r"\s+('s|'re|'ll|'ve|'d|'m|n't)\b", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def qmsum_queries(cases: list[Case], limit: int | None) -> list[Case]:
    """QMSum meetings as cases per query: general summary queries over the whole meeting, and decision queries
    over the whole meeting and over the gold span the query is about. ``limit``: the N shortest meetings."""
    meetings = sorted(cases, key=lambda c: sum(len(t["content"].split()) for t in c.inputs["meeting_transcripts"]))
    out = []
    for meeting in meetings[: limit or len(meetings)]:
        turns = [
            {"id": i, "speaker": t["speaker"], "text": _clean(t["content"])}
            for i, t in enumerate(meeting.inputs["meeting_transcripts"])
            if _clean(t["content"])
        ]
        for n, query in enumerate(meeting.inputs.get("general_query_list") or []):
            out.append(
                Case(
                    id=f"{meeting.id}-general-{n}",
                    inputs={"turns": turns, "query_type": "general"},
                    expected=query["answer"],
                    tags=["general"],
                )
            )
        for n, query in enumerate(meeting.inputs.get("specific_query_list") or []):
            if not DECISION_QUERY.search(query["query"]) or NOT_DECISION.search(query["query"]):
                continue
            keep = {i for start, end in query.get("relevant_text_span") or [] for i in range(int(start), int(end) + 1)}
            span = [t for t in turns if t["id"] in keep]
            out.append(
                Case(
                    id=f"{meeting.id}-decisions-{n}",
                    inputs={"turns": turns, "query_type": "decisions"},
                    expected=query["answer"],
                    tags=["decisions", "whole meeting"],
                )
            )
            if span:
                out.append(
                    Case(
                        id=f"{meeting.id}-span-{n}",
                        inputs={"turns": span, "query_type": "decisions"},
                        expected=query["answer"],
                        tags=["decisions", "gold span"],
                    )
                )
    return out


def absa_sentences(cases: list[Case], limit: int | None) -> list[Case]:
    """SemEval ABSA reviews (the first ``limit``) as one NPS-themes case: every sentence with exactly one gold
    aspect category is a response, its category the gold topic and its polarity the gold side (no score)."""
    responses = []
    for review in cases[: limit or len(cases)]:
        for sentence in review.inputs.get("sentences") or []:
            categories = {o["category"] for o in sentence.get("opinions") or []}
            polarities = {o["polarity"] for o in sentence.get("opinions") or []}
            if len(categories) == 1 and sentence.get("text", "").strip():
                polarity = polarities.pop() if len(polarities) == 1 else None
                responses.append({"comment": sentence["text"], "topic": categories.pop(), "polarity": polarity})
    reviews = min(limit or len(cases), len(cases))
    return [Case(id=f"reviews-1-{reviews}", inputs={"responses": responses}, tags=["absa"])]


DERIVATIONS: dict[str, Callable[[list[Case], int | None], list[Case]]] = {
    "absa_sentences": absa_sentences,
    "qmsum_queries": qmsum_queries,
    "dialogue_turns": dialogue_turns,
    "tone_variants": tone_variants,
    "support_history": _with_pairs("history"),
    "support_library": _with_pairs("library"),
}
