"""Tone rewrite: fact preservation, signature and quotes, unchanged detection, custom tones, model path."""

from __future__ import annotations

import re

import pytest

from copilot.errors import InvalidInput
from copilot.services import Services
from copilot.store import get_or_create_workspace
from copilot.store.models import AiResult, AiStatus
from copilot.tasks.tone_rules import ACKNOWLEDGEMENT, CLOSERS, rewrite_by_rules
from copilot.tasks.tones import reset_tones, set_custom_tone, workspace_tones

DRAFT = (
    "Hi Ana,\nYour refund of $49.00 for INV-2026-0042 is DONE!!! Don't worry, it'll show up by March 9."
    "\n\n> we were charged twice\n\nBest regards,\nLiam Chen"
)
FORMAL_CLOSER = CLOSERS["formal"]["en"]


def formal_body(text: str) -> str:
    """The formal rewrite without the closer it adds."""
    return rewrite_by_rules(text, "formal").removesuffix(FORMAL_CLOSER).rstrip()


@pytest.fixture
def workspace(store):
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    return "alpha"


@pytest.fixture
def run(store, settings, fake_model):
    """Run the tone_rewrite task on a model, in its own transaction."""

    def run(text, tone, model="fake/scripted", **params):
        services = Services(settings.model_copy(update={"model": model}), store, fake=fake_model, sleep=lambda _s: None)
        try:
            with store.repo("alpha") as repo:
                return services.run_task(repo, "tone_rewrite", {"text": text, "tone": tone, **params})
        finally:
            services.close()

    return run


def test_rewrite_that_drops_a_price_is_rejected_with_what_was_lost(store, run, fake_script, workspace):
    fake_script.push(
        "Hi Ana,\nGood news: your refund for INV-2026-0042 is complete and will show up by March 9."
        "\n\n> we were charged twice"
    )
    outcome = run(DRAFT, "friendly", strategy="model")
    assert outcome.used_fallback and outcome.fallback_reason == "model rewrite lost facts"
    lost = next(v for v in outcome.verdicts if v.name == "fact_preservation")
    assert not lost.passed and any("49" in d for d in lost.details)
    assert "$49.00" in outcome.result.text  # the fallback kept it


def test_good_model_rewrite_keeps_signature_and_quotes(store, run, fake_script, workspace):
    fake_script.push(
        "Here is the rewritten message:\n\nHello Ana!\nGreat news: your refund of $49.00 for INV-2026-0042 is done "
        "and should show up by March 9.\n\n> we were charged twice"
    )
    outcome = run(DRAFT, "friendly", strategy="model")
    assert not outcome.used_fallback and not outcome.result.lost and not outcome.result.unchanged
    assert outcome.result.text.startswith("Hello Ana!")  # the preamble is not part of the rewrite
    assert outcome.result.text.endswith("Best regards,\nLiam Chen")  # the model never saw the signature
    with store.repo("alpha") as repo:
        assert repo.get(AiResult, outcome.ai_result_id).status is AiStatus.pending


def test_rewrite_that_drops_a_quoted_line_is_rejected(store, run, fake_script, workspace):
    fake_script.push("Hello Ana! Your refund of $49.00 for INV-2026-0042 is done and shows up by March 9.")
    outcome = run(DRAFT, "friendly", strategy="model")
    lost = next(v for v in outcome.verdicts if v.name == "fact_preservation")
    assert any("quoted line" in d for d in lost.details) and "> we were charged twice" in outcome.result.text


def test_unchanged_rewrite_is_reported_as_such(store, run, workspace):
    text = "Thanks for the update, the export works now."
    outcome = run(text, "fix_grammar", model="local/smollm2-135m-instruct")
    assert outcome.result.unchanged
    assert next(v for v in outcome.verdicts if v.name == "changed").passed is False


BLUNT = "We can't refund you. Your plan renewed on 3 March for $49 and that's final. Read the terms."


@pytest.mark.parametrize("tone", ["friendly", "empathetic", "formal", "expand", "concise"])
def test_a_small_model_rewrite_changes_the_text_in_the_asked_direction(run, workspace, tone):
    outcome = run(BLUNT, tone, model="local/smollm2-135m-instruct")
    rewrite = outcome.result
    assert not rewrite.unchanged and not rewrite.lost and rewrite.text != BLUNT, rewrite.text
    assert "3 March" in rewrite.text and "$49" in rewrite.text and not rewrite.needs_explicit_approval
    if tone != "expand":  # the clause that closes the door goes; expand only adds
        assert "final" not in rewrite.text
    if tone in ("friendly", "empathetic"):
        assert "Read the terms." not in rewrite.text
    if tone == "concise":  # the clause that says nothing goes
        assert rewrite.text == "We can't refund you. Your plan renewed on 3 March for $49. Read the terms."
    if tone == "formal":  # an order to read the terms becomes a formal reference to them
        assert "Please refer to our terms." in rewrite.text and "cannot" in rewrite.text


def test_formal_writes_out_chat_slang():
    casual = "hey Dana, cuz the export is broken we gonna fix it asap tho. thx"
    formal = rewrite_by_rules(casual, "formal")
    assert not re.search(r"\b(cuz|asap|tho|gonna|thx)\b", formal, re.I), formal
    assert formal.startswith("Dear Dana,") and "as soon as possible" in formal


def test_a_model_that_copies_the_input_gives_way_to_the_rules(run, fake_script, workspace):
    fake_script.push(BLUNT)  # what Qwen 1.5B did with the old prompt
    outcome = run(BLUNT, "friendly", strategy="model")
    assert outcome.used_fallback and "unchanged" in outcome.fallback_reason and not outcome.result.unchanged
    prompt = fake_script.calls[-1]["messages"]
    assert sum(m["role"] == "assistant" for m in prompt) >= 2  # few-shot examples of real rewrites


def test_a_capable_model_rewrites_by_the_rules_unless_asked_for_the_model(run, fake_script, workspace):
    # measured on ParaDetox and the Bitext tone set: the rules beat both Qwen models on chrF and direction
    outcome = run(BLUNT, "friendly")
    assert outcome.provenance.model == "rules" and not fake_script.calls and not outcome.result.unchanged
    fake_script.push("We're sorry, but we can't refund you. Your plan renewed on 3 March for $49. Thanks!")
    assert run(BLUNT, "friendly", strategy="model").provenance.model == "fake/scripted"


def test_a_spanish_text_gets_spanish_additions(run, workspace):
    outcome = run("No podemos devolver el pago de la factura INV-9.", "friendly", model="local/smollm2-135m-instruct")
    assert "Gracias" in outcome.result.text and "Thanks" not in outcome.result.text


def test_rule_rewrite_calms_rude_text_and_keeps_facts():
    out = rewrite_by_rules("This STUPID app charged me $49 TWICE!!! Fix it, you idiots.", "neutral")
    assert "stupid" not in out.lower() and "idiots" not in out.lower() and "!!!" not in out
    assert "$49" in out
    assert rewrite_by_rules("Don't worry, I'm on it.", "formal") == f"Do not worry, I am on it. {FORMAL_CLOSER}"


@pytest.mark.parametrize(
    ("rude", "neutral"),
    [
        ("You are an idiot.", "You are wrong."),  # a predicate keeps its sentence whole, no dangling "an"
        ("What an idiotic idea, a stupid, useless app.", "What an idea, an app."),  # articles agree again
        ("He doesn't give a damn about refunds.", "He doesn't care about refunds."),
        ("these fools broke the export", "these people broke the export"),  # a noun keeps its place and case
        ("You screwed up my order #4411", "You messed up my order #4411"),
        ("Fix it, you idiots.", "Fix it."),  # an insult said to the reader goes
        ("This app sucks and you look like clowns", "This app is bad and you look bad"),
        ("This app Sucks.", "This app is bad."),  # capitalised: still the present tense
        ("Nobody there gives a shit about invoice 88.", "Nobody there cares about invoice 88."),
        ("Stop being a bitch and refund me", "Stop being wrong and refund me"),
        ("Those bitches never answer.", "Those people never answer."),
        ("Get the fuck out of my inbox, fuckin spam", "Get out of my inbox, spam"),
        ("Move your lazy ass and fix that shit today", "Move you and fix that today"),
        ("WTF! why is my invoice wrong", "why is my invoice wrong"),  # no stray "!" where the word was
        ("I did not say shit about .NET", "I did not say anything about .NET"),  # ".NET" keeps its space
    ],
)
def test_neutral_rewrite_replaces_rude_wording_instead_of_leaving_holes(rude, neutral):
    assert rewrite_by_rules(rude, "neutral") == neutral


def test_concise_cuts_courtesy_only_sentences_but_keeps_any_with_a_fact():
    reply = (
        "Certainly! I understand you want to cancel order 7321. I'm here to help you with that. "
        "Don't worry, I'm here to guide you through the process. I'll help you with order 7321 today."
    )
    out = rewrite_by_rules(reply, "concise")
    assert out == "I understand you want to cancel order 7321. I'll help you with order 7321 today."
    assert rewrite_by_rules("Certainly! I am really here to help.", "concise") == "Certainly! I am here to help."


def test_formal_writes_plain_verbs_formally_even_without_slang():
    reply = "Let me help you with that. Go to the Billing page.\n3. Find the invoice and tell us if it is wrong."
    assert formal_body(reply) == (
        "Allow me to assist you with that. Proceed to the Billing page.\n"
        "3. Find the invoice and inform us if it is wrong."
    )
    assert rewrite_by_rules("Let me know if you need anything.", "formal") == "Let me know if you need anything."
    assert formal_body("Help you with that? Certainly.") == "Assist you with that? Certainly."


def test_custom_tones_can_be_added_and_reset(store, run, workspace):
    with store.repo("alpha") as repo:
        set_custom_tone(repo, "pirate", "Talk like a polite pirate.")
    with store.repo("alpha") as repo:
        assert workspace_tones(repo)["pirate"] == "Talk like a polite pirate."
        with pytest.raises(InvalidInput, match="tone name"):
            set_custom_tone(repo, "Bad Name!", "x")
        reset_tones(repo)
    with store.repo("alpha") as repo:
        assert "pirate" not in workspace_tones(repo) and "friendly" in workspace_tones(repo)


def test_unknown_tone_and_empty_text_are_clear_errors(store, run, workspace):
    with pytest.raises(InvalidInput, match="unknown tone 'shouty'"):
        run("hello", "shouty")
    with pytest.raises(InvalidInput, match="nothing to rewrite"):
        run("   ", "friendly")


def test_rewrite_of_a_stored_draft(store, run, workspace):
    with store.repo("alpha") as repo:
        draft = repo.add(
            AiResult(task="reply_draft", subject_kind="ticket", content={"result": {"text": "ok, it's fixed"}})
        )
        repo.session.flush()
        draft_id = draft.id
    outcome = run(None, "fix_grammar", model="local/smollm2-135m-instruct", draft_id=draft_id)
    assert outcome.result.text == "Ok, it's fixed"
    with store.repo("alpha") as repo:
        row = repo.get(AiResult, outcome.ai_result_id)
        assert row.subject_kind == "ai_result" and row.subject_id == draft_id


def test_friendly_asks_instead_of_ordering_but_leaves_how_to_steps_alone():
    out = rewrite_by_rules("Send me the invoice. Fix the address today.\n1. Open Settings.", "friendly")
    assert "Please send me the invoice. Please fix the address today." in out
    assert "\n1. Open Settings." in out


@pytest.mark.parametrize(
    "text",
    [
        "I understand that you need to modify order 732201349959.",
        "Here's what you need to do: sign in first.",
        "If you do not receive it by Friday, I don't know why.",
    ],
)
def test_a_request_is_made_only_of_an_order_that_opens_a_sentence(text):
    out = rewrite_by_rules(text, "friendly")
    assert "Please" not in out and text.rstrip(".") in out
    assert rewrite_by_rules("You must pay now. Don't call us.", "friendly").startswith(
        "Thanks for reaching out! Please pay now. Please don't call us."
    )


def test_an_empathetic_opener_does_not_repeat_an_acknowledgement_the_reply_already_makes():
    out = rewrite_by_rules("I understand that your export failed twice. Run it again from Reports.", "empathetic")
    assert out.startswith("I'm sorry for the trouble this has caused. I understand that your export failed twice.")
    assert out.count("understand") == 1
    plain = rewrite_by_rules("The export failed twice. Run it again from Reports.", "empathetic")
    assert plain.startswith("I'm sorry for the trouble this has caused, and I understand how frustrating it is.")


def test_an_empathetic_rewrite_of_a_reply_to_a_plain_request_apologises_for_nothing():
    out = rewrite_by_rules("Certainly! Sign in and open Orders to cancel order 42.", "empathetic")
    assert out.startswith("Certainly! I know how much it matters to get this sorted, and I'm glad to help. Sign in")
    assert "sorry" not in out and out.count("Certainly") == 1  # no apology, and the "Certainly!" stays first
    trouble = rewrite_by_rules("Certainly! The export failed, so run it again.", "empathetic")
    assert trouble.startswith("I'm sorry for the trouble this has caused") and "Certainly" not in trouble
    policy = "I can explain our refund policy:\n\n1. If the product is defective, you get a full refund."
    assert "sorry" not in rewrite_by_rules(policy, "empathetic")  # a question about refunds, its terms in a list
    download = rewrite_by_rules("You can download the latest invoice from Billing later today.", "empathetic")
    assert "sorry" not in download  # "download", "latest", "later" speak of no trouble
    assert rewrite_by_rules("Sure! Your order 42 ships today.", "friendly").startswith(
        "Thanks for reaching out! Your order 42 ships today."
    )


def test_formal_wording_stays_grammatical():
    cases = {
        "I'm here to provide the help you need.": "I am here to provide the help you need.",
        "This will help us assist you.": "This will help us assist you.",
        "I'm here to help you troubleshoot it.": "I am here to help you troubleshoot it.",
        "We're here to help you with that.": "We are here to assist you with that.",
        "I'm sorry to hear that.": "I am sorry to hear that.",
        "I'm sorry for the delay.": "I apologize for the delay.",
        'Open the tab labelled "Account Settings."': 'Open the tab labelled "Account Settings."',
    }
    assert {text: formal_body(text) for text in cases} == cases


def test_a_closer_goes_before_the_sign_off_and_only_where_the_reply_offers_no_more_help():
    reply = "Hi Ana,\n\nwe fixed it cuz the sync was broken.\n\nCheers,\nBob"
    assert rewrite_by_rules(reply, "formal") == (
        f"Dear Ana,\n\nWe fixed it because the sync was broken. {FORMAL_CLOSER}\n\nKind regards,\nBob"
    )
    friendly = rewrite_by_rules(reply, "friendly")
    assert friendly.endswith("Let me know if there's anything else I can do.\n\nCheers,\nBob")
    steps = "Here are the steps:\n\n1. Go to Billing.\n2. Open the invoice."
    assert rewrite_by_rules(steps, "formal").endswith("2. Open the invoice.\n\n" + FORMAL_CLOSER)
    offered = "Go to Billing. If you have any other questions, let us know."
    assert rewrite_by_rules(offered, "formal") == "Proceed to Billing. If you have any other questions, let us know."
    spanish = "Hemos corregido la factura INV-9. Quedamos a su disposición para cualquier consulta."
    assert rewrite_by_rules(spanish, "formal", "es") == spanish  # its own offer, in its language: no second one
    german = "Wir haben die Rechnung INV-9 korrigiert."
    assert rewrite_by_rules(german, "formal", "de") == f"{german} {CLOSERS['formal']['de']}"


def test_an_empathetic_rewrite_does_not_apologise_for_trouble_the_reply_only_supposes():
    supposed = (
        "I can add the item to order 00123842 for you. If you encounter any difficulties, reply here. "
        "Our team can also address any technical issues. No problem at all!"
    )
    assert rewrite_by_rules(supposed, "empathetic").startswith(ACKNOWLEDGEMENT)
    real = "I understand that you are having trouble adding the item to order 00123842."
    assert rewrite_by_rules(real, "empathetic").startswith("I'm sorry for the trouble this has caused.")
