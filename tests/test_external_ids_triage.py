"""Triage paths and the advocacy draft button take a record's external id as well as its integer id, in its own
workspace only; an unknown id is a 404 (JSON for /v1, the friendly error page for pages)."""

from __future__ import annotations

import re

import pytest

from copilot.store import get_or_create_workspace
from copilot.store.models import AiResult, Ticket, TicketRouting
from tests.test_nps_advocacy import seed
from tests.test_triage import desk, login, new_ticket  # noqa: F401 - the triage desk fixture

CHARGED = "We were charged twice this month, please refund the duplicate charge"
HTML = {"Accept": "text/html"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def desks(desk):  # noqa: F811
    """The triage desk with ticket T-501 in alpha, and a workspace beta with tickets T-BETA and T-501 of its own."""
    client, services = desk
    ids = {"alpha": new_ticket(services, CHARGED, external_id="T-501")}
    with services.store.session() as session:
        get_or_create_workspace(session, "beta")
    with services.store.repo("beta") as repo:
        beta = repo.add(Ticket(external_id="T-BETA", subject="Beta"))
        same_ref = repo.add(Ticket(external_id="T-501", subject="Beta's own T-501"))
        repo.session.flush()
        ids |= {"beta": beta.id, "beta_501": same_ref.id}
    return client, services, ids


def assert_json_404(response, ref: str) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["type"] == "not_found" and error["message"] == f"no ticket '{ref}' in workspace 'alpha'"


def assert_page_404(response, ref: str) -> None:
    assert response.status_code == 404 and "<h1>Nothing here</h1>" in response.text
    assert f"no ticket &#39;{ref}&#39; in workspace &#39;alpha&#39;" in response.text


def routing_of(services, ticket_id: int) -> TicketRouting | None:
    with services.store.repo("alpha") as repo:
        return repo.session.scalar(repo.select(TicketRouting).where(TicketRouting.ticket_id == ticket_id))


def login_marketing(client, key: str) -> str:
    login(client, key)
    return CSRF.search(client.get("/advocacy").text).group(1)


# -- the API ------------------------------------------------------------------------------------------------------
def test_the_triage_api_takes_an_external_id_like_the_integer_id(desks):
    client, _, ids = desks
    agent, ticket_id = client.headers_for("agent"), ids["alpha"]
    by_ref = client.post("/v1/tickets/T-501/triage", headers=agent)
    by_id = client.post(f"/v1/tickets/{ticket_id}/triage", headers=agent)
    assert by_ref.status_code == by_id.status_code == 200, by_ref.text
    assert by_ref.json()["result"] == by_id.json()["result"] and by_ref.json()["result"]["topic"]["label"] == "billing"
    latest = client.get("/v1/tickets/T-501/triage", headers=agent).json()
    assert latest == client.get(f"/v1/tickets/{ticket_id}/triage", headers=agent).json()
    assert latest["ticket_id"] == ticket_id and latest["triage"]["id"] == by_id.json()["ai_result_id"]
    changed = client.patch("/v1/tickets/T-501/routing", json={"queue": "billing"}, headers=agent)
    assert changed.status_code == 200, changed.text
    again = client.patch(f"/v1/tickets/{ticket_id}/routing", json={"assignee": "Priya Patel"}, headers=agent)
    assert again.status_code == 200, again.text
    current = client.get("/v1/tickets/T-501/triage", headers=agent).json()["current"]
    assert (current["queue"], current["assignee"]) == ("billing", "Priya Patel")


def test_an_unknown_external_id_is_a_json_404_on_every_triage_path(desks):
    client, _, _ = desks
    agent = client.headers_for("agent")
    assert_json_404(client.get("/v1/tickets/T-404/triage", headers={**agent, **HTML}), "T-404")
    assert_json_404(client.post("/v1/tickets/T-404/triage", headers=agent), "T-404")
    assert_json_404(client.patch("/v1/tickets/T-404/routing", json={"queue": "billing"}, headers=agent), "T-404")
    assert client.get("/v1/tickets/bad%20ref/triage", headers=agent).status_code == 422
    assert client.post("/v1/tickets/T-501/triage", headers=client.headers_for("marketing")).status_code == 403


def test_another_workspaces_ticket_is_not_reachable_through_the_triage_api(desks):
    client, services, ids = desks
    agent = client.headers_for("agent")
    for ref in ("T-BETA", str(ids["beta"])):
        assert_json_404(client.get(f"/v1/tickets/{ref}/triage", headers=agent), ref)
        assert_json_404(client.post(f"/v1/tickets/{ref}/triage", headers=agent), ref)
        assert_json_404(client.patch(f"/v1/tickets/{ref}/routing", json={"queue": "billing"}, headers=agent), ref)
    assert client.get("/v1/tickets/T-501/triage", headers=agent).json()["ticket_id"] == ids["alpha"]
    with services.store.repo("beta") as repo:
        assert repo.session.scalar(repo.select(AiResult).where(AiResult.subject_id == ids["beta_501"])) is None


# -- the pages ----------------------------------------------------------------------------------------------------
def test_the_triage_page_takes_an_external_id_and_a_person_applies_there(desks):
    client, services, ids = desks
    ticket_id = ids["alpha"]
    login(client, client.headers_for("agent")["X-API-Key"])
    by_ref, by_id = client.get("/tickets/T-501/triage"), client.get(f"/tickets/{ticket_id}/triage")
    assert by_ref.status_code == by_id.status_code == 200 and by_ref.text == by_id.text
    assert 'id="triage"' in by_ref.text and "Not triaged yet." in by_ref.text
    csrf = CSRF.search(by_ref.text).group(1)
    triaged = client.post("/tickets/T-501/triage", data={"csrf": csrf, "action": "triage"}, follow_redirects=False)
    assert triaged.status_code == 303 and triaged.headers["location"] == "/tickets/T-501/triage"
    assert "Triaged: billing." in client.get("/tickets/T-501/triage").text
    with services.store.repo("alpha") as repo:
        row = repo.session.scalar(repo.select(AiResult).where(AiResult.task == "ticket_triage"))
        result_id, version = row.id, row.version
    form = {"csrf": csrf, "action": "apply", "result_id": result_id, "version": version, "back": "/tickets/T-501"}
    applied = client.post(f"/tickets/{ticket_id}/triage", data=form, follow_redirects=False)
    assert applied.status_code == 303 and applied.headers["location"] == "/tickets/T-501"
    assert routing_of(services, ticket_id).topic == "billing"


def test_an_unknown_or_other_workspaces_ticket_is_the_friendly_404_page(desks):
    client, services, ids = desks
    login(client, client.headers_for("agent")["X-API-Key"])
    csrf = CSRF.search(client.get("/tickets/T-501/triage").text).group(1)
    for ref in ("T-404", "T-BETA", str(ids["beta"])):
        assert_page_404(client.get(f"/tickets/{ref}/triage", headers=HTML), ref)
        posted = client.post(f"/tickets/{ref}/triage", data={"csrf": csrf, "action": "triage"}, headers=HTML)
        assert_page_404(posted, ref)
    with services.store.repo("beta") as repo:
        assert repo.session.scalar(repo.select(AiResult)) is None


def test_the_advocacy_page_drafts_by_external_id_in_its_own_workspace_only(world):
    client, store, keys, _, _ = world
    alpha, beta = seed(store), seed(store, "beta")
    csrf = login_marketing(client, keys[("alpha", "marketing")])
    back = {"csrf": csrf, "back": "/advocacy?band=detractors"}
    by_ref = client.post("/advocacy/NPS-3/draft", data=back, follow_redirects=False)
    by_id = client.post(f"/advocacy/{alpha['detractor_deal']}/draft", data=back | {"again": "true"},
                        follow_redirects=False)  # fmt: skip
    assert by_ref.status_code == by_id.status_code == 303 and by_ref.headers["location"] == "/advocacy?band=detractors"
    with store.repo("alpha") as repo:
        drafts = repo.all(repo.select(AiResult).where(AiResult.subject_id == alpha["detractor_deal"]))
    assert [d.task for d in drafts] == ["nps_follow_up", "nps_follow_up"]
    missing = client.post("/advocacy/NPS-404/draft", data=back, headers=HTML)
    assert missing.status_code == 404 and "no nps response &#39;NPS-404&#39;" in missing.text
    other = client.post(f"/advocacy/{beta['detractor_deal']}/draft", data=back, headers=HTML)
    assert other.status_code == 404 and "<h1>Nothing here</h1>" in other.text
    assert f"no nps response &#39;{beta['detractor_deal']}&#39; in workspace &#39;alpha&#39;" in other.text
    with store.repo("beta") as repo:
        assert repo.session.scalar(repo.select(AiResult)) is None
