"""The web pages: login by API key with CSRF-protected forms, the review queue and ticket view,
and a real browser run."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from copilot.auth import create_key
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import AiResult, AiStatus, AuthorKind, Message, Ticket
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
        after = client.post(f"/review/{third}/decide", data={"decision": "reject", "version": 1, "csrf": token})
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
            and '<svg class="timeline"' in page
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
    if CHROMIUM is None or shutil.which("chromium") is None and not Path("/usr/lib/chromium/chromium").exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium before the tests")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    from api.server import background_server

    settings, store, keys, ticket_id = site
    with background_server(site_app()) as base:
        yield base, store, keys, ticket_id


@pytest.mark.slow
def test_browser_review_flow_approve_edit_reject(browser_site):
    from playwright.sync_api import sync_playwright

    base, store, keys, _ = browser_site
    first, second, third = (
        queue_rewrite(store, t) for t in ("Thanks, Dana.", "We refunded $20 on 3 May.", "Sorry for that.")
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(f"{base}/review")
        page.fill("#api_key", keys["agent"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/review")
        page.locator(f"#item-{first} form.approve button").click()
        page.wait_for_selector(f"text=AI result {first} approved")
        page.locator(f"#item-{second} form.edit textarea").fill("We refunded $20 on 3 May. Sorry for the trouble!")
        confirmation = page.locator(f"#item-{second} form.edit .confirm-edit")
        assert confirmation.is_visible() and "refund" in confirmation.inner_text()  # named as it is typed
        confirmation.locator("input").check()
        page.locator(f"#item-{second} form.edit button").click()
        page.wait_for_selector(f"text=AI result {second} edited and approved")
        page.locator(f"#item-{third}").click()
        page.keyboard.press("r")  # the keyboard shortcut rejects the current item
        page.wait_for_selector(f"text=AI result {third} rejected")
        assert page.locator("article.item").count() == 0
        browser.close()
    with store.repo("alpha") as repo:
        rows = {r.id: r for r in repo.all(repo.select(AiResult))}
    assert (rows[first].status, rows[second].status, rows[third].status) == (
        AiStatus.approved,
        AiStatus.edited,
        AiStatus.rejected,
    )
    assert rows[second].final_text.endswith("Sorry for the trouble!")


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
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
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
        browser.close()
