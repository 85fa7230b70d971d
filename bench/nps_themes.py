"""NPS themes at scale: the whole job on N generated comments vs only embedding the same comments, same run.

N comments (default 100,000) of 1-3 sentences built from the demo's NPS building blocks with varied
details (plans, team sizes, integrations, months), so most sentences are distinct, are stored in a
temporary SQLite workspace (not timed). Then:

  embed only  raw SentenceTransformer.encode of the N comments (all-MiniLM-L6-v2, torch fp32, batch 64), as a
              user of the library would embed them: the baseline whatever embedding backend the job uses
              (--backend, default COPILOT_EMBEDDING_BACKEND)
  total       the nps_themes task end to end (services.run_task): load from the store, split into sentences,
              embed the distinct ones, fit the themes (spectral kNN on a sample + merge), assign every sentence,
              sentiment and sides, c-TF-IDF keywords, noun-phrase names, quotes, figures, driver impact, and save
              the report, theme model and assignments

ratio = total / embed only (target <= 1.5). The job embeds distinct sentences only, so repeated
sentences make it cheaper than embedding every comment; ``--all-distinct`` gives every sentence a
serial number, the worst case where de-duplication saves nothing. Load from other jobs on a shared
machine shifts between the two measurements: compare the per-stage times too.
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Bench scripts are named like the packages they measure: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import platform
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from copilot.demo import sales
from copilot.demo.people import FIRST_NAMES, INTEGRATIONS
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import get_or_create_workspace
from copilot.store.models import NpsResponse
from copilot.tasks.nps_themes import SentenceTable
from retrieval.embeddings import BACKENDS, embedder_for

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OPENERS = [
    "",
    "",
    "",
    "Honestly, ",
    "To be fair, ",
    "For us, ",
    "In my opinion, ",
    "Overall, ",
    "As a bookkeeper, ",
    "Frankly, ",
]
DETAILS = [
    " since we moved to the {plan} plan",
    " for our team of {n}",
    " with about {n} invoices a month",
    " ever since {month}",
    " according to {name} in accounts",
    " now that we sync with {integration}",
    " across our {n} clients",
    " for the last {n} weeks",
]
PLANS = ["Starter", "Business", "Premium", "Enterprise"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def sentence(rng: random.Random, theme: str, polarity: str, serial: int | None = None) -> str:
    text = rng.choice(sales.NPS_THEMES[theme][polarity]).rstrip(".")
    opener = rng.choice(OPENERS)
    if opener and text.split()[0] not in {"Liam", "Salesforce", "Xero", "QuickBooks", "Stripe"}:
        text = opener + text[0].lower() + text[1:]
    if serial is not None:  # every sentence distinct: nothing for the de-duplication to save
        text += f" (#{serial})"
    elif rng.random() < 0.8:
        text += rng.choice(DETAILS).format(
            plan=rng.choice(PLANS),
            n=rng.randint(2, 5000),
            month=rng.choice(MONTHS),
            name=rng.choice(FIRST_NAMES),
            integration=rng.choice(INTEGRATIONS),
        )
    return text + rng.choice([".", ".", "!", "."])


def generate(n: int, seed: int = 0, all_distinct: bool = False) -> list[tuple[int, str]]:
    """(score, comment) pairs: themes correlated with the score, one to three sentences."""
    rng = random.Random(seed)
    serials = iter(range(10 * n)) if all_distinct else None
    themes = list(sales.NPS_THEMES)
    rows = []
    for _ in range(n):
        score = rng.choices(range(11), weights=[1, 1, 1, 1, 2, 2, 3, 6, 9, 10, 9])[0]
        polarity = "negative" if score <= 6 else "positive" if score >= 9 else rng.choice(["positive", "negative"])
        parts = [sentence(rng, rng.choice(themes), polarity, next(serials) if serials else None)]
        for _ in range(rng.choices([0, 1, 2], weights=[50, 35, 15])[0]):
            other = polarity if rng.random() < 0.6 else ("positive" if polarity == "negative" else "negative")
            parts.append(
                rng.choice(sales.NPS_CONTRAST_CONNECTORS + sales.NPS_SAME_CONNECTORS).strip()
                + " "
                + sentence(rng, rng.choice(themes), other, next(serials) if serials else None)
            )
        rows.append((score, " ".join(p.strip() for p in parts).replace("  ", " ")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--all-distinct",
        action="store_true",
        help="Make every sentence distinct (worst case: de-duplication saves nothing).",
    )
    parser.add_argument("--backend", choices=BACKENDS, help="Embedding backend (default: COPILOT_EMBEDDING_BACKEND).")
    args = parser.parse_args()
    rows = generate(args.n, args.seed, args.all_distinct)
    comments = [comment for _, comment in rows]
    table = SentenceTable.build(comments)
    distinct = {
        "distinct_sentences": len(table.texts),
        "comment_chars": sum(map(len, comments)),
        "distinct_sentence_chars": sum(map(len, table.texts)),
    }
    machine = f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}"
    print(f"machine: {machine}; load average before: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")

    settings = Settings(**({"embedding_backend": args.backend} if args.backend else {}))
    embedder = embedder_for(settings)  # its ONNX export is cached under COPILOT_DATA_DIR, not the temp dir
    model = embedder_for(settings.model_copy(update={"embedding_backend": "torch"})).model  # the baseline
    with tempfile.TemporaryDirectory() as tmp:
        # noun-phrase names (the default with the embedded model): no generation in the bench
        services = Services(
            settings.model_copy(update={"data_dir": Path(tmp), "model": "local/smollm2-135m-instruct"}),
            embedder=embedder,
        )
        store = services.store
        embedder.encode(comments[:256])  # warm-up
        model.encode(comments[:256], batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        with store.session() as session:
            workspace = get_or_create_workspace(session, "bench")
            day = timedelta(days=60) / max(1, len(rows))
            session.execute(
                insert(NpsResponse),
                [
                    {
                        "workspace_id": workspace.id,
                        "external_id": f"NPS-{i}",
                        "score": score,
                        "comment": comment,
                        "submitted_at": NOW - timedelta(days=60) + i * day,
                        "campaign": "bench",
                    }
                    for i, (score, comment) in enumerate(rows)
                ],
            )

        started = time.perf_counter()
        model.encode(comments, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        embed_s = time.perf_counter() - started

        params = {
            "filters": {"since": NOW - timedelta(days=60), "until": NOW},
            "seed": args.seed,
            "strategy": "phrases",  # the small profile's namer, as `auto` runs it with the embedded model
            "as_of": NOW,
        }
        with store.repo("bench") as repo:
            started = time.perf_counter()
            outcome = services.run_task(repo, "nps_themes", params)
            total_s = time.perf_counter() - started
        services.close()
        store.engine.dispose()

    report = outcome.result
    figures = {
        "comments": args.n,
        "backend": embedder.name,
        "sentences": report.sentences,
        **distinct,
        "all_distinct": args.all_distinct,
        "themes": report.k,
        "names": [theme.label for theme in report.themes],
        "embed_only_s": round(embed_s, 1),
        "total_s": round(total_s, 1),
        "ratio": round(total_s / embed_s, 3),
        "comments_per_s": round(args.n / total_s, 1),
        "stages_s": report.timings,
        "machine": machine,
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    print(
        f"{args.n:,} comments ({distinct['comment_chars']:,} chars) -> {report.sentences:,} sentences, "
        f"{distinct['distinct_sentences']:,} distinct "
        f"({distinct['distinct_sentence_chars']:,} chars, what the job embeds) -> {report.k} themes"
    )
    print(
        f"embed only: {embed_s:.1f}s ({args.n / embed_s:.0f} comments/s); "
        f"whole job: {total_s:.1f}s ({args.n / total_s:.0f} comments/s)"
    )
    print("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in report.timings.items()))
    for theme in report.themes[:8]:
        mixed = " (praise and complaints)" if theme.mixed else ""
        impact = f"{theme.impact:+.1f}" if theme.impact is not None else "-"
        print(f"  {theme.responses:>7,}  {theme.label}{mixed}  impact {impact}")
    print("drivers: " + ", ".join(f"{d.label} {d.impact:+.1f}" for d in report.drivers))
    print(f"ratio total / embed only: {figures['ratio']} (target <= 1.5)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
