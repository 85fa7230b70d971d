"""Eval adapter of the NPS themes task: a case is a set of comments with the topic (and polarity) a person gave each.

The task's own build (``copilot.tasks.nps_themes.build_themes``: split, embed, fit, assign, describe, name) runs on the
case's comments without the database, named the way the run's strategy says (``auto``: the profile's default, noun
phrases for ``small``, a grounded model name for ``capable``). Sentences are embedded once per suite run in
``prepare``, so a case's latency is the theme job itself (clustering, sentiment, keywords, naming, figures), the
same work the ``bertopic`` baseline is timed on (``--model <model>@bertopic``: BERTopic's defaults on the same
vectors, when the ``compare`` extra is installed).

Metrics per case: NMI and purity of each response's main theme against the gold topics (``nmi_entity`` /
``purity_entity`` against the part of an ``ENTITY#ATTRIBUTE`` category before the ``#``), names readable (2-5 whole
words, at most 40 characters, distinct) and grounded (every content word in the theme's phrases, keywords or
quotes), sides (the response's side of its main theme against its gold polarity), mixed topics split (a topic the
case lists as praised and criticised comes out as one theme with both sides, each quoting its own polarity) and
driver impact (every theme's impact equals NPS(all) - NPS(responses not in the theme), recomputed from the case).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from copilot.errors import InvalidInput
from evals import metrics as m
from evals.adapters import EvalEnv, adapter
from evals.metrics import CaseOutput
from evals.suite import Case
from retrieval.embeddings import BATCH_SIZE

WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.U)
PASSIVE_SCORE = 8  # a comment without a score (public review data) counts as a passive: the score says nothing
_VECTORS_LOCK = threading.Lock()


# -- inputs ----------------------------------------------------------------------------------------


def case_responses(case: Case) -> list[dict[str, Any]]:
    """The case's responses as [{comment, score, topic, polarity}] (score 0-10, topic and polarity optional)."""
    raw = case.inputs.get("responses")
    if not isinstance(raw, list) or len(raw) < 2:
        raise InvalidInput(
            f"case {case.id}: inputs.responses: a list of at least 2 {{comment, score, topic}} is required"
        )
    out = []
    for n, item in enumerate(raw):
        if isinstance(item, str):
            item = {"comment": item}
        comment, score = item.get("comment"), item.get("score", PASSIVE_SCORE)
        if not isinstance(comment, str) or not comment.strip():
            raise InvalidInput(f"case {case.id}: inputs.responses[{n}].comment: required")
        if not isinstance(score, int) or not 0 <= score <= 10:
            raise InvalidInput(f"case {case.id}: inputs.responses[{n}].score: an integer 0-10")
        polarity = item.get("polarity")
        if polarity not in (None, "positive", "negative", "neutral"):
            raise InvalidInput(f"case {case.id}: inputs.responses[{n}].polarity: positive, negative or neutral")
        out.append({"comment": comment, "score": score, "topic": item.get("topic"), "polarity": polarity})
    return out


class CachedEmbedder:
    """The run's embedder, answering from the vectors ``prepare`` computed (same name, same vectors)."""

    def __init__(self, embedder: Any, vectors: dict[str, np.ndarray]) -> None:
        self.inner, self.vectors = embedder, vectors
        self.name, self.dimensions = embedder.name, embedder.dimensions

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            fresh = np.asarray(self.inner.encode(missing), dtype=np.float32)
            with _VECTORS_LOCK:
                self.vectors.update(zip(missing, fresh, strict=True))
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, self.dimensions), np.float32)


def _prepare(env: EvalEnv, cases: list[Case]) -> None:
    """Every case's distinct sentences embedded once, and the sentiment classifier loaded, before the clock runs."""
    from copilot.tasks.nps_themes import SentenceTable

    texts: dict[str, None] = {}
    for case in cases:
        try:
            comments = [r["comment"] for r in case_responses(case)]
        except InvalidInput:
            continue  # the case reports its own error when it runs
        texts.update(dict.fromkeys(SentenceTable.build(comments).texts))
        texts.update(dict.fromkeys(comments))
    ordered = list(texts)
    vectors = np.asarray(env.embedder.encode(ordered), dtype=np.float32) if ordered else np.zeros((0, 0))
    env.state["embedder"] = CachedEmbedder(env.embedder, dict(zip(ordered, vectors, strict=True)))
    _warm_up(env)


def _warm_up(env: EvalEnv) -> None:
    """Load what a first theme job loads (scikit-learn, SciPy, VADER, the sentiment head), or BERTopic's numba
    kernels, so that no case's latency carries it."""
    from copilot.tasks.nps_themes import Responses, ThemeBuild, build_themes

    env.services.sentiment.classify(["warm up"])
    if env.strategy == "bertopic":
        _bertopic_warm()
        return
    comments = ["The app crashes.", "Support was quick.", "The app keeps crashing.", "Support answered fast."]
    rows = [(i, 5, c, None) for i, c in enumerate(comments)]
    build_themes(ThemeBuild(Responses.from_rows(rows), env.embedder, sentiment=env.services.sentiment))


# -- the BERTopic baseline --------------------------------------------------------------------------


def bertopic_themes(env: EvalEnv, case: Case) -> CaseOutput:
    """BERTopic's defaults (UMAP 5-d + HDBSCAN min_cluster_size 10 + c-TF-IDF) on the same vectors, one document per
    response; outliers (topic -1) count as one cluster, as BERTopic reports them. Its names are its topic labels."""
    try:
        from bertopic import BERTopic
        from umap import UMAP
    except ImportError as error:
        raise InvalidInput(f"the bertopic baseline needs BERTopic: pip install -e '.[compare]' ({error})") from None
    responses = case_responses(case)
    comments = [r["comment"] for r in responses]
    vectors = env.state["embedder"].encode(comments)
    seed = int(case.inputs.get("seed", 0))
    started = time.perf_counter()
    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed)
    model = BERTopic(embedding_model=None, umap_model=umap_model, calculate_probabilities=False, verbose=False)
    topics, _ = model.fit_transform(comments, embeddings=vectors)
    seconds = time.perf_counter() - started
    main = np.asarray(topics, dtype=np.int64)
    info = model.get_topic_info()
    names = {int(row.Topic): str(row.Name) for row in info.itertuples()}
    labels = [names.get(t, str(t)) for t in sorted(set(main.tolist()))]
    vocabulary = _vocabulary(responses)
    data = {
        **_clustering([r["topic"] for r in responses], main - main.min()),
        "themes": [{"label": label} for label in labels],
        "names_readable": _share(_readable(label, labels, vocabulary) for label in labels),
        "bertopic_seconds": round(seconds, 3),
    }
    return CaseOutput(text="\n".join(d["label"] for d in data["themes"]), data=data, model="bertopic")


def _bertopic_warm() -> None:
    """numba compiles UMAP's kernels on first use (about 20 s): once per run, in prepare, outside the timed cases."""
    try:
        from bertopic import BERTopic as bertopic
        from umap import UMAP as umap
    except ImportError:
        return  # the cases say what is missing
    with _VECTORS_LOCK:
        rng = np.random.default_rng(0)
        sample = rng.normal(size=(120, 8)).astype(np.float32)
        docs = [f"warm up {i % 7} words {i % 5}" for i in range(120)]
        bertopic(embedding_model=None, umap_model=umap(n_neighbors=10, n_components=2, random_state=0)).fit_transform(
            docs, embeddings=sample
        )


# -- the task ----------------------------------------------------------------------------------------


@adapter(
    "nps_themes",
    prepare=_prepare,
    metrics=(
        "nmi",
        "purity",
        "names_readable",
        "names_grounded",
        "side_accuracy",
        "mixed_split",
        "driver_impact_valid",
        "latency_ms",
    ),
    baselines={"bertopic": bertopic_themes},
)
def nps_themes(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: responses [{comment, score, topic, polarity}], optional k, seed, mixed_topics [topic, ...]."""
    from copilot.tasks.nps_themes import Namer, Responses, ThemeBuild, build_themes

    responses = case_responses(case)
    strategy = env.task_strategy("nps_themes")
    rows = [(i + 1, r["score"], r["comment"], f"R{i + 1}") for i, r in enumerate(responses)]
    namer = Namer(env.context()) if strategy == "model" else None
    request = ThemeBuild(
        Responses.from_rows(rows),
        env.state["embedder"],
        seed=int(case.inputs.get("seed", 0)),
        k=case.inputs.get("k"),
        name_themes=namer,
        sentiment=env.services.sentiment,
        label="keywords" if strategy == "keywords" else "phrases",
    )
    built = build_themes(request)
    main, side = _main_themes(built.pairs, len(responses))
    report = built.report
    data = {
        "themes": [_theme_summary(t) for t in report.themes],
        "drivers": [d.model_dump(mode="json") for d in report.drivers],
        **_quality(case, responses, report, main, side, built.pairs),
    }
    output = CaseOutput(
        text="\n".join(t.label for t in report.themes),
        data=data,
        model=namer.model if namer is not None and namer.model else strategy,
        used_fallback=namer is not None and namer.fallback_reason() is not None,
        fallback_reason=namer.fallback_reason() if namer is not None else None,
        verdicts=[namer.verdict().model_dump(mode="json")] if namer is not None else [],
    )
    if namer is not None:
        output.prompt_name, output.prompt_version = namer.prompt.name, namer.prompt.version
        output.tokens_in, output.tokens_out, output.cost_usd = namer.tokens_in, namer.tokens_out, namer.cost_usd
    return output


def _main_themes(pairs: tuple[np.ndarray, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per response: the theme holding most of its sentences (-1: none) and its side there (+1, -1, 0)."""
    from copilot.tasks.nps_themes.describe import side_of

    response, theme, sentences, polarity_sum = pairs
    main = np.full(n, -1, dtype=np.int64)
    side = np.zeros(n, dtype=np.int64)
    best = np.full(n, -1.0)
    for r, t, count, total in zip(response, theme, sentences, polarity_sum, strict=True):
        if t >= 0 and (count > best[r] or (count == best[r] and t < main[r])):
            best[r], main[r] = count, t
            side[r] = int(side_of(np.asarray([total / count]))[0]) if count else 0
    return main, side


def _theme_summary(theme: Any) -> dict[str, Any]:
    return {
        "id": theme.id,
        "label": theme.label,
        "label_source": theme.label_source,
        "responses": theme.responses,
        "mixed": theme.mixed,
        "sentiment_label": theme.sentiment_label,
        "impact": theme.impact,
        "keywords": theme.keywords,
        "quotes": [q.text for q in theme.quotes],
        "sides": {s.polarity: {"share": s.share, "quotes": [q.response_id for q in s.quotes]} for s in theme.sides},
    }


# -- quality measures ----------------------------------------------------------------------------------


def _quality(
    case: Case,
    responses: list[dict[str, Any]],
    report: Any,
    main: np.ndarray,
    side: np.ndarray,
    pairs: tuple[np.ndarray, ...],
) -> dict[str, Any]:
    topics = [r["topic"] for r in responses]
    labels, vocabulary = [t.label for t in report.themes], _vocabulary(responses)
    return {
        **_clustering(topics, main),
        "names_readable": _share(_readable(t.label, labels, vocabulary) for t in report.themes),
        "names_grounded": _share(_grounded(t, _theme_comments(t.id, responses, pairs)) for t in report.themes),
        "side_accuracy": _side_accuracy(responses, side),
        "mixed_split": _mixed_split(case, responses, report, main),
        "driver_impact_valid": _impact_valid(responses, report, pairs),
    }


def purity(gold: Sequence[str], predicted: Sequence[int]) -> float:
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(gold, predicted)
    return float(table.max(axis=0).sum() / table.sum())


def _clustering(topics: list[Any], main: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import normalized_mutual_info_score

    keep = [i for i, t in enumerate(topics) if t is not None and main[i] >= 0]
    if len(keep) < 2:
        return {"nmi": None, "purity": None, "nmi_entity": None, "purity_entity": None}
    gold = [str(topics[i]) for i in keep]
    predicted = [int(main[i]) for i in keep]
    out: dict[str, float | None] = {
        "nmi": round(float(normalized_mutual_info_score(gold, predicted)), 4),
        "purity": round(purity(gold, predicted), 4),
        "nmi_entity": None,
        "purity_entity": None,
    }
    if all("#" in g for g in gold):
        entity = [g.split("#")[0] for g in gold]
        out["nmi_entity"] = round(float(normalized_mutual_info_score(entity, predicted)), 4)
        out["purity_entity"] = round(purity(entity, predicted), 4)
    return out


def _share(flags: Any) -> float | None:
    values = [bool(f) for f in flags]
    return round(sum(values) / len(values), 4) if values else None


def _vocabulary(responses: list[dict[str, Any]]) -> set[str]:
    return {w.lower() for r in responses for w in WORD.findall(r["comment"])}


def _readable(name: str, names: list[str], vocabulary: set[str]) -> bool:
    """2-5 words, at most 40 characters, distinct within the run, not a list ("Downtime, rock solid, reliable"),
    and no word cut short ("quickb": not a word of the comments, but the start of one)."""
    from copilot.tasks.nps_themes import MAX_NAME_CHARS, MAX_NAME_WORDS

    words = name.split()
    if not 2 <= len(words) <= MAX_NAME_WORDS or len(name) > MAX_NAME_CHARS or re.search(r"[,;/|_]", name):
        return False
    if sum(other.lower() == name.lower() for other in names) > 1:
        return False
    return not any(_cut(w.lower(), vocabulary) for w in WORD.findall(name))


def _cut(word: str, vocabulary: set[str]) -> bool:
    return word not in vocabulary and any(v.startswith(word) for v in vocabulary)


def _theme_comments(theme_id: int, responses: list[dict[str, Any]], pairs: tuple[np.ndarray, ...]) -> list[str]:
    return [responses[int(r)]["comment"] for r in np.unique(pairs[0][pairs[1] == theme_id])]


def _grounded(theme: Any, comments: list[str]) -> bool:
    """Every content word of the name is in the theme's keywords or its own comments (the guard's check)."""
    from copilot.tasks.nps_themes import name_is_grounded

    return name_is_grounded(theme.label, theme.keywords, comments)[0]


def _side_accuracy(responses: list[dict[str, Any]], side: np.ndarray) -> float | None:
    wanted = {"positive": 1, "negative": -1}
    scored = [(wanted[r["polarity"]], int(side[i])) for i, r in enumerate(responses) if r["polarity"] in wanted]
    return round(sum(g == s for g, s in scored) / len(scored), 4) if scored else None


def _mixed_split(case: Case, responses: list[dict[str, Any]], report: Any, main: np.ndarray) -> float | None:
    """Share of the case's mixed topics that come out as one mixed theme whose sides quote their own polarity."""
    topics = case.inputs.get("mixed_topics") or []
    if not topics:
        return None
    by_id = {t.id: t for t in report.themes}
    polarity_of = {i + 1: r["polarity"] for i, r in enumerate(responses)}
    hits = 0
    for topic in topics:
        members = [int(main[i]) for i, r in enumerate(responses) if r["topic"] == topic and main[i] >= 0]
        if not members:
            continue
        theme = by_id.get(max(set(members), key=members.count))
        if theme is None or not theme.mixed or len(theme.sides) < 2:
            continue
        hits += all(
            polarity_of.get(q.response_id) in (None, s.polarity) for s in theme.sides for q in s.quotes
        ) and all(s.quotes for s in theme.sides)
    return round(hits / len(topics), 4)


def _impact_valid(responses: list[dict[str, Any]], report: Any, pairs: tuple[np.ndarray, ...]) -> bool:
    """Every theme's impact is NPS(all) - NPS(the responses not in it), recomputed here from the case."""
    scores = np.asarray([r["score"] for r in responses])

    def nps(values: np.ndarray) -> float:
        return 100 * (float((values >= 9).mean()) - float((values <= 6).mean()))

    response, theme = pairs[0], pairs[1]
    for t in report.themes:
        inside = np.unique(response[theme == t.id])
        rest = np.setdiff1d(np.arange(len(scores)), inside)
        expected = None if not len(rest) or not len(inside) else round(nps(scores) - nps(scores[rest]), 1)
        if expected is None and t.impact is None:
            continue
        if expected is None or t.impact is None or abs(expected - t.impact) > 0.051:
            return False
    impacts = [d.impact for d in report.drivers]
    return impacts == sorted(impacts)


# -- metrics ------------------------------------------------------------------------------------------


def _from_data(name: str):
    return lambda case, output: None if output.error else output.data.get(name)


def _flag(value: Any) -> float | None:
    return None if value is None else float(bool(value))  # None: the system has no impacts (a baseline)


for _name, _description in (
    ("nmi", "normalized mutual information of each response's main theme against the gold topics (scikit-learn)"),
    ("purity", "share of responses whose main theme's most common gold topic is their own"),
    ("nmi_entity", "NMI against the entity of ENTITY#ATTRIBUTE gold categories (SemEval ABSA: FOOD, SERVICE, ...)"),
    ("purity_entity", "purity against the entity of ENTITY#ATTRIBUTE gold categories"),
    ("names_readable", "share of theme names of 2-5 whole words (none cut), at most 40 characters, distinct"),
    ("names_grounded", "share of theme names whose every content word is in the theme's keywords or quotes"),
    ("side_accuracy", "share of responses with a gold polarity that sit on that side of their main theme"),
    ("mixed_split", "share of the case's mixed topics shown as one theme with praise and complaint sides"),
):
    m.register(m.Metric(_name, _description, True, _from_data(_name), m.mean))
m.register(
    m.Metric(
        "driver_impact_valid",
        "share of cases whose every theme impact equals NPS(all) - NPS(responses not in it), drivers sorted",
        True,
        lambda case, output: 0.0 if output.error else _flag(output.data.get("driver_impact_valid")),
        m.mean,
        binary=True,
    )
)
