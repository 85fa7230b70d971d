"""What the insights need in the demo workspace: lifecycle fields, past deals and leads with their outcomes.

Drawn from a random generator of its own (``insights-<seed>``), after every other step, so the records the other
steps make stay exactly as they were. Outcomes follow the signals the scores read, with noise, so that the scores have
something to find and the hard cases are there: past deals won more often with a champion, few objections, short
stage times and recent activity; CSAT answers worse after angry or frustrated threads, slow first replies and
reopenings; churned accounts among the unhappy ones. Nothing here is a hand-entered KPI: the KPIs are computed.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from copilot.demo import people, sales
from copilot.store.models import (
    Account,
    AuthorKind,
    Call,
    CallTurn,
    Contact,
    Deal,
    DealStage,
    Note,
    Ticket,
    TicketStatus,
)

if TYPE_CHECKING:
    from copilot.demo.generator import DemoBuilder

SOURCES = ("referral", "partner", "inbound", "outbound", "event", "paid_ads")
SOURCE_WEIGHTS = (2, 2, 4, 3, 1, 2)
SOURCE_EFFECT = {"referral": 0.9, "partner": 0.6, "inbound": 0.2, "outbound": -0.4, "event": 0.0, "paid_ads": -0.7}
PAST_DEALS = 160
OPEN = {s.value for s in list(DealStage)[:5]}
LEADS = 120
CHURNED_DAYS_AGO = (24, 71, 118, 160, 215, 290)
SUPPORT_TEAMS = {
    "Billing": {"double_charge", "failed_payment", "pricing_question", "pricing_seats", "cancellation", "downgrade"},
    "Technical": {
        "login_2fa",
        "sso_loop",
        "api_rate_limit",
        "webhook_missing",
        "webhook_signature",
        "data_import",
        "import_mapping",
        "mobile_crash",
        "receipt_scan",
        "slow_performance",
        "integration_token",
        "integration_duplicates",
        "invoice_export",
        "invoice_logo",
    },
}
ARR_BY_PLAN = {
    "Starter": (1200, 4800),
    "Growth": (5000, 18000),
    "Business": (18000, 60000),
    "Enterprise": (60000, 240000),
}
MOOD_CSAT = {"angry": -2.4, "frustrated": -1.3, "confused": -0.3, "calm": 0.2, "grateful": 1.0}
SENIOR_TITLES = ("CFO", "VP Finance", "Founder", "Head of Operations", "Controller")
LEAD_NOTES = (
    "Intro call with {name}: wants automated reminders and the Stripe sync.",
    "{name} downloaded the pricing guide and asked for a demo.",
    "Sent {name} the case study for {industry}; they replied with questions about the API.",
    "{name} attended the month-end webinar and booked a follow-up.",
)
CHAMPION_NOTE = "Champion is {name} ({title}); very engaged, pushes internally for the rollout."
LOST_NOTE = "Lost: they went quiet after the proposal and chose to stay with their current tool."
WON_NOTE = "Signed. {name} ({title}) got the budget approved; onboarding kickoff booked."


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class InsightsBuilder:
    """Adds the insight fields and records to a DemoBuilder's rows (call after every other step)."""

    def __init__(self, builder: DemoBuilder, seed: int) -> None:
        self.b = builder
        self.rng = random.Random(f"insights-{seed}")
        self.now = builder.now

    def build(self) -> None:
        self.accounts()
        self.existing_deals()
        self.past_deals()
        self.tickets()
        self.leads()

    # -- accounts --------------------------------------------------------------------------------
    def accounts(self) -> None:
        today = self.now.date()
        for account in self.b.accounts:
            since = today - timedelta(days=self.rng.randint(200, 1500))
            account.customer_since = since
            low, high = ARR_BY_PLAN[account.plan or "Growth"]
            account.arr = Decimal(self.rng.randrange(low, high, 100))
            account.renewal_date = _next_anniversary(since, today)
        unhappy = [a for a in self.b.accounts[1:] if a.external_id in self.b.grumpy]
        others = [a for a in self.b.accounts[1:] if a.external_id not in self.b.grumpy]
        churned = unhappy[:4] + self.rng.sample(others, len(CHURNED_DAYS_AGO) - len(unhappy[:4]))
        for account, days in zip(churned, CHURNED_DAYS_AGO, strict=True):
            account.churned_at = today - timedelta(days=days)
            account.renewal_date = None

    # -- deals -----------------------------------------------------------------------------------
    def existing_deals(self) -> None:
        for deal, _account in self.b.deals:
            if deal.stage.value in OPEN and deal is not self.b.stalled_deal:
                self.recent_stage_change(deal)
            elif deal.stage.value not in OPEN:
                self.closing_pace(deal)
            deal.deal_type = _deal_type(deal.name)
            deal.team = "Account management" if deal.deal_type != "new_business" else "New business"
            won = deal.stage is DealStage.closed_won
            weights = [
                w * (1.6 if won and SOURCE_EFFECT[s] > 0 else 1.0) for s, w in zip(SOURCES, SOURCE_WEIGHTS, strict=True)
            ]
            deal.lead_source = self.rng.choices(SOURCES, weights=weights)[0]

    def recent_stage_change(self, deal: Deal) -> None:
        """A live pipeline: an open deal moved into its stage in the last few weeks (the stalled one excepted)."""
        last = datetime.fromisoformat(deal.stage_history[-1]["at"])
        shift = self.now - timedelta(days=self.rng.uniform(2, 45)) - last
        deal.stage_history = [
            {"stage": step["stage"], "at": (datetime.fromisoformat(step["at"]) + shift).isoformat()}
            for step in deal.stage_history
        ]

    def closing_pace(self, deal: Deal) -> None:
        """Won deals spent a short time in their last open stage, lost ones often a long one."""
        steps = deal.stage_history
        if len(steps) < 2:
            return
        closed = datetime.fromisoformat(steps[-1]["at"])
        days = self.rng.randint(4, 35) if deal.stage is DealStage.closed_won else self.rng.randint(20, 120)
        entered = closed - timedelta(days=days)
        if len(steps) < 3 or datetime.fromisoformat(steps[-3]["at"]) < entered:
            steps[-2] = {"stage": steps[-2]["stage"], "at": entered.isoformat()}
        deal.stage_history = list(steps)

    def past_deals(self) -> None:
        """Closed deals of the last 14 months whose outcome follows their signals (the scores' training history)."""
        for _ in range(PAST_DEALS):
            account = self.rng.choice(self.b.accounts)
            deal_type = self.rng.choices(["new_business", "renewal", "expansion"], weights=[5, 3, 2])[0]
            signals = {
                "champion": self.rng.random() < 0.45,
                "objections": self.rng.choices([0, 1, 2, 3], weights=[4, 4, 2, 1])[0],
                "source": self.rng.choices(SOURCES, weights=SOURCE_WEIGHTS)[0],
                "last_stage": self.rng.choices(range(5), weights=[2, 3, 3, 3, 3])[0],
                "stage_days": self.rng.choice([self.rng.randint(5, 30), self.rng.randint(20, 120)]),
                "quiet_days": self.rng.choice([self.rng.randint(1, 14), self.rng.randint(10, 90)]),
            }
            self.make_past_deal(account, deal_type, signals)

    def make_past_deal(self, account: Account, deal_type: str, signals: dict[str, Any]) -> None:
        signals["call"] = bool(signals["objections"]) or self.rng.random() < 0.5
        logit = (
            0.3
            + 1.3 * signals["champion"]
            + 0.8 * signals["call"]
            - 0.55 * signals["objections"]
            + SOURCE_EFFECT[signals["source"]]
            + 0.35 * signals["last_stage"]
            - 1.2 * math.log1p(signals["stage_days"] / 30)
            - 2.0 * math.log1p(signals["quiet_days"] / 30)
        )
        won = self.rng.random() < sigmoid(logit)
        closed = self.now - timedelta(days=self.rng.uniform(3, 420))
        stages = list(DealStage)[: signals["last_stage"] + 1]
        history, when = [], closed - timedelta(days=signals["stage_days"])
        steps = [when]
        for _ in stages[:-1]:
            when -= timedelta(days=self.rng.randint(6, 30))
            steps.append(when)
        for stage, at in zip(stages, reversed(steps), strict=True):
            history.append({"stage": stage.value, "at": at.isoformat()})
        final = DealStage.closed_won if won else DealStage.closed_lost
        history.append({"stage": final.value, "at": closed.isoformat()})
        low, high = ARR_BY_PLAN[account.plan or "Growth"]
        suffix = {"new_business": "New business", "renewal": "Renewal", "expansion": "Expansion"}[deal_type]
        deal = self.b.add(
            Deal(
                external_id=self.b.next_id("D"),
                name=f"{account.name} — {suffix} ({closed:%b %Y})",
                stage=final,
                amount=Decimal(self.rng.randrange(low, high, 100)),
                currency="USD",
                close_date=closed.date(),
                owner=self.rng.choice(people.SALES_REPS),
                stage_history=history,
                lead_source=signals["source"],
                deal_type=deal_type,
                team="New business" if deal_type == "new_business" else "Account management",
            )
        )
        deal.account = account
        contact = self.rng.choice(self.b.people[account.external_id])
        last_touch = closed - timedelta(days=signals["quiet_days"])
        if signals["champion"]:
            self.note(account, deal, CHAMPION_NOTE, contact, last_touch - timedelta(days=self.rng.randint(3, 40)))
        if signals["call"]:
            self.short_call(deal, account, contact, last_touch, signals["objections"])
        else:
            self.note(account, deal, WON_NOTE if won else LOST_NOTE, contact, last_touch)

    def short_call(self, deal: Deal, account: Account, contact: Any, when: datetime, objections: int) -> None:
        rep = deal.owner or people.SALES_REPS[0]
        speakers = {"rep": rep, "se": self.rng.choice(people.SOLUTION_ENGINEERS), "customer": contact.name}
        call = self.b.add(
            Call(
                external_id=self.b.next_id("CALL"),
                title=f"{self.rng.choice(sales.CALL_KINDS)} — {account.name}",
                started_at=when.replace(second=0, microsecond=0),
                participants=[
                    {"name": rep, "role": "rep", "company": people.PRODUCT},
                    {"name": contact.name, "role": "customer", "company": account.name},
                ],
            )
        )
        call.deal, call.account = deal, account
        script = list(sales.OPENING) + self.rng.sample(sales.PAIN_POINTS, 2)
        for index in self.rng.sample(range(len(sales.OBJECTIONS)), objections):
            script += [sales.OBJECTIONS[index], sales.OBJECTION_ANSWERS[index]]
        script += self.rng.sample(sales.NEXT_STEPS, 1) + sales.CLOSING
        slots = {"customer": contact.first, "company": account.name, "amount": f"${int(deal.amount or 0):,}"}
        offset = 0.0
        for position, (role, text) in enumerate(script):
            body = self.b.fill(text, slots | {"due": (when + timedelta(days=7)).strftime("%A %B %-d")})
            self.b.add(
                CallTurn(call=call, position=position, speaker=speakers[role], start_s=round(offset, 1), text=body)
            )
            offset += len(body.split()) / 2.6 + 1.0

    def note(self, account: Account | None, deal: Deal | None, template: str, person: Any, when: datetime) -> Note:
        note = self.b.add(
            Note(
                external_id=self.b.next_id("NOTE"),
                author=deal.owner if deal else self.rng.choice(people.SALES_REPS),
                noted_at=when,
                body=self.b.fill(
                    template,
                    {
                        "name": person.name,
                        "title": person.title or "",
                        "company": account.name if account else "",
                        "industry": (account.industry if account else None) or "finance teams",
                    },
                ),
            )
        )
        note.account, note.deal = account, deal
        return note

    # -- tickets ---------------------------------------------------------------------------------
    def tickets(self) -> None:
        for ticket, family, mood in self.b.ticket_meta:
            ticket.team = next((team for team, names in SUPPORT_TEAMS.items() if family in names), "Success")
            if ticket.status not in (TicketStatus.solved, TicketStatus.closed):
                continue
            reopen_p = 0.18 if mood in ("angry", "frustrated") else 0.06
            ticket.reopen_count = (1 if self.rng.random() < reopen_p else 0) + (self.rng.random() < 0.02)
            if self.rng.random() < 0.45:
                ticket.csat_score = self.csat_answer(ticket, mood)

    def csat_answer(self, ticket: Ticket, mood: str) -> int:
        messages = sorted(ticket.messages, key=lambda m: m.sent_at)
        agent = next((m for m in messages if m.author_kind is AuthorKind.agent), None)
        first_reply_h = (agent.sent_at - ticket.opened_at).total_seconds() / 3600 if agent else 48.0
        thanked = messages[-1].author_kind is AuthorKind.customer
        logit = (
            1.6
            + MOOD_CSAT.get(mood, 0.0)
            + 0.9 * thanked
            - 1.1 * ticket.reopen_count
            - 0.35 * math.log1p(first_reply_h)
        )
        if self.rng.random() < sigmoid(logit):
            return self.rng.choice([4, 5, 5])
        return self.rng.choice([1, 2, 2, 3])

    # -- leads -----------------------------------------------------------------------------------
    def leads(self) -> None:
        """People who came in as leads (no account yet); the older ones converted or were disqualified."""
        for _ in range(LEADS):
            first, last = self.rng.choice(people.FIRST_NAMES), self.rng.choice(people.LAST_NAMES)
            company = f"{self.rng.choice(people.COMPANY_FIRST)} {self.rng.choice(people.COMPANY_SECOND)}"
            domain = "".join(ch for ch in company.lower() if ch.isalpha()) + ".example"
            title = self.rng.choice(people.TITLES)
            source = self.rng.choices(SOURCES, weights=SOURCE_WEIGHTS)[0]
            created = self.now - timedelta(days=self.rng.uniform(1, 400))
            touches = self.rng.choices([0, 1, 2, 3], weights=[4, 4, 2, 1])[0]
            contact = self.b.add(
                Contact(
                    external_id=self.b.next_id("L"),
                    name=f"{first} {last}",
                    email=f"{first.lower()}.{last.lower()}@{domain}".encode("ascii", "ignore").decode(),
                    title=title,
                    language="en",
                    lead_source=source,
                    lead_created_at=created,
                )
            )
            contact.lead_status = self.lead_outcome(created, source, title, touches)
            for n in range(touches):
                when = created + timedelta(days=3 + 9 * n + self.rng.randint(0, 6))
                if when < self.now:
                    person = _Person(contact.name, title)
                    note = self.note(None, None, self.rng.choice(LEAD_NOTES), person, when)
                    note.contact = contact

    def lead_outcome(self, created: datetime, source: str, title: str, touches: int) -> str:
        age = (self.now - created).days
        logit = -0.9 + SOURCE_EFFECT[source] + 0.9 * (title in SENIOR_TITLES) + 0.7 * touches
        if age < 45:
            return "qualified" if self.rng.random() < sigmoid(logit) else "open"
        return "converted" if self.rng.random() < sigmoid(logit) else "disqualified"


class _Person:
    def __init__(self, name: str, title: str) -> None:
        self.name, self.title = name, title


def _deal_type(name: str) -> str:
    lowered = name.lower()
    if "renewal" in lowered:
        return "renewal"
    if any(word in lowered for word in ("expansion", "upgrade", "multi-entity")):
        return "expansion"
    return "new_business"


def _next_anniversary(since: date, today: date) -> date:
    for year in range(today.year, today.year + 2):
        try:
            candidate = since.replace(year=year)
        except ValueError:  # 29 February
            candidate = since.replace(year=year, day=28)
        if candidate > today:
            return candidate
    return today + timedelta(days=365)
