"""The insight dashboard in a real browser: its SVG charts render (a screenshot is checked for drawn bars), and the
pages run under the strict CSP without errors."""

from __future__ import annotations

import pytest

from tests.test_web import CHROMIUM, browser_site, site, site_app  # noqa: F401 - the shared browser fixtures


@pytest.mark.slow
def test_browser_kpi_dashboard_and_scores_render_their_charts(browser_site, tmp_path):  # noqa: F811
    from io import BytesIO

    from PIL import Image
    from playwright.sync_api import sync_playwright

    base, store, keys, _ = browser_site
    _seed_history(store)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(f"{base}/login")
        page.fill("#api_key", keys["admin"])
        page.click("button[type=submit]")
        page.wait_for_load_state()
        page.goto(f"{base}/insights?days=365")
        chart = page.locator("#win-rate-by-source")
        assert page.locator("#support-times rect.now").count() >= 2 and chart.locator("rect.now").count() >= 2
        box = chart.bounding_box()
        assert box and box["width"] > 250 and box["height"] > 40
        shot = Image.open(BytesIO(chart.screenshot(path=str(tmp_path / "kpi-dashboard.png")))).convert("RGB")
        colours = shot.getcolors(maxcolors=1 << 16) or []
        blues = sum(n for n, (r, g, b) in colours if b > 150 and b > r + 60)  # this period's bars
        greys = sum(n for n, (r, g, b) in colours if 195 < r < 225 and abs(r - g) < 8 and abs(g - b) < 12)  # before
        assert blues > 200 and greys > 100, (blues, greys)
        assert page.locator("#nps-trend polyline.trend").count() == 1
        page.goto(f"{base}/insights/deals")
        assert page.locator("#deal-scores tbody tr").count() >= 1 and page.locator("#reliability-chart circle").count()
        page.screenshot(path=str(tmp_path / "deal-scores.png"), full_page=True)
        assert not [e for e in errors if "Content Security Policy" in e], errors
        browser.close()


def _seed_history(store) -> None:
    """Enough closed deals, tickets and NPS answers in the browser site's workspace for every chart to draw."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from copilot.store.models import AuthorKind, Deal, DealStage, Message, NpsResponse, Priority, Ticket, TicketStatus

    now = datetime.now(UTC)
    sources = ("referral", "inbound", "outbound")
    with store.repo("alpha") as repo:
        for n in range(30):
            won = n % 3 != 0
            closed = now - timedelta(days=5 + 9 * n)
            steps = [
                {"stage": "prospecting", "at": (closed - timedelta(days=40 + (0 if won else 50))).isoformat()},
                {"stage": "proposal", "at": (closed - timedelta(days=10 + (0 if won else 60))).isoformat()},
                {"stage": "closed_won" if won else "closed_lost", "at": closed.isoformat()},
            ]
            repo.add(
                Deal(
                    name=f"Past {n}",
                    stage=DealStage.closed_won if won else DealStage.closed_lost,
                    amount=Decimal(5000 + 100 * n),
                    lead_source=sources[n % 3],
                    stage_history=steps,
                    close_date=closed.date(),
                )
            )
        repo.add(
            Deal(
                name="Open one",
                stage=DealStage.proposal,
                amount=Decimal(9000),
                lead_source="referral",
                close_date=(now + timedelta(days=20)).date(),
                stage_history=[{"stage": "proposal", "at": (now - timedelta(days=5)).isoformat()}],
            )
        )
        for n in range(12):
            opened = now - timedelta(days=10 + 25 * n)
            ticket = repo.add(
                Ticket(
                    subject=f"Question {n}",
                    opened_at=opened,
                    priority=Priority.normal,
                    status=TicketStatus.solved,
                    closed_at=opened + timedelta(hours=30 + n),
                    csat_score=4 + n % 2,
                )
            )
            repo.session.flush()
            repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body="Hello?", sent_at=opened))
            repo.add(
                Message(
                    ticket_id=ticket.id,
                    author_kind=AuthorKind.agent,
                    body="Hi!",
                    sent_at=opened + timedelta(hours=2 + n),
                )
            )
            repo.add(NpsResponse(score=(n * 3) % 11, submitted_at=now - timedelta(days=15 * n)))


# -- the pages on the demo workspace --------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """The demo workspace as `copilot demo` seeds it today, the replies of its 60 newest replied tickets scored, keys
    for an admin, a lead and an agent, and the app on it (sentiment from the word classifier of test_insights)."""
    from api.app import create_app
    from copilot.auth import create_key
    from copilot.demo.generator import seed_demo
    from copilot.insights.qa_review import score_replies
    from copilot.services import Services
    from copilot.settings import Settings
    from copilot.store import Store
    from tests.test_insights import WordClassifier

    folder = tmp_path_factory.mktemp("demo-site") / "data"
    settings = Settings(data_dir=folder, model="fake/echo", index_on_ingest=False)
    store = Store.from_settings(settings)
    seed_demo(store, "demo", seed=7)
    services = Services(settings, store, sentiment=WordClassifier(), sleep=lambda _s: None)
    scored = score_replies(services, "demo", strategy="rules", limit=60)
    with store.repo("demo") as repo:
        keys = {role: create_key(repo, role, role)[0] for role in ("admin", "lead", "agent")}
    yield create_app(services=services), store, keys, scored
    store.engine.dispose()


def _demo_tickets(store):
    from copilot.store.models import Account, Ticket, TicketStatus

    with store.repo("demo") as repo:
        acme = repo.by_external_id(Account, "ACME")
        open_acme = repo.session.scalar(
            repo.select(Ticket).where(Ticket.account_id == acme.id, Ticket.status == TicketStatus.open).limit(1)
        )
        unrated = repo.session.scalar(
            repo.select(Ticket)
            .where(Ticket.status == TicketStatus.solved, Ticket.csat_score.is_(None), Ticket.account_id != acme.id)
            .limit(1)
        )
        return open_acme.external_id, unrated.external_id


def test_the_insight_pages_render_the_demo_workspace(demo_site):
    from fastapi.testclient import TestClient

    from tests.test_web import login

    app, store, keys, scored = demo_site
    assert scored.tickets == 60 and scored.replies >= 60
    acme_ticket, unrated_ticket = _demo_tickets(store)
    with TestClient(app) as client:
        login(client, keys["admin"])
        kpis = client.get("/insights").text
        charts = ("support-times", "support-rates", "sales-rates", "win-rate-by-source", "win-rate-by-stage")
        charts += ("stage-conversion", "time-in-stage", "lead-conversion-by-source", "nps-trend")
        for chart in charts:
            assert f'id="{chart}"' in kpis, chart
        assert kpis.count('rect class="now"') >= 30 and "<b>-</b>" not in kpis  # every KPI has a value
        assert [client.get(f"/insights?channel={c}&team=").status_code for c in ("", "chat")] == [200, 200]
        unknown = client.get("/insights?channel=fax", headers={"Accept": "text/html"})
        assert unknown.status_code == 422 and "&#39;fax&#39; is not a ticket channel" in unknown.text
        api_error = client.get("/v1/insights/kpis?channel=fax", headers={"Authorization": f"Bearer {keys['admin']}"})
        assert api_error.status_code == 422 and "channel" in api_error.text
        accounts = client.get("/insights/accounts").text
        assert "Acme Corporation" in accounts and accounts.count('class="band-high"') >= 1
        deals = client.get("/insights/deals").text
        assert "Acme Corporation — Enterprise expansion" in deals and deals.count("<circle") >= 3
        assert 'id="forecast-chart"' in deals and 'id="lead-scores"' in deals and "deal-refusal" not in deals
        quality = client.get("/insights/quality").text
        assert 'id="agent-scorecards"' in quality and 'id="topic-scorecards-chart"' in quality
        assert "No reply has been scored yet" not in quality
        assert "80 decided reply drafts" in client.get("/insights/quality?agreement=1").text
        panel = client.get(f"/tickets/{acme_ticket}").text
        assert 'id="ticket-insights"' in panel and "Account health" in panel
        assert "Predicted CSAT" in client.get(f"/tickets/{unrated_ticket}").text
        login(client, keys["lead"])
        assert "Reply quality" in client.get("/insights").text
        assert client.get("/insights/quality").status_code == 200
        assert client.get("/insights/deals", headers={"Accept": "text/html"}).status_code == 403
        login(client, keys["agent"])
        assert client.get("/insights/quality", headers={"Accept": "text/html"}).status_code == 403


@pytest.mark.slow
def test_browser_every_insight_page_draws_the_demo_workspace(demo_site, tmp_path):
    from io import BytesIO

    from PIL import Image
    from playwright.sync_api import sync_playwright

    from api.server import background_server
    from tests.test_web import require_browser

    require_browser()
    app, _store, keys, _ = demo_site
    pages = {
        "insights": ("#section-sales", "#win-rate-by-source rect.now"),
        "insights/accounts": ("#health", "#health svg.meter rect.risk-high"),
        "insights/deals": ("#deal-scores", "#forecast-chart rect.now"),
        "insights/quality": ("#agent-scorecards-chart", "#agent-scorecards-chart rect.now"),
    }
    with background_server(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        # script errors and CSP violations; the favicon's 404 is not a page resource (its responses are checked)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "resource" not in m.text else 0)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{base}/login")
        page.fill("#api_key", keys["admin"])
        page.click("button[type=submit]")
        page.wait_for_load_state()
        for path, (block, drawn) in pages.items():
            page.goto(f"{base}/{path}")
            assert page.locator(drawn).count() >= 1, path
            shot = Image.open(BytesIO(page.locator(block).screenshot())).convert("RGB")
            page.screenshot(path=str(tmp_path / f"{path.replace('/', '-')}.png"), full_page=True)
            colours = shot.getcolors(maxcolors=1 << 20) or []
            coloured = sum(n for n, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 60)  # bars, not text
            assert coloured > 150, (path, coloured)
        assert not errors, errors
        browser.close()
