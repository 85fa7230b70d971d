"""Soak: concurrent clients mixing drafts, approvals, ingest and searches against a running server (fake model).

Then a consistency check on the database: every approved draft has exactly one approval and one audit event, no
audit event or chunk points at a missing row, no decided draft lacks its final text. Target: zero errors, zero
inconsistencies. 409 conflicts (two reviewers on one draft, a draft gone stale under a reviewer) are expected and
counted apart. Last line: one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/retrieval.py would shadow the retrieval package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select, text

from api.app import create_app
from api.server import background_server
from copilot.auth import create_key
from copilot.demo.generator import seed_demo
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store
from copilot.store.models import AiResult, AiStatus, AuditEvent, Ticket

WORDS = [
    "refund",
    "invoice",
    "charged twice",
    "login",
    "password reset",
    "export csv",
    "android crash",
    "api rate limit",
    "sso",
    "upgrade plan",
]


class Soak:
    def __init__(self, base: str, agent: str, admin: str, tickets: list[tuple[int, str]], seed: int) -> None:
        self.base, self.agent, self.admin, self.tickets = base, agent, admin, tickets
        self.latencies: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []
        self.rng = random.Random(seed)
        self.sequence = 0

    async def request(
        self,
        client: httpx.AsyncClient,
        action: str,
        method: str,
        url: str,
        ok: tuple[int, ...] = (200,),
        expected: tuple[int, ...] = (),
        **kwargs,
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            self.errors.append(f"{action}: {type(error).__name__}")
            return None
        self.latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code in ok:
            self.outcomes[action] += 1
        elif response.status_code in expected:
            self.outcomes[f"{action}_{response.status_code}"] += 1
        else:
            self.errors.append(f"{action}: HTTP {response.status_code} {response.text[:160]}")
        return response

    async def draft(self, client: httpx.AsyncClient) -> None:
        ticket_id, _ = self.rng.choice(self.tickets)
        await self.request(client, "draft", "POST", f"/v1/tickets/{ticket_id}/draft", headers={"X-API-Key": self.agent})

    async def approve(self, client: httpx.AsyncClient) -> None:
        queue = await self.request(
            client,
            "queue",
            "GET",
            "/v1/review/queue",
            headers={"X-API-Key": self.agent},
            params={"task": "reply_draft", "limit": 20},
        )
        if queue is None or queue.status_code != 200 or not queue.json()["items"]:
            return
        item = self.rng.choice(queue.json()["items"])
        blocked = any(not v["passed"] and v.get("severity", "block") == "block" for v in item["guard_verdicts"])
        body = (
            {
                "decision": "edit",
                "version": item["version"],
                "text": (item["content"]["result"]["text"] + "\n(checked)"),
            }
            if blocked
            else {"decision": "approve", "version": item["version"], "confirm_commitments": True}
        )
        await self.request(
            client,
            "decide",
            "POST",
            f"/v1/review/{item['id']}/decision",
            headers={"X-API-Key": self.agent},
            json=body,
            expected=(409,),
        )

    async def ingest(self, client: httpx.AsyncClient) -> None:
        _, external = self.rng.choice(self.tickets)
        self.sequence += 1
        row = {
            "external_id": f"SOAK-{os.getpid()}-{self.sequence}",
            "ticket": external,
            "author_kind": "customer",
            "body": f"Any update on this? {self.rng.choice(WORDS)}",
            "sent_at": datetime.now(UTC).isoformat(),
        }
        await self.request(
            client, "ingest", "POST", "/v1/records/message", headers={"X-API-Key": self.admin}, json=[row]
        )

    async def search(self, client: httpx.AsyncClient) -> None:
        await self.request(
            client,
            "search",
            "GET",
            "/v1/search",
            headers={"X-API-Key": self.agent},
            params={"q": self.rng.choice(WORDS)},
        )

    async def client_loop(self, deadline: float) -> None:
        actions = [self.draft] * 35 + [self.approve] * 25 + [self.ingest] * 15 + [self.search] * 25
        async with httpx.AsyncClient(base_url=self.base, timeout=180) as client:
            while time.perf_counter() < deadline:
                await self.rng.choice(actions)(client)


def consistency(store: Store) -> list[str]:
    problems = []
    with store.session() as session:
        decided = session.scalars(
            select(AiResult).where(
                AiResult.task == "reply_draft", AiResult.status.in_([AiStatus.approved, AiStatus.edited, AiStatus.sent])
            )
        ).all()
        events = Counter(
            session.scalars(
                select(AuditEvent.ai_result_id).where(AuditEvent.action.in_(["review.approve", "review.edit"]))
            )
        )
        for row in decided:
            if events[row.id] != 1:
                problems.append(f"AI result {row.id} has {events[row.id]} approval events")
            if not row.final_text:
                problems.append(f"AI result {row.id} is {row.status.value} without a final text")
        rejected_or_pending = set(
            session.scalars(select(AiResult.id).where(AiResult.status.in_([AiStatus.pending, AiStatus.stale])))
        )
        problems += [f"AI result {i} is undecided but has an approval event" for i in rejected_or_pending if events[i]]
        orphans = {
            "audit events without their AI result": (
                "SELECT count(*) FROM audit_events e LEFT JOIN ai_results r ON r.id = e.ai_result_id "
                "WHERE e.ai_result_id IS NOT NULL AND r.id IS NULL"
            ),
            "messages without their ticket": (
                "SELECT count(*) FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id WHERE t.id IS NULL"
            ),
            "search chunks of missing messages": (
                "SELECT count(*) FROM search_chunks c LEFT JOIN messages m ON m.id = c.record_id "
                "WHERE c.record_kind = 'message' AND m.id IS NULL"
            ),
        }
        for name, sql in orphans.items():
            if count := session.execute(text(sql)).scalar():
                problems.append(f"{count} {name}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), model="fake/echo", index_on_ingest=True)
        services = Services(settings, Store.from_settings(settings))
        store = services.store
        seed_demo(store, "demo", 7)
        with store.repo("demo") as repo:
            services.index.rebuild(repo)
            agent, _ = create_key(repo, "agent", "soak agent")
            admin, _ = create_key(repo, "admin", "soak admin")
            tickets = [(t.id, t.external_id) for t in repo.all(repo.select(Ticket).order_by(Ticket.id).limit(60))]
        with background_server(create_app(services=services)) as base:
            soak = Soak(base, agent, admin, tickets, args.seed)
            started = time.perf_counter()
            deadline = started + args.seconds

            async def run_all() -> None:
                await asyncio.gather(*(soak.client_loop(deadline) for _ in range(args.clients)))

            asyncio.run(run_all())
            elapsed = time.perf_counter() - started
        problems = consistency(store)
        with store.session() as session:
            approved = session.scalar(
                select(func.count())
                .select_from(AiResult)
                .where(AiResult.status.in_([AiStatus.approved, AiStatus.edited]))
            )
        store.engine.dispose()
    latencies = sorted(soak.latencies)
    figures = {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "errors": len(soak.errors),
        "inconsistencies": len(problems),
        "p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1) if latencies else None,
        "outcomes": dict(sorted(soak.outcomes.items())),
        "approved_drafts": approved,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only",
    }
    for line in soak.errors[:10] + problems[:10]:
        print("  !", line)
    print(
        f"{figures['requests']} requests in {figures['seconds']} s from {args.clients} clients: "
        f"{figures['errors']} errors, "
        f"{figures['inconsistencies']} inconsistencies, p99 {figures['p99_ms']} ms; outcomes {figures['outcomes']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
