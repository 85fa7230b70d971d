"""The web pages: login by API key with CSRF-protected forms, the review queue and ticket view, and real browser
runs in Debian's Chromium with every request off this machine blocked (the workspace walk, /docs and /redoc offline,
the NPS dashboard)."""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from copilot.auth import create_key
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import AiResult, AiStatus, AuthorKind, Message, Priority, Ticket
from copilot.tasks.base import Provenance, TaskOutcome, save_outcome
from copilot.tasks.tone_rewrite import Rewrite

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def queue_rewrite(store: Store, text: str, commitments: list[str] | None = None) -> int:
    with store.repo("alpha") as repo:
        outcome = TaskOutcome[Rewrite](
            task="tone_rewrite",
            result=Rewrite(tone="friendly", original=text, text=text),
            provenance=Provenance(task="tone_rewrite"),
        )
        row = save_outcome(repo, outcome, subject_kind="text", subject_id=None)
        if commitments:
            row.content = {**row.content, "result": {**row.content["result"], "needs_explicit_approval": commitments}}
        return row.id


@pytest.fixture
def site(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", model="fake/echo", index_on_ingest=False)
    store = Store.from_settings(settings)
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        ticket = repo.add(Ticket(external_id="T-1", subject="Charged twice"))
        repo.session.flush()
        repo.add(
            Message(
                ticket_id=ticket.id,
                author_kind=AuthorKind.customer,
                author="Dana",
                body="I was charged twice, I am so angry!",
            )
        )
        keys = {role: create_key(repo, role, role)[0] for role in ("agent", "marketing", "admin")}
        ticket_id = ticket.id
    return settings, store, keys, ticket_id


@pytest.fixture
def site_app(site, fake_model):
    """A new app on the site's store, answering ``fake/...`` calls with the test's fake model."""
    settings, store, _, _ = site

    def build():
        return create_app(services=Services(settings, store, fake=fake_model, sleep=lambda _seconds: None))

    return build


def login(client: TestClient, key: str) -> None:
    token = CSRF.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"api_key": key, "csrf": token}, follow_redirects=False)
    assert response.status_code == 303, response.text


def test_pages_need_a_login_and_the_login_form_is_csrf_protected(site, site_app):
    settings, store, keys, _ = site
    with TestClient(site_app()) as client:
        assert client.get("/review", follow_redirects=False).headers["location"].startswith("/login")
        forged = client.post(
            "/login", data={"api_key": keys["agent"], "csrf": "forged"}, headers={"Accept": "text/html"}
        )
        assert forged.status_code == 403 and "CSRF" in forged.text
        token = CSRF.search(client.get("/login").text).group(1)
        wrong = client.post("/login", data={"api_key": "cpk_x_y", "csrf": token})
        assert wrong.status_code == 401 and "unknown API key" in wrong.text
        login(client, keys["agent"])
        page = client.get("/review")
        assert page.status_code == 200 and "Review queue" in page.text and "agent" in page.text


def test_review_page_approves_edits_and_rejects_through_forms(site, site_app):
    settings, store, keys, _ = site
    first, second, third = (
        queue_rewrite(store, t) for t in ("Thanks, Dana.", "We refunded $20 on 3 May.", "Sorry for that.")
    )
    with TestClient(site_app()) as client:
        login(client, keys["agent"])
        page = client.get("/review").text
        token = CSRF.search(page).group(1)
        assert all(f'id="item-{i}"' in page for i in (first, second, third))
        client.post(f"/review/{first}/decide", data={"decision": "approve", "version": 1, "csrf": token})
        edit = {"decision": "edit", "version": 1, "text": "We refunded $20 on 3 May. Sorry!", "csrf": token}
        unconfirmed = client.post(f"/review/{second}/decide", data=edit)  # the edit promises a refund
        assert "confirm the commitment explicitly" in unconfirmed.text
        client.post(f"/review/{second}/decide", data={**edit, "confirm_commitments": "true"})
        reject = {"decision": "reject", "version": 1, "csrf": token}
        assert "say why you reject it" in client.post(f"/review/{third}/decide", data=reject).text
        after = client.post(f"/review/{third}/decide", data={**reject, "reason": "wrong tone"})
        assert "rejected" in after.text
        stale = client.post(f"/review/{first}/decide", data={"decision": "approve", "version": 1, "csrf": token})
        assert "you saw version 1" in stale.text
        forged = client.post(
            f"/review/{first}/decide",
            data={"decision": "approve", "version": 2, "csrf": "x"},
            headers={"Accept": "text/html"},
        )
        assert forged.status_code == 403
    with store.repo("alpha") as repo:
        rows = {r.id: r for r in repo.all(repo.select(AiResult))}
    assert (rows[first].status, rows[second].status, rows[third].status) == (
        AiStatus.approved,
        AiStatus.edited,
        AiStatus.rejected,
    )
    assert rows[second].final_text.endswith("Sorry!")


def test_batch_approve_skips_items_with_commitments(site, site_app):
    settings, store, keys, _ = site
    safe = queue_rewrite(store, "Thanks, Dana.")
    risky = queue_rewrite(store, "We will refund you today.", ["refund"])
    with TestClient(site_app()) as client:
        login(client, keys["agent"])
        page = client.get("/review").text
        assert f'value="{safe}:1"' in page and f'value="{risky}:1"' not in page  # no batch checkbox for commitments
        token = CSRF.search(page).group(1)
        response = client.post("/review/batch", data={"csrf": token, "item": [f"{safe}:1", f"{risky}:1"]})
        assert "Approved 1 item(s)" in response.text and "needs a decision of its own (commitment" in response.text


def test_ticket_page_shows_thread_sentiment_and_runs_tasks(site, site_app):
    settings, store, keys, ticket_id = site
    with TestClient(site_app()) as client:
        login(client, keys["agent"])
        page = client.get(f"/tickets/{ticket_id}").text
        assert (
            "I was charged twice" in page
            and 'class="sentiment-chart" id="ticket-sentiment"' in page
            and "No summary yet" in page
            and "shipped head" in page
        )
        token = CSRF.search(page).group(1)
        page = client.post(f"/tickets/{ticket_id}/act", data={"action": "summarize", "csrf": token}).text
        assert "Summary refreshed" in page and "Intent:" in page
        login(client, keys["marketing"])
        assert client.get(f"/tickets/{ticket_id}", headers={"Accept": "text/html"}).status_code == 403


# -- a real browser ------------------------------------------------------------------------------
CHROMIUM = next(
    (
        p
        for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
        if p and Path(p).exists()
    ),
    None,
)


@pytest.fixture
def browser_site(site, site_app):
    require_browser()
    from api.server import background_server

    settings, store, keys, ticket_id = site
    with background_server(site_app()) as base:
        yield base, store, keys, ticket_id


def require_browser() -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium before the tests")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")


@contextmanager
def offline_page(playwright, **options):
    """A page in Debian's Chromium whose every request off this machine is aborted and recorded; the block fails
    when any was attempted, or when the page hit a script error or a Content-Security-Policy violation."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    )
    context = browser.new_context(**options)
    outside, problems = [], []

    def only_this_machine(route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_machine)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda m: "Content Security Policy" in m.text and problems.append(f"CSP: {m.text}"))
    try:
        yield page
    finally:
        browser.close()
    assert outside == [], f"requests off this machine were attempted: {outside}"
    assert problems == []


def log_in(page, base: str, key: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.fixture
def workspace_site(tmp_path, fake_model):
    """The seeded workspace of tests/test_workspace.py plus a second page of low-priority tickets, indexed for search
    (bag-of-letters vectors), served on a loopback port."""
    require_browser()
    from api.server import background_server
    from tests.fakes import FakeEmbedder
    from tests.test_workspace import NOW, _draft, _ticket, seed_workspace

    settings = Settings(data_dir=tmp_path / "data", model="fake/echo", index_on_ingest=False)
    store = Store.from_settings(settings)
    seeded = seed_workspace(store)
    services = Services(settings, store, fake=fake_model, embedder=FakeEmbedder(), sleep=lambda _seconds: None)
    with store.repo("alpha") as repo:
        seeded.ids["extra"] = []
        for n in range(18):  # one draft per ticket: approving one must not supersede the others
            ticket = _ticket(
                repo, f"T-{10 + n}", f"Small ask {n}", None, None, Priority.low, None, timedelta(minutes=20), "Hi!"
            )
            seeded.ids["extra"].append(_draft(repo, ticket.id, f"Reply {n}", NOW - timedelta(minutes=2)).id)
        for kind, model in (("ticket", Ticket), ("message", Message)):
            services.index.index_records(
                repo, kind, repo.session.scalars(repo.select(model).with_only_columns(model.id)).all()
            )
    with background_server(create_app(services=services)) as base:
        yield base, store, seeded


def status_of(store: Store, result_id: int) -> AiStatus:
    with store.repo("alpha") as repo:
        return repo.get(AiResult, result_id).status


@pytest.mark.slow
def test_browser_agent_workspace_walk(workspace_site):
    """One seeded site, walked as a support lead would in Chromium with every outside request blocked: the queue's
    order, size, filters and counts; an edit that adds commitments names them; reject asks why and can be undone;
    decisions keep the place (page and filters); the ticket page's customer panel, rewrite diff and composer
    (approve & send supersedes the other drafts); export without [S#] markers; the search box; external-id URLs;
    the friendly error page."""
    from playwright.sync_api import expect, sync_playwright

    base, store, seeded = workspace_site
    ids = seeded.ids
    with sync_playwright() as p, offline_page(p, viewport={"width": 1280, "height": 900}) as page:
        log_in(page, base, seeded.keys["admin"])
        page.goto(f"{base}/review")
        # the queue follows the work: priority, then SLA breach risk, then age; compact cards; counts per filter
        shown = page.locator("article.item").evaluate_all("items => items.map(i => Number(i.dataset.id))")
        work_order = ["urgent", "older", "draft", "rewrite", "breached", "call_summary", "low"]
        assert shown[:7] == [ids[name] for name in work_order] and len(shown) == 20
        assert page.evaluate("document.documentElement.scrollHeight") < 4000  # 20 cards, not 21,000 px
        assert page.locator("#queue-count").inner_text() == "25 pending"
        call_card = page.locator(f"#item-{ids['call_summary']}")
        call_card.locator("details.more > summary").click()
        expect(call_card.locator(".call-summary")).to_contain_text("Send a revised quote")
        assert "Rita" in call_card.locator(".call-summary table").inner_text()  # action items with their owners
        page.select_option("select[name=priority]", "high")
        page.wait_for_url("**/review?*priority=high*")
        assert page.locator("article.item").count() == 3 and "(3)" in page.locator("select[name=task]").inner_text()
        page.select_option("select[name=priority]", "")
        page.wait_for_load_state()

        # an edit that adds commitments shows the confirmation naming them; the browser will not send it unconfirmed
        urgent = page.locator(f"#item-{ids['urgent']}")
        urgent.locator(".task").click()
        page.keyboard.press("e")
        area = urgent.locator("form.edit textarea")
        expect(area).to_be_focused()
        area.fill("We will refund the duplicate charge today and credit you a free month.")
        confirmation = urgent.locator("form.edit .confirm-edit")
        expect(confirmation).to_be_visible()
        named = confirmation.locator(".kinds").inner_text()
        assert "refund" in named and "credit" in named, named
        urgent.locator("form.edit button[type=submit]").click()
        assert status_of(store, ids["urgent"]) is AiStatus.pending  # blocked by the required confirmation
        confirmation.locator("input").check()
        urgent.locator("form.edit button[type=submit]").click()
        expect(page.locator(".flash.ok")).to_have_text(f"AI result {ids['urgent']} edited and approved.")
        assert page.url.endswith(f"/review#item-{ids['older']}")  # back at the same place: the next item
        assert page.locator("article.item.current").get_attribute("data-id") == str(ids["older"])

        # reject asks for a reason, and can be undone before anything is sent
        page.evaluate("document.querySelector('.queue').dataset.undoMs = '1500'")
        low = page.locator(f"#item-{ids['low']}")
        low.locator(".task").click()
        page.keyboard.press("r")
        reason = low.locator("form.reject input[name=reason]")
        expect(reason).to_be_focused()
        reason.type("not needed")
        page.keyboard.press("Enter")
        expect(page.locator(".toast.pending")).to_contain_text(f"Rejecting #{ids['low']}")
        page.locator(".toast.pending button.undo").click()
        expect(page.locator(".toast")).to_contain_text(f"Kept #{ids['low']}")
        page.wait_for_timeout(2000)  # past the undo delay: nothing was sent
        assert status_of(store, ids["low"]) is AiStatus.pending and low.is_visible()
        page.evaluate("document.querySelector('.queue').dataset.undoMs = '300'")
        low.locator(".task").click()
        page.keyboard.press("r")
        page.keyboard.press("Enter")  # the reason is still there
        expect(page.locator(".toast.ok", has_text=f"AI result {ids['low']} rejected.")).to_be_visible()
        expect(low).to_have_count(0)
        assert status_of(store, ids["low"]) is AiStatus.rejected
        expect(page.locator("#queue-count")).to_have_text("23 pending")

        # a decision on page 2 comes back to page 2
        page.goto(f"{base}/review?page=2")
        first = page.locator("article.item").first
        first_id = first.get_attribute("data-id")
        first.locator("form.approve button").click()
        expect(page.locator(".flash.ok")).to_have_text(f"AI result {first_id} approved.")
        assert "page=2" in page.url and page.locator(".pager a.on").inner_text() == "2"

        # the ticket page, by its external id: the customer beside the thread, internal notes marked, the rewrite
        # as a diff; applying it fills the composer, and sending approves it and supersedes the other drafts
        page.goto(f"{base}/tickets/T-1")
        customer = page.locator("#customer")
        for text in ("Acme Corp", "Dana Reyes", "Omar Ortiz", "T-3", "T-5", "Acme expansion", "Billing errors again"):
            expect(customer).to_contain_text(text)
        assert page.locator("#customer-trend circle").count() >= 2
        expect(page.locator("#customer-trend")).to_contain_text("negative -1")
        expect(page.locator(".msg.internal_note .note-tag")).to_have_text("Internal note · not sent to the customer")
        expect(page.locator(f"#rewrite-{ids['rewrite']} ins")).to_contain_text("thanks for your patience!")
        page.locator(f"#rewrite-{ids['rewrite']} a", has_text="Apply to the reply").click()
        reply = page.locator("#composer textarea[name=text]")
        assert "thanks for your patience!" in reply.input_value() and "[S1]" not in reply.input_value()
        if page.locator("#composer .confirm-edit").is_visible():
            page.locator("#composer .confirm-edit input").check()
        page.select_option("#composer select[name=then_status]", "pending")
        page.locator("#composer button[type=submit]").click()
        expect(page.locator(".flash.ok")).to_contain_text(f"Reply {ids['rewrite']} approved")
        statuses = [status_of(store, ids[name]) for name in ("rewrite", "draft", "older")]
        assert statuses == [AiStatus.approved, AiStatus.superseded, AiStatus.superseded]
        expect(page.locator(".ticket-head .badge")).to_have_text("pending")
        expect(page.locator(".activity")).to_contain_text("ticket.updated")

        # what is exported has no [S#] markers (the stored draft keeps them)
        exported = page.evaluate(
            "Promise.all(['reply_draft', 'tone_rewrite'].map(t => fetch('/v1/review/export?task=' + t)"
            ".then(r => r.text()))).then(parts => parts.join(''))"
        )
        texts = [json.loads(line)["text"] for line in exported.splitlines()]
        assert any("thanks for your patience!" in t for t in texts) and not any(
            re.search(r"\[S\d+\]", t) for t in texts
        )

        # the search box in the navigation bar: hybrid search, each hit linked to its page
        page.fill(".global-search input[name=q]", "refund duplicate")
        page.keyboard.press("Enter")
        page.wait_for_url("**/search?q=refund*")
        hit = page.locator("#search-results li.hit a", has_text="T-1").first
        expect(hit).to_be_visible()
        hit.click()
        page.wait_for_url("**/tickets/T-1*")

        # external ids in every page path; a friendly error page for what does not exist
        page.goto(f"{base}/deals/D-1")
        expect(page.locator("h1")).to_contain_text("Acme expansion")
        response = page.goto(f"{base}/tickets/T-404")
        assert response.status == 404
        expect(page.locator("h1")).to_have_text("Nothing here")
        expect(page.locator(".error-page .flash")).to_contain_text("T-404")
        expect(page.locator(".error-page input[name=q]")).to_be_visible()


@pytest.mark.slow
def test_browser_api_docs_render_offline(browser_site):
    """/docs (Swagger UI) and /redoc render from the app's own assets with every outside request blocked."""
    from playwright.sync_api import expect, sync_playwright

    base, _, _, _ = browser_site
    with sync_playwright() as p, offline_page(p) as page:
        page.goto(f"{base}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("copilot")
        assert page.locator(".swagger-ui .opblock").count() > 20
        page.goto(f"{base}/redoc")
        expect(page.locator("h1").first).to_contain_text("copilot", timeout=20_000)
        assert page.locator("[data-section-id]").count() > 20


def test_eval_review_page_shows_the_last_run_against_its_baseline(site, site_app, monkeypatch):
    from typer.testing import CliRunner

    from copilot.cli.main import app

    settings, store, keys, _ = site
    with TestClient(site_app()) as client:
        login(client, keys["admin"])
        assert "No eval run yet" in client.get("/evals").text
        monkeypatch.setenv("COPILOT_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("COPILOT_MODEL", "local/smollm2-135m-instruct")  # the default strategies: no generation
        suite = Path(__file__).resolve().parents[1] / "evals" / "suites" / "tone_rewrite.yaml"
        result = CliRunner().invoke(app, ["eval", "run", "--suite", str(suite)])
        assert result.exit_code == 0, result.output
        page = client.get("/evals").text
        assert "tone_rewrite" in page and "baseline approved by" in page and "chrF" in page
        login(client, keys["agent"])
        assert client.get("/evals", headers={"Accept": "text/html"}).status_code == 403


def seed_nps(store: Store, settings: Settings) -> int:
    from datetime import datetime, timedelta

    from copilot.store.models import NpsResponse
    from copilot.tasks.nps_themes import ThemeFilters, run_themes

    comments = [
        "The app is slow to load every morning",
        "Support answered fast and kindly",
        "Pricing is too expensive for small teams",
        "Loading dashboards takes forever",
        "Great support team, very helpful",
        "Too expensive compared to others",
    ]
    now = datetime.now(UTC)
    with store.repo("alpha") as repo:
        for n in range(90):
            repo.add(
                NpsResponse(
                    external_id=f"N-{n}",
                    score=n % 11,
                    comment=f"{comments[n % len(comments)]} ({n})",
                    submitted_at=now - timedelta(days=n % 60),
                )
            )
    services = Services(settings, store, sleep=lambda _seconds: None)
    try:
        with store.repo("alpha") as repo:
            outcome = run_themes(services.context(repo, task="nps_themes"), ThemeFilters(), seed=0)
    finally:
        services.close()
    return outcome.result.run_id


def test_nps_dashboard_and_deal_page_render(site, site_app):
    from copilot.store.models import Deal, DealStage

    settings, store, keys, _ = site
    run_id = seed_nps(store, settings)
    with store.repo("alpha") as repo:
        deal = repo.add(Deal(name="Acme expansion", stage=DealStage.negotiation, owner="Rita"))
        repo.session.flush()
        deal_id = deal.id
    with TestClient(site_app()) as client:
        login(client, keys["marketing"])
        page = client.get("/nps").text
        assert (
            f"run {run_id}" in page
            and 'id="split-chart"' in page
            and 'class="promoters"' in page
            and "response N-" in page
        )
        assert client.get(f"/deals/{deal_id}", headers={"Accept": "text/html"}).status_code == 403
        login(client, keys["admin"])
        page = client.get(f"/deals/{deal_id}").text
        assert "No brief yet" in page
        token = CSRF.search(page).group(1)
        page = client.post(f"/deals/{deal_id}/brief", data={"csrf": token}).text
        assert "Brief refreshed" in page and "Suggested next step" in page and "Risks" in page


@pytest.mark.slow
def test_browser_nps_dashboard_renders_its_charts(browser_site, tmp_path):
    from io import BytesIO

    from PIL import Image
    from playwright.sync_api import sync_playwright

    base, store, keys, _ = browser_site
    settings = Settings(data_dir=tmp_path / "unused", model="fake/echo")
    seed_nps(store, settings)
    with sync_playwright() as p, offline_page(p, viewport={"width": 1280, "height": 900}) as page:
        page.goto(f"{base}/login")
        page.fill("#api_key", keys["marketing"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/nps")
        chart = page.locator("#split-chart")
        assert page.locator("#split-chart rect.promoters").count() >= 2
        box = chart.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 40
        shot = Image.open(BytesIO(chart.screenshot(path=str(tmp_path / "nps-dashboard.png")))).convert("RGB")
        colours = shot.getcolors(maxcolors=1 << 16) or []
        greens = sum(
            count for count, (r, g, b) in colours if g > 90 and g > r + 40 and g > b + 20
        )  # promoter bars drawn
        reds = sum(count for count, (r, g, b) in colours if r > 140 and r > g + 60)  # detractor bars drawn
        assert greens > 200 and reds > 100, (greens, reds)
        page.locator("details summary").first.click()  # quotes open on click
        assert page.locator("ul.quotes li").first.is_visible()
