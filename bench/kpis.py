"""KPI computation at scale against a plain SQL aggregate baseline, in the same run.

A workspace of 1,000,000 messages, 100,000 tickets and 20,000 deals (plus accounts, NPS answers and leads) is
generated with bulk inserts (DB-API ``executemany`` on SQLite, ``COPY`` on PostgreSQL). Then, interleaved, three times
each: ``copilot.insights.kpis.compute_kpis`` for the last 90 days and the previous 90 (every stage, every KPI), and a
baseline of hand-written SQL aggregates computing the same figures for both periods (percentiles by window
functions, counts and averages by GROUP BY, time in stage and stage conversion from the JSON stage history by
json_each / json_array_elements with LEAD). Ten support figures of both (percentiles, rates, SLA breaches, CSAT,
backlog, NPS) are compared and must agree, so the two do the same work. The ratio is median(ours) /
median(baseline); target <= 2.0. Exit status 1 when the ratio misses it or a figure disagrees.

    python bench/kpis.py                                    # SQLite and PostgreSQL (COPILOT_BENCH_PG_URL)
    python bench/kpis.py --dialect sqlite --messages 100000 # smaller, one dialect

The PostgreSQL run creates its own database on the server and drops it afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from copilot.insights.common import Period  # noqa: E402
from copilot.insights.kpis import compute_kpis  # noqa: E402
from copilot.store import Store, get_or_create_workspace  # noqa: E402
from copilot.store.db import make_engine, migrate  # noqa: E402

PG_URL = os.environ.get("COPILOT_BENCH_PG_URL", "postgresql+psycopg://postgres:copilot-ci@127.0.0.1:5432/postgres")
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
PRIORITIES = ("low", "normal", "normal", "normal", "high", "urgent")
CHANNELS = ("email", "email", "chat", "web", "phone", "social")
SOURCES = ("referral", "partner", "inbound", "outbound", "event", "paid_ads")
STAGES = ("prospecting", "qualification", "discovery", "proposal", "negotiation")
SEGMENTS = ("smb", "mid-market", "enterprise")
TEAMS = ("Billing", "Technical", "Success")
AGENTS = ("Liam Chen", "Priya Patel", "Jonas Weber", "Camille Moreau", "Samuel Okafor")
FIRST_SLA = {"urgent": 1, "high": 4, "normal": 24, "low": 72}
RESOLUTION_SLA = {"urgent": 24, "high": 72, "normal": 120, "low": 240}


def ts(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


# -- generation -------------------------------------------------------------------------------------
def rows(sizes: dict[str, int], workspace_id: int, seed: int = 0) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table's columns and rows (ids assigned here, so references need no lookups)."""
    rng = random.Random(seed)
    stamp = ts(NOW)
    common = (workspace_id, stamp, stamp)
    base = ["workspace_id", "created_at", "updated_at"]
    accounts, tickets, messages, deals, nps, leads = [], [], [], [], [], []
    for i in range(1, sizes["accounts"] + 1):
        since = NOW - timedelta(days=rng.uniform(30, 1500))
        churned = (NOW - timedelta(days=rng.uniform(0, 400))).date().isoformat() if rng.random() < 0.12 else None
        accounts.append(
            (
                i,
                *common,
                f"Account {i}",
                rng.choice(SEGMENTS),
                since.date().isoformat(),
                churned,
                rng.randrange(1200, 240000),
            )
        )
    per_ticket = max(1, sizes["messages"] // sizes["tickets"])
    message_id = 0
    for i in range(1, sizes["tickets"] + 1):
        opened = NOW - timedelta(days=rng.uniform(0, 365))
        priority = rng.choice(PRIORITIES)
        solved = rng.random() < 0.7
        closed = opened + timedelta(hours=rng.uniform(1, 300)) if solved else None
        closed = closed if closed is None or closed < NOW else None
        csat = rng.randint(1, 5) if closed and rng.random() < 0.3 else None
        tickets.append(
            (
                i,
                *common,
                rng.randrange(1, sizes["accounts"] + 1),
                f"Ticket {i}",
                "solved" if closed else "open",
                priority,
                rng.choice(CHANNELS),
                rng.choice(AGENTS),
                rng.choice(TEAMS),
                ts(opened),
                ts(closed) if closed else None,
                csat,
                int(rng.random() < 0.08),
            )
        )
        when = opened
        for n in range(per_ticket):
            message_id += 1
            kind = "customer" if n % 2 == 0 else ("agent" if rng.random() < 0.9 else "internal_note")
            messages.append((message_id, *common, i, kind, "Hello, a message body of ordinary length.", ts(when)))
            when += timedelta(minutes=rng.uniform(5, 1500))
    for i in range(1, sizes["deals"] + 1):
        start = NOW - timedelta(days=rng.uniform(10, 400))
        reached = rng.randint(1, 5)
        history, when = [], start
        for stage in STAGES[:reached]:
            history.append({"stage": stage, "at": when.isoformat()})
            when += timedelta(days=rng.uniform(3, 40))
        stage = STAGES[reached - 1]
        close = (NOW + timedelta(days=rng.uniform(5, 120))).date()
        if when < NOW and rng.random() < 0.6:
            stage = "closed_won" if rng.random() < 0.45 else "closed_lost"
            history.append({"stage": stage, "at": when.isoformat()})
            close = when.date()
        deals.append(
            (
                i,
                *common,
                rng.randrange(1, sizes["accounts"] + 1),
                f"Deal {i}",
                stage,
                rng.randrange(1000, 200000),
                "USD",
                close.isoformat(),
                json.dumps(history),
                rng.choice(SOURCES),
                rng.choice(("new_business", "renewal", "expansion")),
                rng.choice(("New business", "Account management")),
            )
        )
    for i in range(1, sizes["nps"] + 1):
        nps.append(
            (
                i,
                *common,
                rng.randrange(1, sizes["accounts"] + 1),
                rng.randint(0, 10),
                ts(NOW - timedelta(days=rng.uniform(0, 365))),
            )
        )
    for i in range(1, sizes["leads"] + 1):
        created = NOW - timedelta(days=rng.uniform(0, 365))
        status = rng.choice(("open", "qualified", "converted", "disqualified"))
        leads.append((i, *common, f"Lead {i}", rng.choice(SOURCES), status, ts(created)))
    return {
        "accounts": (["id", *base, "name", "segment", "customer_since", "churned_at", "arr"], accounts),
        "tickets": (
            [
                "id",
                *base,
                "account_id",
                "subject",
                "status",
                "priority",
                "channel",
                "assignee",
                "team",
                "opened_at",
                "closed_at",
                "csat_score",
                "reopen_count",
            ],
            tickets,
        ),
        "messages": (["id", *base, "ticket_id", "author_kind", "body", "sent_at"], messages),
        "deals": (
            [
                "id",
                *base,
                "account_id",
                "name",
                "stage",
                "amount",
                "currency",
                "close_date",
                "stage_history",
                "lead_source",
                "deal_type",
                "team",
            ],
            deals,
        ),
        "nps_responses": (["id", *base, "account_id", "score", "submitted_at"], nps),
        "contacts": (["id", *base, "name", "lead_source", "lead_status", "lead_created_at"], leads),
    }


def write(engine, tables: dict[str, tuple[list[str], list[tuple]]]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("SET TIME ZONE 'UTC'")  # the generated timestamps are UTC
        for table, (columns, values) in tables.items():
            if engine.dialect.name == "sqlite":
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)
            else:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
        if engine.dialect.name == "postgresql":
            for table in tables:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                cursor.execute(f"ANALYZE {table}")
        raw.commit()
    finally:
        raw.close()


# -- the baseline -----------------------------------------------------------------------------------
def _seconds(dialect: str, column: str) -> str:
    if dialect == "sqlite":
        return f"(julianday({column}) * 86400.0)"
    if column.startswith(":"):
        column = f"CAST({column} AS timestamptz)"
    return f"extract(epoch from {column})"


def _quantiles(connection, dialect: str, values_sql: str, params: dict[str, Any]) -> tuple[float | None, ...]:
    """Median and p90 by a window function: the two closest ranks of each, interpolated."""
    n = connection.execute(text(f"SELECT COUNT(*) FROM ({values_sql}) v"), params).scalar()
    if not n:
        return None, None
    ranks = [(n - 1) * q for q in (0.5, 0.9)]
    wanted = sorted({int(r) for r in ranks} | {min(n - 1, int(r) + 1) for r in ranks})
    query = (
        f"SELECT x, i FROM (SELECT x, ROW_NUMBER() OVER (ORDER BY x) - 1 AS i FROM ({values_sql}) v) r "
        f"WHERE i IN ({', '.join(str(i) for i in wanted)})"
    )
    found = {int(i): float(x) for x, i in connection.execute(text(query), params)}
    return tuple(found[int(r)] + (found[min(n - 1, int(r) + 1)] - found[int(r)]) * (r - int(r)) for r in ranks)


def baseline(engine, workspace_id: int, period: Period) -> dict[str, Any]:
    d = engine.dialect.name
    s = lambda column: _seconds(d, column)  # noqa: E731
    out: dict[str, Any] = {}
    first_sla = " ".join(f"WHEN '{p}' THEN {h}" for p, h in FIRST_SLA.items())
    resolution_sla = " ".join(f"WHEN '{p}' THEN {h}" for p, h in RESOLUTION_SLA.items())
    history = (
        "SELECT d.id, json_extract(e.value, '$.stage') AS stage, json_extract(e.value, '$.at') AS at "
        "FROM deals d, json_each(d.stage_history) e WHERE d.workspace_id = :w"
        if d == "sqlite"
        else "SELECT d.id, e.value->>'stage' AS stage, e.value->>'at' AS at "
        "FROM deals d, json_array_elements(d.stage_history) e WHERE d.workspace_id = :w"
    )
    at_seconds = s("substr(at, 1, 26)") if d == "sqlite" else "extract(epoch from CAST(at AS timestamptz))"
    with engine.connect() as c:
        for name, window in (("now", period), ("before", period.previous())):
            p = {"w": workspace_id, "a": ts(window.since), "b": ts(window.until)}
            frt = (
                f"SELECT ({s('MIN(m.sent_at)')} - {s('t.opened_at')}) / 3600.0 AS x FROM tickets t JOIN messages m "
                "ON m.ticket_id = t.id AND m.author_kind = 'agent' WHERE t.workspace_id = :w AND t.opened_at >= :a "
                "AND t.opened_at < :b AND m.sent_at < :b GROUP BY t.id, t.opened_at"
            )
            resolution = (
                f"SELECT ({s('closed_at')} - {s('opened_at')}) / 3600.0 AS x FROM tickets WHERE workspace_id = :w "
                "AND closed_at >= :a AND closed_at < :b"
            )
            figures = {"frt": _quantiles(c, d, frt, p), "resolution": _quantiles(c, d, resolution, p)}
            figures["first_sla_breaches"] = c.execute(
                text(
                    f"SELECT SUM(CASE WHEN (COALESCE((SELECT {s('MIN(m.sent_at)')} FROM messages m "
                    f"WHERE m.ticket_id = t.id AND m.author_kind = 'agent' AND m.sent_at < :b), {s(':b')}) - "
                    f"{s('t.opened_at')}) / 3600.0 > CASE t.priority {first_sla} END THEN 1 ELSE 0 END), COUNT(*) "
                    "FROM tickets t WHERE t.workspace_id = :w AND t.opened_at >= :a AND t.opened_at < :b"
                ),
                p,
            ).one()
            figures["solved"] = c.execute(
                text(
                    f"SELECT COUNT(*), AVG(CASE WHEN reopen_count > 0 THEN 100.0 ELSE 0 END), SUM(CASE WHEN ("
                    f"{s('closed_at')} - {s('opened_at')}) / 3600.0 > CASE priority {resolution_sla} END THEN 1 ELSE 0 "
                    "END), AVG(CASE WHEN csat_score >= 4 THEN 100.0 WHEN csat_score IS NOT NULL THEN 0 END), "
                    "AVG(csat_score) FROM tickets WHERE workspace_id = :w AND closed_at >= :a AND closed_at < :b"
                ),
                p,
            ).one()
            figures["backlog"] = c.execute(
                text(
                    "SELECT COUNT(*) FROM tickets WHERE workspace_id = :w AND opened_at < :b AND (closed_at IS NULL OR "
                    "closed_at >= :b)"
                ),
                p,
            ).scalar()
            figures["nps"] = c.execute(
                text(
                    "SELECT 100.0 * (SUM(CASE WHEN score >= 9 THEN 1 ELSE 0 END) - "
                    "SUM(CASE WHEN score <= 6 THEN 1 ELSE 0 END)) / COUNT(*) FROM nps_responses "
                    "WHERE workspace_id = :w AND submitted_at >= :a AND submitted_at < :b"
                ),
                p,
            ).scalar()
            closed = (
                "SELECT lead_source, stage, amount FROM deals WHERE workspace_id = :w AND stage IN ('closed_won', "
                "'closed_lost') AND close_date >= :da AND close_date < :db"
            )
            q = {**p, "da": window.since.date().isoformat(), "db": window.until.date().isoformat()}
            figures["win_by_source"] = c.execute(
                text(
                    f"SELECT lead_source, AVG(CASE WHEN stage = 'closed_won' THEN 100.0 ELSE 0 END), COUNT(*) FROM "
                    f"({closed}) x GROUP BY lead_source"
                ),
                q,
            ).all()
            figures["deals"] = c.execute(
                text(
                    "SELECT AVG(CASE WHEN stage = 'closed_won' THEN 100.0 ELSE 0 END), AVG(CASE WHEN stage = "
                    f"'closed_won' THEN amount END) FROM ({closed}) x"
                ),
                q,
            ).one()
            steps = (
                f"SELECT id, stage, {at_seconds} AS t, LEAD({at_seconds}) OVER (PARTITION BY id ORDER BY at) AS "
                f"left_t, LEAD(stage) OVER (PARTITION BY id ORDER BY at) AS next_stage FROM ({history}) h"
            )
            figures["stage_flow"] = c.execute(
                text(
                    "SELECT stage, AVG(CASE WHEN next_stage IS NOT NULL AND next_stage <> 'closed_lost' "
                    f"THEN 100.0 ELSE 0 END), AVG((left_t - t) / 86400.0), COUNT(*) FROM ({steps}) s "
                    f"WHERE t >= {s(':a')} AND t < {s(':b')} GROUP BY stage"
                ),
                p,
            ).all()
            figures["leads"] = c.execute(
                text(
                    "SELECT lead_source, AVG(CASE WHEN lead_status = 'converted' THEN 100.0 ELSE 0 END), COUNT(*) FROM "
                    "contacts WHERE workspace_id = :w AND lead_created_at >= :a AND lead_created_at < :b "
                    "AND lead_status IN ('converted', 'disqualified') GROUP BY lead_source"
                ),
                p,
            ).all()
            figures["churn"] = c.execute(
                text(
                    "SELECT AVG(CASE WHEN churned_at >= :da AND churned_at < :db THEN 100.0 ELSE 0 END) FROM accounts "
                    "WHERE workspace_id = :w AND (customer_since IS NULL OR customer_since < :da) "
                    "AND (churned_at IS NULL OR churned_at >= :da)"
                ),
                q,
            ).scalar()
            out[name] = figures
    return out


# -- the run ---------------------------------------------------------------------------------------
def measure(url: str, sizes: dict[str, int], repeats: int) -> dict[str, Any]:
    engine = make_engine(url)
    migrate(engine)
    store = Store(engine)
    with store.session() as session:
        workspace_id = get_or_create_workspace(session, "bench").id
    started = time.perf_counter()
    write(engine, rows(sizes, workspace_id))
    generated_s = time.perf_counter() - started
    period = Period.of(days=90, now=NOW)
    ours, theirs = [], []
    report = figures = None
    for _ in range(repeats):
        started = time.perf_counter()
        with store.repo("bench") as repo:
            report = compute_kpis(repo, period)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        figures = baseline(engine, workspace_id, period)
        theirs.append(time.perf_counter() - started)
    support, now = report.section("support"), figures["now"]
    solved_n, reopen_rate, late, csat_good, csat_mean = now["solved"]
    checks = {
        "first_response_median_h": (support.kpi("first_response_median_h").value, now["frt"][0]),
        "first_response_p90_h": (support.kpi("first_response_p90_h").value, now["frt"][1]),
        "resolution_median_h": (support.kpi("resolution_median_h").value, now["resolution"][0]),
        "resolution_p90_h": (support.kpi("resolution_p90_h").value, now["resolution"][1]),
        "reopen_rate": (support.kpi("reopen_rate").value, reopen_rate),
        "sla_breaches": (support.kpi("sla_breaches").value, now["first_sla_breaches"][0] + late),
        "csat_good": (support.kpi("csat_good").value, csat_good),
        "csat_mean": (support.kpi("csat_mean").value, csat_mean),
        "backlog": (support.kpi("backlog").value, now["backlog"]),
        "nps": (support.kpi("nps").value, now["nps"]),
    }
    engine.dispose()
    return {
        "dialect": engine.dialect.name,
        "generate_s": round(generated_s, 1),
        "ours_s": [round(t, 3) for t in ours],
        "baseline_s": [round(t, 3) for t in theirs],
        "ratio": round(statistics.median(ours) / statistics.median(theirs), 3),
        "agree": {
            k: [round(float(a), 4) if a is not None else None, round(float(b), 4) if b is not None else None]
            for k, (a, b) in checks.items()
        },
    }


def postgres_database() -> tuple[str, Any]:
    name = f"copilot_bench_kpis_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False), drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--deals", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dialect", action="append", choices=("sqlite", "postgresql"))
    args = parser.parse_args(argv)
    sizes = {
        "messages": args.messages,
        "tickets": args.tickets,
        "deals": args.deals,
        "accounts": max(100, args.tickets // 20),
        "nps": args.tickets // 2,
        "leads": args.tickets // 10,
    }
    results = {}
    for dialect in args.dialect or ["sqlite", "postgresql"]:
        if dialect == "sqlite":
            with tempfile.TemporaryDirectory(prefix="bench-kpis-") as folder:
                results["sqlite"] = measure(f"sqlite:///{Path(folder) / 'bench.db'}", sizes, args.repeats)
        else:
            url, drop = postgres_database()
            try:
                results["postgresql"] = measure(url, sizes, args.repeats)
            finally:
                drop()
        r = results[dialect]
        print(
            f"{dialect}: generated in {r['generate_s']} s; KPIs {r['ours_s']} s, SQL baseline {r['baseline_s']} s, "
            f"ratio {r['ratio']} (target <= 2.0); same figures: {r['agree']}",
            flush=True,
        )
    summary = {"ratio": max(r["ratio"] for r in results.values()), "sizes": sizes, **results}
    print(json.dumps(summary))
    differ = [f"{d}: {k}" for d, r in results.items() for k, (a, b) in r["agree"].items() if a != b]
    if differ:
        print(f"the KPIs and the SQL baseline disagree on {', '.join(differ)}", file=sys.stderr)
    return 0 if summary["ratio"] <= 2.0 and not differ else 1


if __name__ == "__main__":
    raise SystemExit(main())
