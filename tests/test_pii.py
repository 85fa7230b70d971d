"""PII masking: recognisers, stable placeholders, restoring, and nothing personal reaching an external model."""

from __future__ import annotations

import json

import pytest

from copilot.gateway import Gateway
from copilot.pii import Redaction, person_names
from copilot.services import Services
from copilot.store.models import AiResult, AuthorKind, Contact, Message, Ticket

TEXT = (
    "Hi, this is Dana Whitfield. Call me on +1 415-555-0134 or 020 7946 0958, mail dana.w@acme-corp.com. "
    "Card 4111 1111 1111 1111 was charged twice; refund to IBAN GB82 WEST 1234 5698 7654 32. "
    "I live at 221 Baker Street. Order ORD-1234 of 3 May for $120."
)


def test_every_kind_is_masked_with_stable_placeholders_and_restored():
    redaction = Redaction(names=person_names(["Dana Whitfield"]))
    masked = redaction.mask(TEXT + " Thanks, Dana. dana.w@acme-corp.com")
    for secret in ("Dana", "Whitfield", "415-555-0134", "7946 0958", "acme-corp", "4111", "GB82", "Baker Street"):
        assert secret not in masked, secret
    assert masked.count("[EMAIL_1]") == 2 and "[PERSON_1]" in masked and "[PERSON_2]" in masked
    assert "ORD-1234" in masked and "$120" in masked and "3 May" in masked  # case facts are not personal data
    assert redaction.kinds == ["address", "card", "email", "iban", "person", "phone"]
    assert redaction.restore(masked) == TEXT + " Thanks, Dana. dana.w@acme-corp.com"


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "1234 5678 9012 3456"])
def test_numbers_failing_the_luhn_check_are_not_cards(number):
    assert "CARD" not in Redaction().mask(f"reference {number}")


def test_invalid_iban_is_left_alone():
    assert "IBAN" not in Redaction().mask("code GB00 WEST 1234 5698 7654 32")


def test_external_model_sees_placeholders_and_the_reviewer_sees_the_real_text(
    store, settings, two_workspaces, fake_script
):
    with store.repo("alpha") as repo:
        repo.add(Contact(name="Dana Whitfield", email="dana.w@acme-corp.com"))
        ticket = repo.add(Ticket(subject="billing", assignee="Kenji Sato"))
        repo.session.flush()
        repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.agent, author="Kenji Sato", body="On it."))
    remote = settings.model_copy(update={"model": "openai/gpt-4o-mini"})
    assert remote.should_redact_pii and Gateway(remote).masks_pii  # on by default for remote models
    external = settings.model_copy(update={"model": "fake/scripted", "redact_pii": True})  # the fake stands in for one
    fake_script.push("Dear [PERSON_1], we will call you at [PHONE_1]. Kind regards")
    services = Services(external, store, fake=fake_script, sleep=lambda _s: None)
    with store.repo("alpha") as repo:
        outcome = services.run_task(
            repo,
            "tone_rewrite",
            {"text": "Hi Dana Whitfield, we'll call you at +1 415-555-0134.", "tone": "formal", "strategy": "model"},
        )
        row = repo.get(AiResult, outcome.ai_result_id)
        assert row.content["pii_masked"] == ["person", "phone"]
    sent = json.dumps(fake_script.calls[-1]["messages"])
    assert "Dana" not in sent and "415-555-0134" not in sent and "[PERSON_1]" in sent
    assert outcome.provenance.pii_masked == ["person", "phone"]
    assert "Dear Dana Whitfield" in outcome.result.text and "+1 415-555-0134" in outcome.result.text


def test_masking_is_off_for_the_local_model_and_can_be_forced_off(settings, fake_script):
    local = settings.model_copy(update={"model": "local/smollm2-135m-instruct"})
    assert not settings.should_redact_pii and not local.should_redact_pii
    assert not Gateway(settings).masks_pii and not Gateway(local).masks_pii
    off = settings.model_copy(update={"model": "fake/scripted", "redact_pii": False})
    fake_script.push("ok")
    Gateway(off, fake=fake_script).complete([{"role": "user", "content": "mail dana@acme.com"}])
    assert "dana@acme.com" in json.dumps(fake_script.calls[-1]["messages"])


def test_streamed_tokens_are_restored_even_when_a_placeholder_is_split(settings, fake_script):
    external = settings.model_copy(update={"model": "fake/scripted", "redact_pii": True})
    fake_script.push("Write to [EMAIL_1] today")
    tokens: list[str] = []
    completion = (
        Gateway(external, fake=fake_script)
        .listening(tokens.append)
        .complete([{"role": "user", "content": "my mail is dana@acme.com"}])
    )
    assert "".join(tokens) == "Write to dana@acme.com today" == completion.text


def test_a_contact_ingested_within_the_cache_minute_is_masked_once_the_ingest_commits(store, two_workspaces):
    from copilot.ingest import IngestReport
    from copilot.records import forget_people_names, people_names

    with store.repo("alpha") as repo:
        repo.add(Contact(name="Dana Whitfield"))
    with store.repo("alpha") as repo:
        assert "Dana Whitfield" in people_names(repo)  # cached now
    with store.repo("alpha") as repo:
        contact = repo.add(Contact(name="Kenji Sato"))
        repo.session.flush()
        forget_people_names(repo, IngestReport(source="test", written_ids={"contact": [contact.id]}))
    with store.repo("alpha") as repo:
        assert "Kenji Sato" in people_names(repo)
    with store.repo("alpha") as repo:
        repo.add(Contact(name="Mia Okafor"))  # written outside an ingest: the cache holds for its minute
    with store.repo("alpha") as repo:
        assert "Mia Okafor" not in people_names(repo)
