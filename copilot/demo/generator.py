"""Seed a realistic, deterministic demo workspace.

Everything is drawn from one ``random.Random(seed)``, and dates are placed relative to an
``anchor`` day (default: today), so the same seed and anchor give identical content.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from copilot.demo import kb, people, reviews, sales, tickets, topics
from copilot.demo.insights import InsightsBuilder
from copilot.errors import InvalidInput
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import (
    Account,
    AuthorKind,
    Call,
    CallTurn,
    Channel,
    Contact,
    Deal,
    DealStage,
    KbArticle,
    Message,
    Note,
    NpsResponse,
    Priority,
    Ticket,
    TicketStatus,
    Workspace,
)

ACCOUNTS = 45
TICKETS = 400
CALLS = 30
NPS_RESPONSES = 1500
OPEN_STAGES = [
    DealStage.prospecting,
    DealStage.qualification,
    DealStage.discovery,
    DealStage.proposal,
    DealStage.negotiation,
]
MIN_DEALS = 60
ACME_DETRACTORS = 3
PROPER_NOUNS = {*people.INTEGRATIONS, *people.FIRST_NAMES, "Android", "Ledgerly"}
STEP_LABELS = (
    "accounts and contacts",
    "knowledge base",
    "tickets",
    "deals",
    "calls",
    "NPS responses",
    "notes",
    "insight fields, past deals and leads",
    "ticket topics and the invoice-email surge",
    "writing rows",
)
DATE_FORMATS = {"es": "%d/%m/%Y", "fr": "%d/%m/%Y", "de": "%d.%m.%Y"}
MOOD_WEIGHTS = {"calm": 5, "confused": 2, "frustrated": 3, "angry": 1, "grateful": 1}


RowT = TypeVar("RowT")


class DemoCounts(BaseModel):
    workspace: str
    accounts: int = 0
    contacts: int = 0
    deals: int = 0
    tickets: int = 0
    messages: int = 0
    calls: int = 0
    call_turns: int = 0
    nps_responses: int = 0
    kb_articles: int = 0
    notes: int = 0
    content_hash: str = ""


@dataclass
class Person:
    name: str
    first: str
    email: str
    title: str
    language: str
    contact: Contact


class DemoBuilder:
    """Builds every demo record in memory from one seeded random generator."""

    def __init__(self, workspace_id: int, seed: int, anchor: date) -> None:
        self.rng = random.Random(seed)
        self.workspace_id = workspace_id
        self.now = datetime.combine(anchor, time(12, 0), tzinfo=UTC)
        self.accounts: list[Account] = []
        self.people: dict[str, list[Person]] = {}
        self.rows: list[object] = []
        self.sequence = 1000
        self.deals: list[tuple[Deal, Account]] = []
        self.stalled_deal: Deal | None = None
        self.seed = seed
        self.ticket_meta: list[tuple[Ticket, str, str]] = []  # (ticket, scenario family, mood), for the insights
        self.grumpy: set[str] = set()  # accounts whose NPS leans negative
        self.ticket_families: list[tuple[Ticket, str, str]] = []  # (ticket, family, agent): topics of resolved ones

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        """The generation steps in order; each may rely on the ones before it."""
        builds = [
            self.build_accounts,
            self.build_kb,
            self.build_tickets,
            self.build_deals,
            self.build_calls,
            self.build_nps,
            self.build_notes,
            InsightsBuilder(self, self.seed).build,
            self.build_topics,
        ]
        return list(zip(STEP_LABELS[:-1], builds, strict=True))

    # -- helpers -------------------------------------------------------------------------------
    def next_id(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}-{self.sequence}"

    def add(self, row: RowT) -> RowT:
        row.workspace_id = self.workspace_id
        self.rows.append(row)
        return row

    def days_ago(self, low: float, high: float) -> datetime:
        return self.now - timedelta(days=self.rng.uniform(low, high), minutes=self.rng.randint(0, 600))

    def money(self, low: int, high: int) -> str:
        return f"${self.rng.randint(low, high)}.{self.rng.choice(['00', '50', '99', '00'])}"

    def fill(self, template: str, slots: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: slots.get(m.group(1), m.group(0)), template)

    # -- records -------------------------------------------------------------------------------
    def build_accounts(self) -> None:
        names = [f"{a} {b}" for a in people.COMPANY_FIRST for b in people.COMPANY_SECOND]
        self.rng.shuffle(names)
        specs = [("ACME", "Acme Corporation", "Manufacturing", "Enterprise", ("United States", "en"))]
        for index, name in enumerate(names[: ACCOUNTS - 1]):
            plan = self.rng.choices(people.PLANS, weights=[3, 4, 3, 2])[0]
            specs.append(
                (
                    f"ACC-{index + 1:03d}",
                    name,
                    people.INDUSTRIES[name.split(" ", 1)[1]],
                    plan,
                    self.rng.choice(people.COUNTRIES),
                )
            )
        for external_id, name, industry, plan, (country, language) in specs:
            domain = re.sub(r"[^a-z]", "", name.lower().replace("corporation", "corp")) + ".example"
            account = self.add(
                Account(
                    external_id=external_id,
                    name=name,
                    domain=domain,
                    industry=industry,
                    segment=people.SEGMENT_BY_PLAN[plan],
                    country=country,
                    plan=plan,
                )
            )
            self.accounts.append(account)
            self.people[external_id] = [self.make_contact(account, language) for _ in range(self.rng.randint(3, 5))]

    def make_contact(self, account: Account, language: str) -> Person:
        first, last = self.rng.choice(people.FIRST_NAMES), self.rng.choice(people.LAST_NAMES)
        local = re.sub(
            r"[^a-z.]",
            "",
            f"{first}.{last}".lower().replace("é", "e").replace("á", "a").replace("ü", "u").replace("í", "i"),
        )
        speaks = language if self.rng.random() < 0.7 else "en"
        title = self.rng.choice(people.TITLES)
        contact = self.add(
            Contact(
                external_id=self.next_id("C"),
                name=f"{first} {last}",
                email=f"{local}@{account.domain}",
                phone=f"+1 555 {self.rng.randint(100, 999)} {self.rng.randint(1000, 9999)}",
                title=title,
                language=speaks,
            )
        )
        contact.account = account  # resolved to account_id on flush
        return Person(f"{first} {last}", first, contact.email, title, speaks, contact)

    def build_deals(self) -> None:
        deals = self.deals
        for account in self.accounts:
            for _ in range(self.rng.choice([1, 1, 2, 2])):
                deals.append((self.make_deal(account), account))
        while len(deals) < MIN_DEALS - 1:
            account = self.rng.choice(self.accounts)
            deals.append((self.make_deal(account), account))
        self.stalled_deal = self.make_deal(
            self.accounts[0], name="Acme Corporation — Enterprise expansion", stage=DealStage.negotiation, stalled=True
        )
        deals.append((self.stalled_deal, self.accounts[0]))
        for deal, account in deals:  # the account owner (NPS follow-ups go to them): the rep of its first deal
            account.owner = account.owner or deal.owner

    def make_deal(
        self, account: Account, name: str | None = None, stage: DealStage | None = None, stalled: bool = False
    ) -> Deal:
        order = list(DealStage)[:5]
        stage = stage or self.rng.choices(list(DealStage), weights=[2, 3, 3, 3, 2, 3, 2])[0]
        reached = order[: order.index(stage) + 1] if stage in order else order[: self.rng.randint(2, 5)] + [stage]
        start = self.days_ago(120, 260)
        history, when = [], start
        for step in reached:
            history.append({"stage": step.value, "at": when.isoformat()})
            when += timedelta(days=self.rng.randint(8, 35))
        if stalled:
            history[-1]["at"] = (self.now - timedelta(days=95)).isoformat()
        amounts = {
            "Starter": (1200, 4800),
            "Growth": (5000, 18000),
            "Business": (18000, 60000),
            "Enterprise": (60000, 240000),
        }
        low, high = amounts[account.plan or "Growth"]
        closed = stage in (DealStage.closed_won, DealStage.closed_lost)
        last_change = datetime.fromisoformat(history[-1]["at"])
        next_steps = [
            "Send revised proposal",
            "CFO review meeting",
            "Security questionnaire follow-up",
            "Pilot kickoff",
            "Contract redlines with legal",
            "Technical validation in sandbox",
        ]
        deal = self.add(
            Deal(
                external_id=self.next_id("D"),
                name=name
                or f"{account.name} — {self.rng.choice(['New business', 'Renewal', 'Expansion', 'Upgrade to Business', 'Multi-entity rollout'])}",
                stage=stage,
                amount=Decimal(self.rng.randrange(low, high, 100)),
                currency="USD",
                close_date=(last_change if closed else self.now + timedelta(days=self.rng.randint(10, 120))).date(),
                owner=self.rng.choice(people.SALES_REPS),
                stage_history=history,
                next_step=None if stalled or closed or self.rng.random() < 0.15 else self.rng.choice(next_steps),
            )
        )
        deal.account = account
        return deal

    def build_tickets(self) -> None:
        families = {family.name: family for family in tickets.FAMILIES}
        acme = self.people["ACME"]
        self.make_ticket(
            acme[0],
            families["double_charge"],
            "frustrated",
            Channel.email,
            status=TicketStatus.open,
            priority=Priority.high,
            subject="Refund for double charge on {invoice}",
            invoice="INV-2026-0318",
        )
        self.make_ticket(
            acme[1], families["double_charge"], "calm", Channel.email, status=TicketStatus.open, injection=True
        )
        self.make_ticket(
            acme[2 % len(acme)],
            families["slow_performance"],
            "angry",
            Channel.chat,
            status=TicketStatus.open,
            priority=Priority.urgent,
        )
        for _ in range(TICKETS - 3):
            account = self.rng.choice(self.accounts)
            person = self.rng.choice(self.people[account.external_id])
            own_language = tickets.LOCALISED.get(person.language)
            if own_language and self.rng.random() < 0.5:
                family = families[self.rng.choice(list(own_language))]
            else:
                family = self.rng.choice(tickets.FAMILIES)
            moods = list(family.openings)
            mood = self.rng.choices(moods, weights=[MOOD_WEIGHTS.get(m, 1) for m in moods])[0]
            self.make_ticket(person, family, mood, self.rng.choices(list(Channel), weights=[6, 4, 1, 2, 1])[0])

    def ticket_slots(self, person: Person, opened: datetime) -> dict[str, str]:
        date_format = DATE_FORMATS.get(person.language, "%B %-d")
        return {
            "first": person.first,
            "invoice": f"INV-{opened.year}-{self.rng.randint(1, 999):04d}",
            "amount": self.money(29, 900),
            "date": (opened - timedelta(days=self.rng.randint(1, 12))).strftime(date_format),
            "order": f"#{self.rng.randint(10000, 99999)}",
            "integration": self.rng.choice(people.INTEGRATIONS),
            "device": self.rng.choice(people.DEVICES),
            "plan": self.rng.choice(people.PLANS),
            "count": str(self.rng.randint(40, 4000)),
            "company": person.contact.account.name,
        }

    def make_ticket(
        self,
        person: Person,
        family: tickets.Family,
        mood: str,
        channel: Channel,
        *,
        status: TicketStatus | None = None,
        priority: Priority | None = None,
        subject: str | None = None,
        injection: bool = False,
        invoice: str | None = None,
        opened_within: tuple[float, float] = (0.2, 330),
    ) -> None:
        opened = self.days_ago(*opened_within)
        slots = self.ticket_slots(person, opened)
        agent = self.rng.choice(topics.agents_for(family.name))  # the family's team, mostly
        slots |= {"agent": agent, "agent_first": agent.split()[0], "name": person.name, "title": person.title}
        if invoice:
            slots["invoice"] = invoice
        localised = tickets.LOCALISED.get(person.language, {}).get(family.name)
        ticket = self.add(
            Ticket(
                external_id=self.next_id("T"),
                subject=self.fill(subject or self.rng.choice(family.subjects), slots),
                channel=channel,
                assignee=agent,
                opened_at=opened,
                priority=priority
                or Priority(
                    self.rng.choice([family.priority, family.priority, "normal", "high" if mood == "angry" else "low"])
                ),
            )
        )
        ticket.account, ticket.contact = person.contact.account, person.contact
        self.ticket_families.append((ticket, family.name, agent))
        self.ticket_meta.append((ticket, family.name, mood))
        thread, outcome = self.thread(family, mood, channel, person, slots, localised)
        if injection:
            thread = thread[:2] + [(AuthorKind.customer, person.name, self.fill(tickets.INJECTION_MESSAGE, slots))]
            outcome = "customer_replied"
        when = opened
        for kind, author, body in thread:
            self.add(
                Message(
                    external_id=self.next_id("M"),
                    ticket=ticket,
                    author_kind=kind,
                    author=author,
                    body=body,
                    sent_at=when,
                )
            )
            when += timedelta(
                minutes=self.rng.randint(3, 60) if channel is Channel.chat else self.rng.randint(40, 2000)
            )
        by_outcome = {
            "resolved": self.rng.choice([TicketStatus.solved, TicketStatus.closed]),
            "waiting_on_customer": TicketStatus.pending,
            "customer_replied": TicketStatus.open,
        }
        ticket.status = status or by_outcome[outcome]
        if ticket.status in (TicketStatus.solved, TicketStatus.closed):
            ticket.closed_at = when

    def thread(
        self,
        family: tickets.Family,
        mood: str,
        channel: Channel,
        person: Person,
        slots: dict[str, str],
        localised: tuple[str, str] | None,
    ) -> tuple[list[tuple[AuthorKind, str, str]], str]:
        """The messages of a thread and how it stands: resolved, waiting_on_customer or customer_replied."""
        email = channel is Channel.email

        def customer(text: str) -> tuple[AuthorKind, str, str]:
            body = self.fill(text, slots)
            if email and not localised:
                greeting = (
                    ""
                    if body.startswith(("Hi", "Hello", "Hey"))
                    else self.fill(self.rng.choice(tickets.EMAIL_GREETINGS), slots)
                )
                body = greeting + body + self.fill(self.rng.choice(tickets.EMAIL_SIGNOFFS), slots)
            return AuthorKind.customer, person.name, body

        def agent(text: str) -> tuple[AuthorKind, str, str]:
            body = self.fill(text, slots) + (self.fill(self.rng.choice(tickets.AGENT_SIGNOFFS), slots) if email else "")
            return AuthorKind.agent, slots["agent"], body

        thread = [customer(localised[0] if localised else self.rng.choice(family.openings[mood]))]
        if self.rng.random() < 0.35:
            thread.append((AuthorKind.internal_note, slots["agent"], self.fill(self.rng.choice(family.notes), slots)))
        thread.append(agent(self.rng.choice(family.agent_replies)))
        stage = self.rng.random()
        if stage < 0.25:
            return thread, "waiting_on_customer"
        followups = [localised[1]] if localised else family.followups.get(mood) or next(iter(family.followups.values()))
        thread.append(customer(self.rng.choice(followups)))
        if stage < 0.4:
            return thread, "customer_replied"
        if self.rng.random() < 0.5:
            thread.append((AuthorKind.internal_note, slots["agent"], self.fill(self.rng.choice(family.notes), slots)))
        thread.append(agent(self.rng.choice(family.resolutions)))
        if self.rng.random() < 0.5:
            thanks = tickets.LOCALISED_THANKS[person.language] if localised else tickets.THANKS
            thread.append(customer(self.rng.choice(thanks)))
        return thread, "resolved"

    def build_calls(self) -> None:
        """Calls go to open deals first (never the stalled one: it has had no contact), then to the others."""
        candidates = [(deal, account) for deal, account in self.deals if deal is not self.stalled_deal]
        self.rng.shuffle(candidates)
        candidates.sort(key=lambda pair: pair[0].stage not in OPEN_STAGES[1:])
        for deal, account in candidates[:CALLS]:
            self.make_call(deal, account)

    def business_day_after(self, start: datetime, low: int, high: int) -> str:
        day = start + timedelta(days=self.rng.randint(low, high))
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return day.strftime("%A %B %-d")

    def call_script(self) -> list[tuple[str, str]]:
        """Speaker roles and lines: opening, pains and pitch, demo, questions, objections, decision, action items, next step."""
        script = list(sales.OPENING)
        pains = self.rng.sample(sales.PAIN_POINTS, self.rng.randint(2, len(sales.PAIN_POINTS)))
        pitches = self.rng.sample(sales.PITCH, self.rng.randint(2, len(sales.PITCH)))
        chatter = self.rng.sample(sales.SMALL_TALK, self.rng.randint(1, 3))
        for index in range(max(len(pains), len(pitches))):
            script += pains[index : index + 1] + pitches[index : index + 1]
            script += chatter[index] if index < len(chatter) else []
        script += sales.WALKTHROUGH[: self.rng.choice([0, 3, 6, 9, 12, len(sales.WALKTHROUGH)])]
        for question, answer in self.rng.sample(sales.QUESTIONS, self.rng.randint(2, len(sales.QUESTIONS))):
            script += [question, answer]
        for index in self.rng.sample(range(len(sales.OBJECTIONS)), self.rng.randint(1, 3)):
            script += [sales.OBJECTIONS[index], sales.OBJECTION_ANSWERS[index]]
        script += self.rng.sample(sales.DECISIONS, 1) + self.rng.sample(sales.ACTION_ITEMS, self.rng.randint(2, 3))
        return script + self.rng.sample(sales.NEXT_STEPS, 1) + sales.CLOSING

    def make_call(self, deal: Deal, account: Account) -> None:
        customer = self.rng.choice(self.people[account.external_id])
        speakers = {
            "rep": deal.owner or people.SALES_REPS[0],
            "se": self.rng.choice(people.SOLUTION_ENGINEERS),
            "customer": customer.name,
        }
        started = self.days_ago(1, 90).replace(
            hour=self.rng.randint(13, 20), minute=self.rng.choice([0, 15, 30, 45]), second=0, microsecond=0
        )
        slots = {
            "customer": customer.first,
            "company": account.name,
            "amount": f"${int(deal.amount or 0):,}",
            "month": (started + timedelta(days=30)).strftime("%B"),
        }
        call = self.add(
            Call(
                external_id=self.next_id("CALL"),
                title=f"{self.rng.choice(sales.CALL_KINDS)} — {account.name}",
                started_at=started,
                participants=[
                    {"name": speakers["rep"], "role": "rep", "company": people.PRODUCT},
                    {"name": speakers["se"], "role": "solutions engineer", "company": people.PRODUCT},
                    {"name": customer.name, "role": "customer", "company": account.name},
                ],
            )
        )
        call.deal, call.account = deal, account
        offset = 0.0
        for position, (role, text) in enumerate(self.call_script()):
            body = self.fill(text, slots | {"due": self.business_day_after(started, 2, 12)})
            self.add(
                CallTurn(call=call, position=position, speaker=speakers[role], start_s=round(offset, 1), text=body)
            )
            offset += len(body.split()) / 2.6 + self.rng.uniform(0.5, 3.0)

    def build_nps(self) -> None:
        grumpy = {account.external_id for account in self.rng.sample(self.accounts[1:], 8)} | {"ACME"}
        self.grumpy = grumpy
        themes = list(sales.NPS_THEMES)
        for index in range(NPS_RESPONSES):
            account = self.accounts[0] if index < ACME_DETRACTORS else self.rng.choice(self.accounts)
            person = self.rng.choice(self.people[account.external_id])
            weights = (
                [3, 2, 2, 3, 3, 4, 5, 6, 5, 3, 2]
                if account.external_id in grumpy
                else [1, 1, 1, 1, 2, 2, 3, 6, 9, 10, 9]
            )
            score = (
                self.rng.randint(1, 4) if index < ACME_DETRACTORS else self.rng.choices(range(11), weights=weights)[0]
            )
            self.add(
                NpsResponse(
                    external_id=self.next_id("NPS"),
                    score=score,
                    comment=self.nps_comment(score, themes),
                    submitted_at=self.days_ago(0, 365),
                    campaign=self.rng.choice(sales.NPS_CAMPAIGNS),
                    survey="Relationship NPS",
                    segment=account.segment,
                    contact=person.contact,
                    account=account,
                )
            )

    def nps_comment(self, score: int, themes: list[str]) -> str | None:
        if self.rng.random() < 0.08:
            return None
        polarity = "negative" if score <= 6 else "positive" if score >= 9 else self.rng.choice(["positive", "negative"])
        first = self.rng.choice(themes)
        text = self.rng.choice(sales.NPS_THEMES[first][polarity])
        if self.rng.random() < 0.35:
            other = self.rng.choice([t for t in themes if t != first])
            same = self.rng.random() < 0.6
            second_polarity = polarity if same else ("positive" if polarity == "negative" else "negative")
            connector = self.rng.choice(sales.NPS_SAME_CONNECTORS if same else sales.NPS_CONTRAST_CONNECTORS)
            second = self.rng.choice(sales.NPS_THEMES[other][second_polarity])
            keeps_case = connector == " " or second.split()[0] in PROPER_NOUNS
            text += connector + (second if keeps_case else second[0].lower() + second[1:])
        return text.replace("  ", " ").strip()

    def build_topics(self) -> None:
        """The invoice-email surge (recent tickets on a topic the help center lacks), then the topic and queue the
        agents set on every resolved ticket."""
        from copilot.store.models import TicketRouting
        from copilot.tasks.triage_labels import DEFAULT_LABELS

        for _ in range(topics.SURGE_TICKETS):
            account = self.rng.choice(self.accounts)
            person = self.rng.choice(self.people[account.external_id])
            mood = self.rng.choices(list(topics.EMAIL_DELIVERY.openings), weights=[5, 2, 3, 1])[0]
            channel = self.rng.choice([Channel.email, Channel.email, Channel.chat, Channel.web])
            self.make_ticket(person, topics.EMAIL_DELIVERY, mood, channel, opened_within=topics.SURGE_DAYS)
        queues = {label.name: label.queue for label in DEFAULT_LABELS}
        for ticket, family, agent in self.ticket_families:
            if ticket.status in (TicketStatus.solved, TicketStatus.closed):
                topic = topics.FAMILY_TOPICS[family]
                routing = self.add(TicketRouting(topic=topic, queue=queues[topic], source="agent", set_by=agent))
                routing.ticket = ticket

    def build_kb(self) -> None:
        for index, (title, overview, steps, tips, tags) in enumerate(kb.ARTICLES, start=1):
            body = f"## Overview\n{overview}\n\n## Steps\n" + "\n".join(
                f"{n}. {step}" for n, step in enumerate(steps, start=1)
            )
            body += "\n\n## Troubleshooting\n" + "\n".join(f"- {tip}" for tip in tips)
            self.add(KbArticle(external_id=f"KB-{index:03d}", title=title, body=body, tags=tags))

    def build_notes(self) -> None:
        for deal, account in self.deals:
            if deal is self.stalled_deal:
                self.make_note(account, deal, deal.owner, sales.STALLED_DEAL_NOTE, self.now - timedelta(days=96))
            elif self.rng.random() < 0.6:
                self.make_note(account, deal, deal.owner, self.rng.choice(sales.DEAL_NOTES), self.days_ago(1, 120))
        for account in self.rng.sample(self.accounts, 15):
            self.make_note(
                account,
                None,
                self.rng.choice(people.SUPPORT_AGENTS),
                self.rng.choice(sales.ACCOUNT_NOTES),
                self.days_ago(1, 300),
            )

    def make_note(self, account: Account, deal: Deal | None, author: str | None, template: str, when: datetime) -> None:
        person = self.rng.choice(self.people[account.external_id])
        note = self.add(
            Note(
                external_id=self.next_id("NOTE"),
                author=author,
                noted_at=when,
                body=self.fill(template, {"name": person.name, "title": person.title, "company": account.name}),
            )
        )
        note.account, note.deal = account, deal


def seed_demo(
    store: Store,
    workspace: str = "demo",
    seed: int = 7,
    reset: bool = False,
    *,
    anchor: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoCounts:
    """Create the demo workspace with its records (in one transaction) and return what was written.

    ``progress`` is called with the name of each generation step as it starts (one call per entry of STEP_LABELS).
    """
    anchor = anchor or datetime.now(UTC).date()
    with store.session() as session:
        existing = session.scalar(select(Workspace).where(Workspace.slug == workspace))
        if existing is not None and reset:
            session.execute(delete(Workspace).where(Workspace.id == existing.id))
            session.flush()
        elif existing is not None and has_records(session, existing):
            raise InvalidInput(
                f"workspace '{workspace}' already has records: reset it (--reset) or leave it (--if-missing)"
            )
        ws = get_or_create_workspace(session, workspace, "Ledgerly demo" if workspace == "demo" else workspace)
        builder = DemoBuilder(ws.id, seed, anchor)
        for label, step in builder.steps():
            if progress:
                progress(label)
            step()
        if progress:
            progress(STEP_LABELS[-1])
        session.add_all(builder.rows)
        session.flush()
        reviews.seed_review_history(session, builder)
        return count_records(session, ws)


def count_records(session: Session, workspace: Workspace) -> DemoCounts:
    counts = DemoCounts(workspace=workspace.slug)
    models = {
        "accounts": Account,
        "contacts": Contact,
        "deals": Deal,
        "tickets": Ticket,
        "messages": Message,
        "calls": Call,
        "call_turns": CallTurn,
        "nps_responses": NpsResponse,
        "kb_articles": KbArticle,
        "notes": Note,
    }
    digest = hashlib.sha256()
    for field, model in models.items():
        setattr(
            counts,
            field,
            session.scalar(select(func.count()).select_from(model).where(model.workspace_id == workspace.id)),
        )
    hashed = (
        (Account, (Account.external_id, Account.name, Account.plan, Account.churned_at, Account.arr)),
        (Contact, (Contact.external_id, Contact.name, Contact.email)),
        (Ticket, (Ticket.external_id, Ticket.subject, Ticket.status, Ticket.priority, Ticket.csat_score)),
        (Message, (Message.external_id, Message.body, Message.sent_at)),
        (CallTurn, (CallTurn.speaker, CallTurn.start_s, CallTurn.text)),
        (NpsResponse, (NpsResponse.score, NpsResponse.comment, NpsResponse.submitted_at)),
        (Deal, (Deal.name, Deal.stage, Deal.amount, Deal.stage_history)),
        (Note, (Note.body,)),
        (KbArticle, (KbArticle.body,)),
    )
    for model, columns in hashed:
        for row in session.execute(select(*columns).where(model.workspace_id == workspace.id).order_by(model.id)):
            digest.update(repr(tuple(row)).encode())
    counts.content_hash = digest.hexdigest()[:16]
    return counts


def has_records(session: Session, workspace: Workspace) -> bool:
    return any(
        session.scalar(select(model.id).where(model.workspace_id == workspace.id).limit(1)) is not None
        for model in (Account, Ticket, Deal, NpsResponse, KbArticle)
    )


def workspace_has_records(store: Store, workspace: str) -> bool:
    with store.session() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == workspace))
        return ws is not None and has_records(session, ws)
