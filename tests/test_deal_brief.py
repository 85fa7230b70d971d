"""Deal brief: facts and risks from the records (demo hard cases), what changed,
model narrative with guards and fallback, CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from typer.testing import CliRunner

from copilot.cli.main import app, main
from copilot.errors import NotFound
from copilot.services import Services
from copilot.store import get_or_create_workspace
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    AuthorKind,
    Call,
    CallTurn,
    Contact,
    Deal,
    DealStage,
    Message,
    Note,
    NpsResponse,
    Priority,
    Ticket,
    TicketStatus,
)
from copilot.tasks.deal_brief import DealBriefParams, deal_brief, template_narrative
from copilot.tasks.sentiment import Head, MessageSentiment
from tests.fakes import FakeEmbedder

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


class KeywordClassifier:
    """Stands in for the embedding classifier: 'angry' words are negative, everything else neutral."""

    head = Head(np.zeros((3, 1)), np.zeros(3), "keyword stand-in")

    def for_workspace(self, repo) -> KeywordClassifier:
        return self

    def classify(self, texts: list[str]) -> list[MessageSentiment]:
        out = []
        for text in texts:
            negative = any(w in text.lower() for w in ("unacceptable", "angry", "terrible", "still not"))
            out.append(
                MessageSentiment(
                    label="negative" if negative else "neutral", score=-0.8 if negative else 0.0, confidence=0.9
                )
            )
        return out


@pytest.fixture
def services_on(store, settings, fake_model):
    """Services on a model, the test's store and fake model, the keyword classifier and the letters embedder."""
    made = []

    def build(model: str = "local/smollm2-135m-instruct", classifier=None) -> Services:
        services = Services(
            settings.model_copy(update={"model": model}),
            store,
            fake=fake_model,
            embedder=FakeEmbedder(),
            sentiment=classifier or KeywordClassifier(),
            sleep=lambda _s: None,
        )
        made.append(services)
        return services

    yield build
    for services in made:
        services.close()


@pytest.fixture
def brief(store, services_on):
    """Run the deal_brief task as of ``now`` (NOW unless given), in its own transaction."""

    def run(deal_id, model="local/smollm2-135m-instruct", workspace="alpha", now=NOW, classifier=None):
        services = services_on(model, classifier)
        with store.repo(workspace) as repo:
            return services.run_task(repo, "deal_brief", {"deal_id": deal_id, "as_of": now})

    return run


@pytest.fixture
def healthy_deal(store) -> int:
    """A deal that entered proposal 10 days ago, with a next step, a contact and a recent call."""
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        account = repo.add(Account(external_id="A-1", name="Harbor Foods"))
        repo.session.flush()
        repo.add(Contact(account_id=account.id, name="Nora Costa", title="Finance Director"))
        deal = repo.add(
            Deal(
                external_id="D-1",
                account_id=account.id,
                name="Harbor Foods — New business",
                stage=DealStage.proposal,
                amount=Decimal("24000"),
                close_date=date(2026, 7, 15),
                owner="Dana Reyes",
                next_step="Send revised proposal",
                stage_history=[
                    {"stage": "discovery", "at": (NOW - timedelta(days=40)).isoformat()},
                    {"stage": "proposal", "at": (NOW - timedelta(days=10)).isoformat()},
                ],
            )
        )
        repo.session.flush()
        call = repo.add(
            Call(
                external_id="CALL-1",
                deal_id=deal.id,
                account_id=account.id,
                title="Pricing discussion — Harbor Foods",
                started_at=NOW - timedelta(days=3),
                participants=[{"name": "Dana Reyes", "role": "rep"}, {"name": "Nora Costa", "role": "customer"}],
            )
        )
        repo.session.flush()
        for position, (speaker, text) in enumerate(
            [
                ("Nora Costa", "We want month-end close in hours, not days, by the summer."),
                ("Dana Reyes", "I'll send the phased proposal by Friday June 5."),
                ("Nora Costa", "Great, the next step is a review with our CFO."),
            ]
        ):
            repo.add(CallTurn(call_id=call.id, position=position, speaker=speaker, start_s=position * 10.0, text=text))
        return deal.id


def test_healthy_deal_has_facts_no_risks_and_the_reps_open_item_as_next_step(store, brief, healthy_deal):
    outcome = brief(healthy_deal)
    facts = outcome.result.facts
    assert (facts.stage, facts.days_in_stage, facts.amount_text(), facts.owner) == (
        "proposal",
        10,
        "$24,000",
        "Dana Reyes",
    )
    assert facts.risks == [] and outcome.result.previous_brief_id is None and outcome.provenance.model == "template"
    assert [s.name for s in facts.stakeholders] == ["Nora Costa", "Dana Reyes"] and facts.stakeholders[
        0
    ].role == "customer"
    assert facts.last_touch.kind == "call" and facts.last_touch.days_ago == 3
    item = facts.action_items[0]  # no stored summary: picked from the transcript
    assert (item.owner, item.due) == ("Dana Reyes", "Friday June 5") and item.source_ids[0].startswith("call_turn:")
    assert item.due_date == date(2026, 6, 5) and item.overdue_days(NOW) == 0
    step = outcome.result.suggested_next_step  # the rep's own open item from the last call, then the stage's move
    assert step.text == (
        "Follow up on your action item: I'll send the phased proposal by Friday June 5, "
        "then walk Nora Costa through the proposal and agree a decision date."
    )
    assert step.source_ids[: len(item.source_ids)] == item.source_ids
    assert all(v.passed for v in outcome.verdicts), outcome.verdicts
    with store.repo("alpha") as repo:
        row = repo.get(AiResult, outcome.ai_result_id)
        assert (row.task, row.subject_kind, row.subject_id, row.status) == (
            "deal_brief",
            "deal",
            healthy_deal,
            AiStatus.completed,
        )
        assert f"deal:{healthy_deal}" in row.input_ids and row.content["result"]["facts"]["days_in_stage"] == 10


def test_stored_call_summary_supplies_the_action_items(store, services_on, brief, healthy_deal):
    services = services_on("local/smollm2-135m-instruct")
    with store.repo("alpha") as repo:
        call_id = repo.session.scalar(repo.select(Call).where(Call.deal_id == healthy_deal)).id
        summary = services.run_task(repo, "call_summary", {"call_id": call_id})
    facts = brief(healthy_deal).result.facts
    assert f"ai_result:{summary.ai_result_id}" in facts.action_items[0].source_ids


def test_what_changed_lists_a_stage_change_between_two_briefs(store, brief, healthy_deal):
    first = brief(healthy_deal)
    with store.repo("alpha") as repo:
        deal = repo.get(Deal, healthy_deal)
        deal.stage = DealStage.negotiation
        deal.stage_history = [
            *deal.stage_history,
            {"stage": "negotiation", "at": (NOW + timedelta(days=1)).isoformat()},
        ]
        deal.next_step = None
    second = brief(healthy_deal, now=NOW + timedelta(days=2))
    changes = [c.text for c in second.result.changes]
    assert second.result.previous_brief_id == first.ai_result_id
    assert "Stage changed from proposal to negotiation." in changes
    assert "Next step changed from Send revised proposal to none." in changes
    assert any(c.startswith("New risk: No next step") for c in changes)
    third = brief(healthy_deal, now=NOW + timedelta(days=2))
    assert third.result.previous_brief_id == second.ai_result_id and third.result.changes == []


def test_sentiment_tickets_and_detractors_become_risks_with_evidence(store, brief, healthy_deal):
    with store.repo("alpha") as repo:
        deal = repo.get(Deal, healthy_deal)
        contact = repo.session.scalar(repo.select(Contact))
        ticket = repo.add(
            Ticket(
                external_id="T-9",
                account_id=deal.account_id,
                contact_id=contact.id,
                subject="Export broken",
                status=TicketStatus.open,
                priority=Priority.urgent,
                opened_at=NOW - timedelta(days=5),
            )
        )
        repo.session.flush()
        texts = ["Thanks, all good.", "The export is still not working.", "This is unacceptable, we are angry."]
        messages = [
            repo.add(
                Message(
                    ticket_id=ticket.id, author_kind=AuthorKind.customer, body=t, sent_at=NOW - timedelta(days=5 - n)
                )
            )
            for n, t in enumerate(texts)
        ]
        old = repo.add(
            NpsResponse(
                account_id=deal.account_id, score=2, comment="Too old to count", submitted_at=NOW - timedelta(days=500)
            )
        )
        detractor = repo.add(
            NpsResponse(
                contact_id=contact.id,
                score=5,
                comment="Support takes days to answer.",
                submitted_at=NOW - timedelta(days=20),
            )
        )
        repo.add(NpsResponse(contact_id=contact.id, score=9, submitted_at=NOW - timedelta(days=10)))
        repo.session.flush()
        ids = {"ticket": ticket.id, "messages": [m.id for m in messages], "old": old.id, "detractor": detractor.id}
    outcome = brief(healthy_deal)
    risks = {r.kind: r for r in outcome.result.facts.risks}
    assert risks["high_priority_tickets"].evidence_ids == [f"ticket:{ids['ticket']}"]
    assert risks["detractor_nps"].evidence_ids == [f"nps_response:{ids['detractor']}"]
    assert set(risks["negative_sentiment"].evidence_ids) == {f"message:{i}" for i in ids["messages"][1:]}
    assert "T-9" in outcome.result.suggested_next_step.text and all(v.passed for v in outcome.verdicts)


# -- model path -----------------------------------------------------------------------------------
def test_grounded_model_narrative_is_used(store, brief, fake_script, healthy_deal):
    fake_script.push(
        f"Harbor Foods — New business moved to proposal 10 days ago and is worth $24,000 [deal:{healthy_deal}]. "
        "Nora Costa asked for a review with the CFO [call_turn:3].\n"
        f"Next step: Send the phased proposal to Nora Costa [deal:{healthy_deal}]."
    )
    outcome = brief(healthy_deal, model="fake/scripted")
    assert not outcome.used_fallback and outcome.provenance.model == "fake/scripted", outcome.verdicts
    assert outcome.result.narrative.startswith("Harbor Foods") and "[" not in outcome.result.narrative
    assert outcome.result.suggested_next_step.text == "Send the phased proposal to Nora Costa."
    assert outcome.result.source_ids == [f"deal:{healthy_deal}", "call_turn:3"]


@pytest.mark.parametrize(
    ("narrative", "guard"),
    [
        ("The deal is worth $99,000 and closes soon [deal:{deal}].", "grounded_facts"),  # invented amount
        ("Bob Smith from Harbor Foods signed off yesterday [deal:{deal}].", "grounded_names"),  # invented person
        ("The deal is in proposal [ticket:424242].", "cited_ids"),  # cites a record that is not in the facts
        ("The deal is in proposal.", "complete"),  # no next step line
    ],
)
def test_ungrounded_model_narrative_falls_back_to_the_template(
    store, brief, fake_script, healthy_deal, narrative, guard
):
    next_step = "" if guard == "complete" else "\nNext step: Call them."
    fake_script.push(narrative.format(deal=healthy_deal) + next_step)
    outcome = brief(healthy_deal, model="fake/scripted")
    assert outcome.used_fallback and outcome.fallback_reason == "model output failed a guard"
    assert outcome.result.narrative == template_narrative(outcome.result.facts) and not outcome.blocked
    assert any(v.name == guard and not v.passed and v.severity.value == "flag" for v in outcome.verdicts)


# -- what the call said: overdue items, objections; a narrative that adds to the risks ----------------
def _add_turns(store, deal_id: int, lines: list[tuple[str, str]]) -> None:
    with store.repo("alpha") as repo:
        call = repo.session.scalar(repo.select(Call).where(Call.deal_id == deal_id))
        start = len(call.turns)
        for n, (speaker, text) in enumerate(lines):
            repo.add(CallTurn(call_id=call.id, position=start + n, speaker=speaker, start_s=60.0 + n, text=text))


def test_action_items_past_their_due_date_are_flagged_overdue_with_dates(store, brief, healthy_deal):
    later = NOW + timedelta(days=10)  # the call was on 2026-05-29; "by Friday June 5" is past on June 11
    outcome = brief(healthy_deal, now=later)
    risks = {r.kind: r for r in outcome.result.facts.risks}
    overdue = risks["overdue_action_items"]
    assert "due 2026-06-05, 6 days ago" in overdue.text and "Dana Reyes" in overdue.text
    assert overdue.evidence_ids and all(i.startswith("call_turn:") for i in overdue.evidence_ids)
    step = outcome.result.suggested_next_step
    assert step.text.startswith("Deliver what is overdue: I'll send the phased proposal") and "2026-06-05" in step.text
    assert "overdue_action_items" not in {r.kind for r in brief(healthy_deal, now=NOW).result.facts.risks}
    assert all(v.passed for v in outcome.verdicts), outcome.verdicts


def test_objections_and_competitors_on_the_call_become_risks_with_evidence(store, brief, healthy_deal):
    _add_turns(
        store,
        healthy_deal,
        [
            ("Nora Costa", "Honestly, the price is the main concern. It is more than we budgeted for this."),
            ("Dana Reyes", "I understand, we can phase it."),
            ("Nora Costa", "We are also looking at Xero for the invoicing part."),
            ("Nora Costa", "Our IT team will ask about security. Do you have SOC 2?"),
        ],
    )
    outcome = brief(healthy_deal)
    risks = {r.kind: r for r in outcome.result.facts.risks}
    assert {"price_objection", "competitor", "security_objection"} <= set(risks)
    price = risks["price_objection"]
    assert "the price is the main concern" in price.text and "2026-05-29" in price.text
    with store.repo("alpha") as repo:
        turn = repo.get(CallTurn, int(price.evidence_ids[0].split(":")[1]))
        assert turn.speaker == "Nora Costa" and "price" in turn.text
    assert "Xero" in risks["competitor"].text
    assert outcome.result.suggested_next_step.text.startswith("Answer the price concern")
    assert all("phase it" not in r.text for r in risks.values())  # the rep's answer is no objection
    assert all(v.passed for v in outcome.verdicts), outcome.verdicts


def test_narrative_adds_to_the_risk_list_and_a_model_copy_of_it_is_replaced(store, brief, fake_script, healthy_deal):
    _add_turns(store, healthy_deal, [("Nora Costa", "Honestly, the price is the main concern for us.")])
    outcome = brief(healthy_deal)
    narrative, risks = outcome.result.narrative, outcome.result.facts.risks
    assert risks and all(r.text not in narrative for r in risks) and "1 risk(s), listed with evidence." in narrative
    assert "1 call(s) on the deal" in narrative and "with Nora Costa" in narrative
    copied = risks[0].text
    fake_script.push(f"{copied} [deal:{healthy_deal}]\nNext step: Call Nora Costa [deal:{healthy_deal}].")
    replaced = brief(healthy_deal, model="fake/scripted")
    assert replaced.used_fallback and any(v.name == "adds_to_risks" and not v.passed for v in replaced.verdicts)


def test_unknown_deal_is_not_found(store, services_on, brief, healthy_deal):
    with pytest.raises(NotFound, match="no deal '424242' in workspace 'alpha'"):
        brief(424242)
    with store.repo("alpha") as repo, pytest.raises(NotFound, match="no deal '424242' in workspace 'alpha'"):
        deal_brief(services_on().context(repo, task="deal_brief"), DealBriefParams(deal_id=424242, as_of=NOW))


# -- the seeded demo workspace ----------------------------------------------------------------------
@pytest.fixture
def demo(store, settings, monkeypatch):
    from copilot.demo.generator import seed_demo

    seed_demo(store, "demo")  # anchored on today, like `copilot demo`
    monkeypatch.setenv("COPILOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("COPILOT_MODEL", "local/smollm2-135m-instruct")
    with store.repo("demo") as repo:
        return repo.session.scalar(repo.select(Deal).where(Deal.name == "Acme Corporation — Enterprise expansion")).id


def test_demo_stalled_deal_is_flagged_with_a_detractor_and_evidence(store, brief, demo):
    outcome = brief(demo, workspace="demo", now=datetime.now(UTC))
    facts = outcome.result.facts
    risks = {r.kind: r for r in facts.risks}
    assert {"stalled", "no_next_step", "detractor_nps", "high_priority_tickets"} <= set(risks)
    assert (
        facts.stage == "negotiation" and facts.days_in_stage >= 94 and f"deal:{demo}" in risks["stalled"].evidence_ids
    )
    with store.repo("demo") as repo:
        acme = repo.by_external_id(Account, "ACME")
        for evidence in risks["detractor_nps"].evidence_ids:
            response = repo.get(NpsResponse, int(evidence.split(":")[1]))
            assert response.score <= 6 and (response.account_id == acme.id or response.contact.account_id == acme.id)
        tickets = [repo.get(Ticket, int(e.split(":")[1])) for e in risks["high_priority_tickets"].evidence_ids]
        assert all(t.account_id == acme.id and t.priority in (Priority.high, Priority.urgent) for t in tickets)
        assert any("double charge" in t.subject.lower() for t in tickets)
        note = repo.get(Note, int(risks["stalled"].evidence_ids[1].split(":")[1]))
        assert note.deal_id == demo  # the last (96-day-old) activity on the deal is the evidence of the stall
    step = outcome.result.suggested_next_step
    assert "ticket" in step.text and "book a dated meeting" in step.text and f"deal:{demo}" in step.source_ids
    assert all(v.passed for v in outcome.verdicts), outcome.verdicts


def test_deal_brief_cli_shows_risks_sources_and_verdicts(store, demo):
    with store.repo("demo") as repo:
        reference = repo.get(Deal, demo).external_id
    runner = CliRunner()
    first = runner.invoke(app, ["deal-brief", reference, "-w", "demo"])
    assert first.exit_code == 0, first.output
    for expected in (
        "negotiation",
        "days in stage",
        "Risks:",
        "evidence deal:",
        "nps_response:",
        "Suggested next step",
        "first brief",
        "grounded_names",
        "deal_brief@",
        "guard verdicts",
    ):
        assert expected in first.output, expected
    second = runner.invoke(app, ["deal-brief", str(demo), "-w", "demo", "--strategy", "template"])
    assert second.exit_code == 0 and "Since the last brief" in second.output


def test_deal_brief_cli_unknown_deal_is_a_one_line_error(demo, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["copilot", "deal-brief", "D-404", "-w", "demo"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "no deal 'D-404'" in err and "Traceback" not in err


def test_deal_page_links_evidence_to_the_call_page_which_highlights_cited_turns(
    store, services_on, brief, healthy_deal
):
    import re

    from fastapi.testclient import TestClient

    from api.app import create_app
    from copilot.auth import create_key

    brief(healthy_deal, now=NOW + timedelta(days=10))
    with store.repo("alpha") as repo:
        key = create_key(repo, "rep", "rep")[0]
        turn_ids = [t.id for t in repo.session.scalar(repo.select(Call)).turns]
    csrf = re.compile(r'name="csrf" value="([^"]+)"')
    with TestClient(create_app(services=services_on())) as client:
        token = csrf.search(client.get("/login").text).group(1)
        client.post("/login", data={"api_key": key, "csrf": token})
        deal_page = client.get("/deals/D-1").text
        assert f'href="/calls/CALL-1#turn-{turn_ids[1]}">call_turn:{turn_ids[1]}</a>' in deal_page  # overdue evidence
        assert "overdue 6 d" in deal_page and 'href="/calls/CALL-1">Pricing discussion' in deal_page
        call_page = client.get("/calls/CALL-1").text
        assert "No summary yet" in call_page and all(f'id="turn-{i}"' in call_page for i in turn_ids)
        assert "00:10 · Dana Reyes (rep)" in call_page
        call_page = client.post("/calls/CALL-1/summary", data={"csrf": csrf.search(call_page).group(1)}).text
        assert "Call summarised" in call_page and "I&#39;ll send the phased proposal" in call_page
        assert f'class="turn evidence rep" id="turn-{turn_ids[1]}"' in call_page and "(2026-06-05)" in call_page
        assert client.get("/calls/CALL-404").status_code == 404
