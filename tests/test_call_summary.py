"""Call summary: extractive cues, model path with guards (invented owner/date), windows and merge,
storage, approval hook, CLI."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from copilot.cli.main import app, main
from copilot.errors import InvalidInput, NotFound
from copilot.services import Services
from copilot.store import get_or_create_workspace
from copilot.store.models import AiResult, AiStatus, Call, CallTurn, Deal, DealStage, Note
from copilot.tasks.call_summary import (
    MAX_EVIDENCE_TURNS,
    CallSummaryParams,
    Transcript,
    TranscriptTurn,
    apply_to_deal,
    estimate_tokens,
    extractive_notes,
    fluent,
    notes_guards,
    summarize_call,
    summarize_transcript,
)
from tests.fakes import FakeEmbedder

T0 = datetime(2026, 3, 2, 15, tzinfo=UTC)
PARTICIPANTS = [
    {"name": "Dana Reyes", "role": "rep", "company": "Ledgerly"},
    {"name": "Ana Lima", "role": "customer", "company": "Acme Corporation"},
]
TURNS = [
    (
        "Dana Reyes",
        "Hi Ana, thanks for making the time today. I thought we'd look at how Ledgerly fits your month-end process.",
    ),
    (
        "Ana Lima",
        "Right now our invoicing is a mix of spreadsheets and an old accounting tool. "
        "Month-end takes the finance team about four days.",
    ),
    (
        "Dana Reyes",
        "Ledgerly creates the invoice from the closed deal and sends reminders automatically "
        "on the schedule you choose.",
    ),
    ("Ana Lima", "Honestly, the price is the main concern. $48,000 a year is more than we budgeted for this."),
    ("Dana Reyes", "If we start with the finance team only, the first-year cost comes down quite a bit."),
    ("Ana Lima", "Okay. I think we agree to start with a pilot for the finance team in April."),
    ("Dana Reyes", "I'll send the phased proposal with the revised pricing by Friday March 6."),
    ("Ana Lima", "I'll set up a call with our CFO before Tuesday March 10 so we can review the proposal together."),
    ("Dana Reyes", "So the next step is the review with your CFO, and then we sign the pilot agreement."),
    ("Ana Lima", "Thank you, talk soon."),
]


def add_call(repo, turns, *, external_id="CALL-1", deal=None, participants=PARTICIPANTS) -> Call:
    call = repo.add(
        Call(
            external_id=external_id,
            title="Pricing discussion — Acme Corporation",
            started_at=T0,
            participants=participants,
            deal_id=deal.id if deal else None,
            account_id=deal.account_id if deal else None,
        )
    )
    repo.session.flush()
    offset = 0.0
    for position, (speaker, text) in enumerate(turns):
        repo.add(CallTurn(call_id=call.id, position=position, speaker=speaker, start_s=offset, text=text))
        offset += 9.5
    repo.session.flush()
    return call


@pytest.fixture
def call_ids(store):
    """(call id, deal id) of a short call linked to a deal in workspace alpha."""
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        deal = repo.add(
            Deal(
                external_id="D-1",
                name="Acme — Pilot",
                stage=DealStage.proposal,
                owner="Dana Reyes",
                next_step="Send pricing",
            )
        )
        repo.session.flush()
        return add_call(repo, TURNS, deal=deal).id, deal.id


@pytest.fixture
def services_on(store, settings, fake_model):
    """Services on a model (and other settings), the test's store and fake model, and the letters embedder."""
    made = []

    def build(model: str, **updates) -> Services:
        services = Services(
            settings.model_copy(update={"model": model, **updates}),
            store,
            fake=fake_model,
            embedder=FakeEmbedder(),
            sleep=lambda _s: None,
        )
        made.append(services)
        return services

    yield build
    for services in made:
        services.close()


@pytest.fixture
def summarize(store, services_on):
    """Run the call_summary task on a model, in its own transaction."""

    def run(model: str, call_id, progress=None, **updates):
        services = services_on(model, **updates)
        with store.repo("alpha") as repo:
            return services.run_task(repo, "call_summary", {"call_id": call_id}, progress=progress)

    return run


def turn_ids(store, call_id) -> list[int]:
    with store.repo("alpha") as repo:
        return [t.id for t in repo.get(Call, call_id).turns]


def transcript_of(turns, roles=None) -> Transcript:
    roles = roles or {p["name"]: p["role"] for p in PARTICIPANTS}
    return Transcript(
        title="Call",
        participants=PARTICIPANTS,
        turns=[
            TranscriptTurn(id=100 + n, position=n, speaker=s, start_s=n * 10.0, text=t, role=roles.get(s))
            for n, (s, t) in enumerate(turns)
        ],
    )


def test_extractive_notes_find_objection_decision_action_items_and_next_step():
    transcript = transcript_of(TURNS)
    notes = extractive_notes(transcript, FakeEmbedder().encode)
    assert [o.turn_ids for o in notes.objections] == [[103]] and "price is the main concern" in notes.objections[0].text
    assert [d.turn_ids for d in notes.decisions] == [[105]]
    owners = {(a.owner, a.due, tuple(a.turn_ids)) for a in notes.action_items}
    assert ("Dana Reyes", "Friday March 6", (106,)) in owners and ("Ana Lima", "Tuesday March 10", (107,)) in owners
    assert notes.next_step and notes.next_step.turn_ids == [108]
    assert notes.summary and set(notes.cited_ids()) <= set(transcript.ids)
    assert "Thank you, talk soon" not in notes.summary  # short courtesy lines are never summary material


def test_extracted_sentences_read_as_written_without_fillers_or_words_said_twice():
    spoken = [
        ("Dana Reyes", "Um so the the logo can go on on every uh front of the remote."),
        ("Ana Lima", "Uh, we we agreed to ship it in twenty twenty seven, erm, with two two buttons."),
        ("Dana Reyes", "I had had a look, and that that is what the the team on the on the call wants."),
        ("Ana Lima", "Mm. Hmm."),
    ]
    transcript = transcript_of(spoken)
    notes = extractive_notes(transcript, FakeEmbedder().encode)
    text = " ".join(notes.texts())
    assert not re.search(r"(?i)\b(um|uh|erm|mm|hmm)\b", text), text
    assert "So the logo can go on every front of the remote." in text
    assert "We agreed to ship it in twenty twenty seven, with two two buttons." in text  # numbers stay as said
    assert "I had had a look, and that that is what the team on the call wants." in text
    assert [d.turn_ids for d in notes.decisions] == [[101]] and set(notes.cited_ids()) <= set(transcript.ids)
    assert fluent("Mm. Hmm.") == "" and fluent("no no no") == "No no no"
    assert fluent("Um, the case is 5 mm thinner, mm.") == "The case is 5 mm thinner."  # millimetres stay
    german = transcript_of([("Dana Reyes", "Wir treffen uns um zehn Uhr mit der Frau, die die Zeitung liest.")] * 3)
    kept = " ".join(extractive_notes(german, FakeEmbedder().encode).texts())
    assert "um zehn Uhr mit der Frau, die die Zeitung" in kept  # "um" is a German word; the repeat is grammar


def test_a_recap_may_name_the_time_of_a_turn_but_not_an_invented_time():
    transcript = transcript_of(TURNS)  # turn 103 is said at 00:30
    notes = extractive_notes(transcript, FakeEmbedder().encode)

    def grounded(recap: str) -> bool:
        candidate = notes.model_copy(update={"summary": recap})
        return next(v for v in notes_guards(candidate, transcript) if v.name == "grounded_facts").passed

    assert grounded("At 00:30 Ana said the price is the main concern.")
    assert not grounded("At 07:13 Ana said the price is the main concern.")
    assert not grounded("At 00:30 Ana asked for 35 licences.")  # a turn's time grounds no other number


def test_embedded_model_uses_the_extractive_path_and_stores_it_pending_review(store, summarize, call_ids):
    call_id, _ = call_ids
    outcome = summarize("local/smollm2-135m-instruct", call_id)
    assert outcome.provenance.model == "extractive" and not outcome.used_fallback and not outcome.blocked
    assert all(v.passed for v in outcome.verdicts), outcome.verdicts
    with store.repo("alpha") as repo:
        row = repo.get(AiResult, outcome.ai_result_id)
        assert (row.task, row.subject_kind, row.subject_id, row.status) == (
            "call_summary",
            "call",
            call_id,
            AiStatus.pending,
        )
        assert row.input_ids == [f"call:{call_id}", *(f"call_turn:{i}" for i in turn_ids(store, call_id))]
        assert {v["name"] for v in row.guard_verdicts} == {
            "cited_ids",
            "grounded_facts",
            "grounded_names",
            "action_items_grounded",
        }
        assert row.content["result"]["action_items"] and row.content["result"]["turn_count"] == len(TURNS)


def test_a_model_recap_that_passes_the_guards_is_used_with_its_turn_ids(store, summarize, fake_script, call_ids):
    call_id, _ = call_ids
    ids = turn_ids(store, call_id)
    fake_script.push(
        f"Acme wants to automate invoicing [{ids[1]}]. Ana said the price is the main concern [{ids[3]}]. "
        f"They agreed on a pilot for the finance team [{ids[5]}]. Dana sends the phased proposal [{ids[6]}]."
    )
    outcome = summarize("fake/scripted", call_id)
    result = outcome.result
    assert not outcome.used_fallback and outcome.provenance.model == "fake/scripted", outcome.fallback_reason
    assert [p.turn_ids for p in result.recap] == [[ids[1]], [ids[3]], [ids[5]], [ids[6]]]
    assert result.as_text().startswith("Acme wants to automate invoicing")
    assert result.action_items[0].owner == "Dana Reyes"  # items stay the extracted ones, with owners and dates
    assert all(v.passed for v in outcome.verdicts)
    prompt = fake_script.calls[-1]["messages"][-1]["content"]
    assert f"[{ids[3]}]" in prompt and "response_format" not in fake_script.calls[-1]["params"]


@pytest.mark.parametrize(
    ("recap", "guard"),
    [
        ("Bob Smith will send the proposal on Friday [{six}].", "grounded_names"),  # an invented person
        ("Dana sends the proposal by March 30 [{six}].", "grounded_facts"),  # an invented date
    ],
)
def test_an_invented_name_or_date_in_the_recap_falls_back(store, summarize, fake_script, call_ids, recap, guard):
    call_id, _ = call_ids
    ids = turn_ids(store, call_id)
    fake_script.push(recap.format(six=ids[6]))
    outcome = summarize("fake/scripted", call_id)
    assert outcome.used_fallback and "recap failed a guard" in outcome.fallback_reason
    rejected = next(v for v in outcome.verdicts if v.name == guard and not v.passed)
    assert rejected.severity.value == "flag" and "recap (replaced)" in rejected.details[0]
    assert not outcome.result.recap and outcome.result.action_items and not outcome.blocked


def test_cited_turn_from_another_call_is_caught(store, summarize, fake_script, call_ids):
    call_id, _ = call_ids
    with store.repo("alpha") as repo:
        other = add_call(repo, [("Zed", "Unrelated call text for another customer.")], external_id="CALL-2")
        foreign = other.turns[0].id
    fake_script.push(f"Acme wants to automate invoicing [{foreign}].")
    outcome = summarize("fake/scripted", call_id)
    failed = next(v for v in outcome.verdicts if v.name == "cited_ids" and not v.passed)
    assert str(foreign) in failed.details[0] and foreign not in outcome.result.cited_ids()


def test_a_competitor_mention_is_a_typed_field(store, summarize, call_ids):
    call_id, _ = call_ids
    with store.repo("alpha") as repo:
        call = add_call(
            repo,
            [
                ("Ana Lima", "To be fair we are also trialling a cheaper tool right now."),
                ("Dana Reyes", "Understood, our edge is reconciliation."),
            ],
            external_id="CALL-3",
        )
    outcome = summarize("local/smollm2-135m-instruct", call.id)
    assert outcome.result.competitors and "cheaper tool" in outcome.result.competitors[0].text


def long_turns(n: int = 400) -> list[tuple[str, str]]:
    speakers = ["Dana Reyes", "Ana Lima", "Omar Haddad"]
    topics = [
        "reconciliation of bank payments",
        "reminder schedules for late invoices",
        "the Salesforce sync of closed deals",
        "multi-currency billing",
        "audit exports for the accountants",
        "approval workflows for large invoices",
    ]
    out = []
    for i in range(n):
        topic = topics[(i // 40) % len(topics)]
        text = f"On point {i} we talked about {topic}, and how the finance team handles it today in more detail."
        if i == 120:
            text = "I'll send the reconciliation report by Friday March 6."
        if i == 300:
            text = "We agreed to go with the Business plan for the pilot."
        out.append((speakers[i % 3] if i not in (120, 300) else ("Omar Haddad" if i == 120 else "Ana Lima"), text))
    return out


@pytest.fixture
def long_call_id(store):
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        parts = [*PARTICIPANTS, {"name": "Omar Haddad", "role": "solutions engineer", "company": "Ledgerly"}]
        return add_call(repo, long_turns(), external_id="CALL-LONG", participants=parts).id


def test_a_long_transcript_gets_one_recap_call_over_its_evidence_turns(
    store, settings, summarize, fake_script, long_call_id
):
    ids = turn_ids(store, long_call_id)
    fake_script.push(
        f"Omar sends the reconciliation report by Friday March 6 [{ids[120]}]. "
        f"They agreed on the Business plan for the pilot [{ids[300]}]."
    )
    seen = []
    outcome = summarize("fake/scripted", long_call_id, progress=lambda done, total: seen.append((done, total)))
    result = outcome.result
    assert result.windows > 1 and seen[-1] == (result.windows, result.windows)  # progress per window
    assert len(fake_script.calls) == 1  # one model call, not one per window
    prompt = fake_script.calls[0]["messages"][-1]["content"]
    assert prompt.count("\n[") <= MAX_EVIDENCE_TURNS and f"[{ids[120]}]" in prompt
    assert sum(estimate_tokens(m["content"]) for m in fake_script.calls[0]["messages"]) < settings.local_context_tokens
    assert not outcome.used_fallback and set(result.cited_ids()) <= set(ids)
    assert any(a.owner == "Omar Haddad" and a.due == "Friday March 6" for a in result.action_items)


def test_long_transcript_extractive_path_cites_valid_turns_across_windows(store, summarize, long_call_id):
    ids = turn_ids(store, long_call_id)
    seen = []
    outcome = summarize(
        "local/smollm2-135m-instruct", long_call_id, progress=lambda done, total: seen.append((done, total))
    )
    result = outcome.result
    assert result.windows > 1 and seen[-1] == (result.windows, result.windows)
    assert set(result.cited_ids()) <= set(ids) and all(v.passed for v in outcome.verdicts)
    cited_positions = {
        ids.index(i) for i in result.summary_turn_ids + [i for p in result.key_points for i in p.turn_ids]
    }
    assert max(cited_positions) - min(cited_positions) > 100  # the summary spans the call, not only its first window
    assert any(a.owner == "Omar Haddad" and a.due == "Friday March 6" for a in result.action_items)
    assert result.decisions and result.decisions[0].turn_ids == [ids[300]]


def test_model_down_falls_back_to_extractive(store, summarize, call_ids):
    call_id, _ = call_ids
    outcome = summarize("fake/scripted", call_id, max_retries=0)  # an empty queue is a server error
    assert outcome.used_fallback and "model unavailable" in outcome.fallback_reason and outcome.result.action_items


def test_call_without_turns_is_a_clear_error_and_empty_transcript_a_result(store, services_on):
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        empty = add_call(repo, [], external_id="CALL-EMPTY").id
        blank = add_call(repo, [("Dana Reyes", "   ")], external_id="CALL-BLANK").id
    services = services_on("local/smollm2-135m-instruct")
    with store.repo("alpha") as repo:
        ctx = services.context(repo, task="call_summary")
        for call_id in (empty, blank):
            with pytest.raises(InvalidInput, match="has no transcript turns"):
                summarize_call(ctx, CallSummaryParams(call_id=call_id))
            with pytest.raises(InvalidInput, match="has no transcript turns"):
                services.run_task(repo, "call_summary", {"call_id": call_id})
        with pytest.raises(NotFound, match="no call '424242' in workspace 'alpha'"):
            summarize_call(ctx, CallSummaryParams(call_id=424242))
        for strategy in ("extractive", "model"):
            outcome = summarize_transcript(ctx, Transcript(turns=[]), strategy)
            assert "no content" in outcome.result.summary and outcome.result.turn_count == 0


def test_apply_to_deal_writes_the_approved_next_step_and_action_items(store, summarize, call_ids):
    call_id, deal_id = call_ids
    outcome = summarize("local/smollm2-135m-instruct", call_id)
    with store.repo("alpha") as repo:
        with pytest.raises(InvalidInput, match="only an approved call summary"):
            apply_to_deal(repo, outcome.ai_result_id)  # still pending: nobody approved it
        brief = repo.add(
            AiResult(task="deal_brief", status=AiStatus.completed, subject_kind="deal", subject_id=deal_id)
        )
        repo.get(AiResult, outcome.ai_result_id).status = AiStatus.approved
        repo.session.flush()
        deal = apply_to_deal(repo, outcome.ai_result_id)
        apply_to_deal(repo, outcome.ai_result_id)  # applying twice does not duplicate the note
        assert (
            deal.id == deal_id
            and deal.next_step == "So the next step is the review with your CFO, and then we sign the pilot agreement."
        )
        notes = repo.all(repo.select(Note).where(Note.deal_id == deal_id))
        assert (
            len(notes) == 1
            and "I'll send the phased proposal" in notes[0].body
            and "due Friday March 6" in notes[0].body
        )
        repo.session.refresh(brief)
        assert brief.status is AiStatus.stale  # the deal changed: its brief is out of date
    with store.repo("alpha") as repo:
        row = repo.get(AiResult, outcome.ai_result_id)
        row.status, row.final_text = AiStatus.edited, "Next: CFO review on March 10. Dana sends the proposal."
        repo.session.flush()
        apply_to_deal(repo, outcome.ai_result_id)
        assert (
            repo.all(repo.select(Note).where(Note.deal_id == deal_id))[0].body
            == "Next: CFO review on March 10. Dana sends the proposal."
        )
        with pytest.raises(NotFound):
            apply_to_deal(repo, 999999)


# -- CLI on the demo workspace ----------------------------------------------------------------------
@pytest.fixture
def demo(store, settings, monkeypatch):
    from copilot.demo.generator import seed_demo

    seed_demo(store, "demo")
    monkeypatch.setenv("COPILOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("COPILOT_MODEL", "local/smollm2-135m-instruct")  # extractive default: no generation
    with store.repo("demo") as repo:
        return repo.session.scalar(repo.select(Call).order_by(Call.id).limit(1)).external_id


def test_summarize_call_cli_shows_items_sources_and_verdicts(demo):
    result = CliRunner().invoke(app, ["summarize-call", demo, "-w", "demo", "--strategy", "extractive"])
    assert result.exit_code == 0, result.output
    for expected in (
        "Summary:",
        "Action items:",
        "owner ",
        "Next step:",
        "(turns ",
        "action_items_grounded",
        "call_summary@",
        "guard verdicts",
    ):
        assert expected in result.output, expected


def test_summarize_call_cli_errors_are_one_line(demo, monkeypatch, capsys):
    bad = CliRunner().invoke(app, ["summarize-call", demo, "-w", "demo", "--strategy", "magic"])
    assert bad.exit_code != 0
    monkeypatch.setattr("sys.argv", ["copilot", "summarize-call", "CALL-404", "-w", "demo"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "no call 'CALL-404'" in err and "Traceback" not in err
