"""KPIs per stage against values computed by hand on a small workspace, filters, the previous period, and one
check on the demo workspace against a count made straight from the records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from copilot.insights.common import Filters, Period, percentile
from copilot.insights.kpis import compute_kpis
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import (
    Account,
    AuthorKind,
    Channel,
    Contact,
    Deal,
    DealStage,
    Message,
    NpsResponse,
    Priority,
    Ticket,
    TicketStatus,
)

PERIOD = Period(since=datetime(2026, 3, 1, tzinfo=UTC), until=datetime(2026, 4, 1, tzinfo=UTC))


def at(month: int, day: int, hour: float = 0.0) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC) + timedelta(hours=hour)


def history(*steps: tuple[str, datetime]) -> list[dict[str, str]]:
    return [{"stage": stage, "at": when.isoformat()} for stage, when in steps]


def add_ticket(
    repo,
    account,
    opened,
    priority,
    *,
    reply=None,
    closed=None,
    reopens=0,
    csat=None,
    team,
    assignee,
    channel=Channel.email,
):
    ticket = repo.add(
        Ticket(
            subject="help",
            account_id=account.id,
            opened_at=opened,
            priority=priority,
            closed_at=closed,
            status=TicketStatus.solved if closed else TicketStatus.open,
            reopen_count=reopens,
            csat_score=csat,
            team=team,
            assignee=assignee,
            channel=channel,
        )
    )
    repo.session.flush()
    repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body="Hello?", sent_at=opened))
    if reply is not None:
        note = opened + (reply - opened) / 2
        repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.internal_note, body="looking", sent_at=note))
        repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.agent, body="Hi!", sent_at=reply))
        repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.agent, body="More", sent_at=reply + timedelta(1)))
    return ticket


@pytest.fixture
def kpi_store(store: Store) -> Store:
    with store.session() as session:
        get_or_create_workspace(session, "kpi")
    with store.repo("kpi") as repo:
        a = repo.add(Account(name="A", segment="smb", customer_since=date(2025, 1, 1)))
        b = repo.add(
            Account(name="B", segment="enterprise", customer_since=date(2025, 6, 1), churned_at=date(2026, 3, 15))
        )
        repo.add(Account(name="C", segment="smb", customer_since=date(2025, 3, 1), churned_at=date(2026, 2, 10)))
        repo.add(Account(name="E", segment="smb", customer_since=date(2026, 3, 10)))
        repo.add(Account(name="F", segment="mid-market", customer_since=date(2024, 1, 1)))
        repo.session.flush()
        n, h, u, low = Priority.normal, Priority.high, Priority.urgent, Priority.low
        add_ticket(
            repo, a, at(3, 2, 9), n, reply=at(3, 2, 11), closed=at(3, 3, 9), csat=5, team="Billing", assignee="Ana"
        )
        add_ticket(
            repo,
            b,
            at(3, 5, 10),
            h,
            reply=at(3, 5, 16),
            closed=at(3, 8, 10),
            reopens=1,
            csat=2,
            team="Technical",
            assignee="Ben",
            channel=Channel.chat,
        )
        add_ticket(repo, a, at(3, 10, 8), u, reply=at(3, 10, 8.5), closed=at(3, 11, 14), team="Billing", assignee="Ana")
        add_ticket(repo, b, at(3, 20, 12), n, team="Technical", assignee="Ben")
        add_ticket(repo, a, at(3, 25), low, reply=at(3, 26), team="Billing", assignee="Ana", channel=Channel.chat)
        add_ticket(
            repo, a, at(2, 10, 9), n, reply=at(2, 10, 13), closed=at(2, 12, 9), csat=4, team="Billing", assignee="Ana"
        )
        add_ticket(
            repo,
            b,
            at(2, 20, 9),
            h,
            reply=at(2, 20, 10),
            closed=at(2, 21, 9),
            csat=5,
            team="Technical",
            assignee="Ben",
            channel=Channel.chat,
        )
        add_ticket(
            repo, b, at(2, 25, 9), n, reply=at(2, 25, 10), closed=at(3, 4, 9), csat=1, team="Technical", assignee="Ben"
        )
        add_ticket(
            repo,
            a,
            datetime(2025, 12, 1, tzinfo=UTC),
            n,
            reply=datetime(2025, 12, 2, tzinfo=UTC),
            closed=datetime(2025, 12, 5, tzinfo=UTC),
            csat=1,
            team="Billing",
            assignee="Ana",
        )
        for score, when in ((10, at(3, 3)), (9, at(3, 9)), (8, at(3, 12)), (6, at(3, 20)), (3, at(3, 28))):
            repo.add(NpsResponse(score=score, submitted_at=when, account_id=a.id))
        for score, when in ((10, at(2, 5)), (7, at(2, 15))):
            repo.add(NpsResponse(score=score, submitted_at=when, account_id=b.id))
        deals = [
            (
                "D1",
                DealStage.closed_won,
                10000,
                "referral",
                date(2026, 3, 10),
                history(
                    ("prospecting", at(1, 10)),
                    ("qualification", at(1, 20)),
                    ("proposal", at(2, 15)),
                    ("negotiation", at(3, 1)),
                    ("closed_won", at(3, 10)),
                ),
            ),
            (
                "D2",
                DealStage.closed_lost,
                5000,
                "inbound",
                date(2026, 3, 15),
                history(("prospecting", at(2, 1)), ("qualification", at(2, 10)), ("closed_lost", at(3, 15))),
            ),
            (
                "D3",
                DealStage.closed_won,
                20000,
                "inbound",
                date(2026, 3, 20),
                history(("prospecting", at(2, 20)), ("discovery", at(3, 5)), ("closed_won", at(3, 20))),
            ),
            (
                "D4",
                DealStage.negotiation,
                30000,
                "referral",
                date(2026, 4, 15),
                history(("prospecting", at(3, 2)), ("negotiation", at(3, 12))),
            ),
            (
                "D5",
                DealStage.closed_won,
                8000,
                "referral",
                date(2026, 2, 20),
                history(("prospecting", at(1, 5)), ("proposal", at(2, 1)), ("closed_won", at(2, 20))),
            ),
            (
                "D6",
                DealStage.closed_lost,
                4000,
                "outbound",
                date(2026, 2, 25),
                history(("prospecting", at(2, 1)), ("closed_lost", at(2, 25))),
            ),
            (
                "D7",
                DealStage.qualification,
                12000,
                None,
                date(2026, 4, 20),
                history(("prospecting", at(2, 10)), ("qualification", at(3, 25))),
            ),
        ]
        for name, stage, amount, source, close, steps in deals:
            repo.add(
                Deal(
                    name=name,
                    stage=stage,
                    amount=Decimal(amount),
                    lead_source=source,
                    close_date=close,
                    stage_history=steps,
                    deal_type="new_business",
                    team="New business",
                    owner="Rita",
                )
            )
        for name, stage, amount, close, account in (
            ("R1", DealStage.closed_won, 6000, date(2026, 3, 5), a),
            ("R2", DealStage.closed_lost, 9000, date(2026, 3, 15), b),
            ("R3", DealStage.closed_won, 7000, date(2026, 2, 10), a),
        ):
            repo.add(
                Deal(
                    name=name,
                    stage=stage,
                    amount=Decimal(amount),
                    close_date=close,
                    deal_type="renewal",
                    account_id=account.id,
                    owner="Sam",
                )
            )
        for name, source, status, created in (
            ("L1", "referral", "converted", at(3, 5)),
            ("L2", "inbound", "disqualified", at(3, 10)),
            ("L3", "inbound", "converted", at(3, 12)),
            ("L4", "referral", "open", at(3, 20)),
            ("L5", "inbound", "disqualified", at(2, 10)),
            ("L6", "referral", "converted", at(2, 15)),
        ):
            repo.add(Contact(name=name, lead_source=source, lead_status=status, lead_created_at=created))
    return store


def report(store: Store, **filters):
    with store.repo("kpi") as repo:
        return compute_kpis(repo, PERIOD, Filters(**filters))


def values(section, *keys):
    return {
        key: (
            round(section.kpi(key).value, 4) if section.kpi(key).value is not None else None,
            round(section.kpi(key).previous, 4) if section.kpi(key).previous is not None else None,
        )
        for key in keys
    }


def test_percentile_interpolates_like_excel_percentile_inc():
    assert percentile([0.5, 2, 6, 24], 50) == 4.0 and percentile([0.5, 2, 6, 24], 90) == pytest.approx(18.6)
    assert percentile([], 50) is None and percentile([7], 90) == 7


def test_support_kpis_match_the_hand_computed_values(kpi_store):
    support = report(kpi_store).section("support")
    assert values(
        support,
        "first_response_median_h",
        "first_response_p90_h",
        "resolution_median_h",
        "resolution_p90_h",
        "reopen_rate",
        "backlog",
        "sla_breaches",
        "sla_breach_rate",
        "csat_good",
        "csat_mean",
        "nps",
    ) == {
        "first_response_median_h": (4.0, 1.0),  # [0.5, 2, 6, 24] / [1, 1, 4]; internal notes are not replies
        "first_response_p90_h": (18.6, 3.4),
        "resolution_median_h": (51.0, 36.0),  # [24, 30, 72, 168] / [24, 48]
        "resolution_p90_h": (139.2, 45.6),
        "reopen_rate": (25.0, 0.0),
        "backlog": (2.0, 1.0),  # open on 1 April: T4, T5; on 1 March: the ticket solved on 4 March
        "sla_breaches": (4.0, 0.0),  # a high ticket answered after 6 h, one never answered, two slow resolutions
        "sla_breach_rate": (40.0, 0.0),
        "csat_good": (33.3333, 100.0),
        "csat_mean": (2.6667, 4.5),
        "nps": (0.0, 50.0),
    }
    assert support.kpi("first_response_median_h").n == 4 and support.kpi("first_response_median_h").previous_n == 3


def test_sales_kpis_match_the_hand_computed_values(kpi_store):
    sales = report(kpi_store).section("sales")
    assert values(sales, "win_rate", "avg_deal_size", "cycle_median_days", "pipeline_coverage", "lead_conversion") == {
        "win_rate": (60.0, 66.6667),  # D1 D3 R1 won, D2 R2 lost / D5 R3 won, D6 lost
        "avg_deal_size": (12000.0, 7500.0),
        "cycle_median_days": (43.5, 46.0),  # 59 and 28 days / 46
        "pipeline_coverage": (1.1667, 2.3333),  # 42,000 closing in April over 36,000 won / 35,000 over 15,000
        "lead_conversion": (66.6667, 50.0),
    }
    by = {b.key: {r.group: (r.value, r.previous) for r in b.rows} for b in sales.breakdowns}
    assert by["win_rate_by_source"] == {
        "inbound": (50.0, None),
        "(none)": (50.0, 100.0),
        "referral": (100.0, 100.0),
        "outbound": (None, 0.0),
    }
    assert {k: round(v[0], 2) for k, v in by["win_rate_by_stage"].items()} == {
        "prospecting": 66.67,
        "qualification": 66.67,
        "discovery": 100.0,
        "proposal": 100.0,
        "negotiation": 100.0,
    }
    assert by["stage_conversion"] == {
        "prospecting": (100.0, 75.0),
        "qualification": (0.0, 0.0),
        "discovery": (100.0, None),
        "proposal": (None, 100.0),
        "negotiation": (50.0, None),
    }
    assert by["time_in_stage"] == {
        "prospecting": (13.0, 24.0),
        "qualification": (33.0, 26.0),
        "discovery": (15.0, None),
        "proposal": (14.0, 19.0),
        "negotiation": (9.0, None),
    }
    assert by["lead_conversion_by_source"] == {"inbound": (50.0, 0.0), "referral": (100.0, 100.0)}


def test_customer_kpis_match_the_hand_computed_values(kpi_store):
    customers = report(kpi_store).section("customers")
    assert values(customers, "churn_rate", "renewal_rate", "nps") == {
        "churn_rate": (33.3333, 25.0),  # B of A, B, F / C of A, B, C, F (E became a customer in March)
        "renewal_rate": (50.0, 100.0),
        "nps": (0.0, 50.0),
    }
    trend = customers.series[0]
    assert len(trend.points) == 12 and sum(p.n for p in trend.points) == 7
    assert trend.points[0].since == PERIOD.previous().since


def test_filters_narrow_each_stage_and_say_where_they_do_not_apply(kpi_store):
    billing = report(kpi_store, team="Billing")
    assert billing.section("support").kpi("first_response_median_h").value == 2.0  # [0.5, 2, 24]
    assert report(kpi_store, team="Ben").section("support").kpi("first_response_median_h").value == 6.0  # assignee
    assert report(kpi_store, channel="chat").section("support").kpi("first_response_median_h").value == 15.0
    enterprise = report(kpi_store, segment="enterprise")
    assert enterprise.section("support").kpi("first_response_median_h").value == 6.0
    assert enterprise.section("customers").kpi("churn_rate").value == 100.0
    referral = report(kpi_store, source="referral").section("sales")
    assert (referral.kpi("win_rate").value, referral.kpi("win_rate").previous) == (100.0, 100.0)
    assert referral.filters_ignored == []
    assert billing.section("sales").kpi("win_rate").value is None  # no deal belongs to the Billing team
    assert report(kpi_store, channel="chat").section("customers").filters_ignored == ["channel"]


def test_an_empty_period_gives_no_values_not_zeros(kpi_store):
    with kpi_store.repo("kpi") as repo:
        empty = compute_kpis(repo, Period.of(since=date(2020, 1, 1), until=date(2020, 2, 1)))
    support = empty.section("support")
    assert support.kpi("first_response_median_h").value is None and support.kpi("csat_good").value is None
    assert empty.section("sales").kpi("win_rate").value is None


# -- every KPI of the demo workspace, computed again by hand from the ORM records (no SQL, numpy percentiles) -------
FIRST_H = {"urgent": 1, "high": 4, "normal": 24, "low": 72}
RESOLVE_H = {"urgent": 24, "high": 72, "normal": 120, "low": 240}


def midnight(day):
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def pct(values, q):
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def avg(values):
    return sum(values) / len(values) if values else None


def rate(flags):
    return 100 * sum(flags) / len(flags) if flags else None


def nps_of(scores):
    return 100 * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)) / len(scores) if scores else None


def deal_times(deal):
    """(created, closed or None, won or None) of a deal from its stage history, as the KPI definitions read it."""
    steps = sorted((datetime.fromisoformat(s["at"]), s["stage"]) for s in deal.stage_history)
    won = {DealStage.closed_won: True, DealStage.closed_lost: False}.get(deal.stage)
    closing = [at for at, stage in steps if stage in ("closed_won", "closed_lost")]
    closed = (closing[-1] if closing else midnight(deal.close_date)) if won is not None else None
    return (steps[0][0] if steps else None), closed, won


def by_hand(records, window):
    tickets, messages, deals, nps, accounts, leads = records
    start, end = window.since, window.until
    inside = lambda t: t is not None and start <= t < end  # noqa: E731
    first_reply = {}
    for m in messages:
        if m.author_kind is AuthorKind.agent:
            first_reply[m.ticket_id] = min(first_reply.get(m.ticket_id, m.sent_at), m.sent_at)
    opened = [t for t in tickets if inside(t.opened_at)]
    replied = {t.id: first_reply[t.id] for t in opened if t.id in first_reply and first_reply[t.id] < end}
    frt = [(replied[t.id] - t.opened_at).total_seconds() / 3600 for t in opened if t.id in replied]
    waited = [((replied.get(t.id) or end) - t.opened_at).total_seconds() / 3600 for t in opened]
    first_breach = [w > FIRST_H[t.priority.value] for t, w in zip(opened, waited, strict=True)]
    solved = [t for t in tickets if inside(t.closed_at)]
    hours = [(t.closed_at - t.opened_at).total_seconds() / 3600 for t in solved]
    late = [h > RESOLVE_H[t.priority.value] for t, h in zip(solved, hours, strict=True)]
    rated = [t.csat_score for t in solved if t.csat_score is not None]
    scores = [r.score for r in nps if inside(r.submitted_at)]
    closed = [(d, *deal_times(d)) for d in deals]
    decided = [(d, created, at, won) for d, created, at, won in closed if won is not None and inside(at)]
    won = [(d, created, at) for d, created, at, w in decided if w]
    target = sum(float(d.amount) for d, _, _ in won)
    ahead = [
        float(d.amount)
        for d, created, at, _ in closed
        if created
        and created <= end
        and (at is None or at > end)
        and end <= midnight(d.close_date) < end + (end - start)
    ]
    active = [a for a in accounts if (a.customer_since is None or midnight(a.customer_since) < start)]
    active = [a for a in active if a.churned_at is None or midnight(a.churned_at) >= start]
    new_leads = [c for c in leads if inside(c.lead_created_at)]
    lead_outcomes = [c.lead_status == "converted" for c in new_leads if c.lead_status in ("converted", "disqualified")]
    renewals = [w for d, _, _, w in decided if d.deal_type == "renewal"]
    return {
        "first_response_median_h": pct(frt, 50),
        "first_response_p90_h": pct(frt, 90),
        "resolution_median_h": pct(hours, 50),
        "resolution_p90_h": pct(hours, 90),
        "reopen_rate": rate([t.reopen_count > 0 for t in solved]),
        "backlog": float(sum(t.opened_at < end and (t.closed_at is None or t.closed_at >= end) for t in tickets)),
        "sla_breaches": float(sum(first_breach) + sum(late)),
        "sla_breach_rate": rate(first_breach),
        "csat_good": rate([s >= 4 for s in rated]),
        "csat_mean": avg(rated),
        "nps": nps_of(scores),
        "win_rate": rate([w for *_, w in decided]),
        "avg_deal_size": avg([float(d.amount) for d, _, _ in won]),
        "cycle_median_days": pct([(at - created).total_seconds() / 86400 for _, created, at in won], 50),
        "pipeline_coverage": sum(ahead) / target if target else None,
        "leads_created": float(len(new_leads)),
        "lead_conversion": rate(lead_outcomes),
        "churn_rate": rate([a.churned_at is not None and start <= midnight(a.churned_at) < end for a in active]),
        "renewal_rate": rate(renewals),
    }


def test_demo_workspace_kpis_agree_with_a_computation_by_hand(tmp_path):
    """Every KPI of both periods on the demo workspace, against the same definitions computed in plain Python."""
    from copilot.demo.generator import seed_demo
    from copilot.settings import Settings
    from copilot.store.models import Contact

    store = Store.from_settings(Settings(data_dir=tmp_path / "data"))
    seed_demo(store, "demo", seed=7, anchor=date(2026, 11, 22))
    period = Period.of(days=90, until=date(2026, 11, 22))
    with store.repo("demo") as repo:
        result = compute_kpis(repo, period)
        records = [repo.all(repo.select(model)) for model in (Ticket, Message, Deal, NpsResponse, Account)] + [
            repo.all(repo.select(Contact).where(Contact.lead_status.is_not(None)))
        ]
    now, before = by_hand(records, period), by_hand(records, period.previous())
    kpis = {k.key: k for section in result.sections for k in section.kpis}
    assert set(now) == set(kpis)  # nothing left unchecked
    for key, kpi in kpis.items():
        assert kpi.value is not None and kpi.previous is not None, key  # every metric occurs in the demo
        assert kpi.value == pytest.approx(now[key], rel=1e-9), key
        assert kpi.previous == pytest.approx(before[key], rel=1e-9), key
    customers = result.section("customers")
    assert sum(p.n for p in customers.series[0].points) == sum(
        period.previous().since <= r.submitted_at < period.until for r in records[3]
    )
