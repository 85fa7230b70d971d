"""Web form fuzzing: every web page route (they are left out of the OpenAPI schema) gets generated path values, query
parameters and form fields, with a valid session and CSRF token so that the requests get past the login and CSRF
checks, as an admin. Pass means no 5xx: a malformed form is a 4xx or a page that names the problem.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api import web
from api.app import create_app
from copilot.auth import create_key
from copilot.gateway.fake import FakeModel
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import AuthorKind, Message, Ticket
from copilot.tasks.base import Provenance, TaskOutcome, save_outcome
from copilot.tasks.tone_rewrite import Rewrite

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
EXAMPLES = 12
HEALTH = list(HealthCheck)
SKIPPED = {"/logout"}  # would end the fuzzer's own session
# Fields some handlers read from the raw form (batch review) or that no handler declares: sent at random to every form.
EXTRA_FIELDS = ["item", "return_to", "next_id", "action", "decision", "version", "text", "tone"]

ODD_VALUES = ["", " ", "0", "-1", "1e9", "99999999999999999999", "abc", "1:1", "1:x", "a:b:c", "null", "true"]
WEIRD = st.sampled_from([*ODD_VALUES, "<script>", "%00", "../../etc/passwd", "//evil.example", "é" * 50, "x" * 5000])
VALUE = st.one_of(WEIRD, st.integers(-5, 10**12).map(str), st.text(max_size=60))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz-web"), model="fake/echo", index_on_ingest=False, job_threads=0
    )
    store = Store.from_settings(settings)
    with store.session() as session:
        get_or_create_workspace(session, "fuzz")
    with store.repo("fuzz") as repo:
        ticket = repo.add(Ticket(external_id="T-1", subject="Charged twice"))
        repo.session.flush()
        repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body="I was charged twice for ORD-1."))
        outcome = TaskOutcome[Rewrite](
            task="tone_rewrite",
            result=Rewrite(tone="friendly", original="We refund it.", text="We will refund it, sorry!"),
            provenance=Provenance(task="tone_rewrite"),
        )
        result_id = save_outcome(repo, outcome, subject_kind="text", subject_id=None).id
        key = create_key(repo, "admin", "fuzzer")[0]
        known = [str(ticket.id), "T-1", str(result_id)]
    services = Services(settings, store, fake=FakeModel(), sleep=lambda _seconds: None)
    app = create_app(services=services)
    client = TestClient(app, raise_server_exceptions=False)
    token = CSRF.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"api_key": key, "csrf": token}, follow_redirects=False).status_code == 303
    yield app, client, token, known
    client.close()
    services.close()


def web_routes() -> list[APIRoute]:
    """The page routes (included without a prefix, out of the OpenAPI schema)."""
    routes = [r for router in web.ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    return [r for r in routes if r.path not in SKIPPED]


def params_of(dependant, kind: str) -> list:
    """A route's parameters of one kind ("path", "query", "body"), its dependencies' included."""
    own = list(getattr(dependant, f"{kind}_params"))
    return own + [p for sub in dependant.dependencies for p in params_of(sub, kind)]


def requests_for(route: APIRoute, known: list[str], token: str):
    """A strategy of (method, url, form) for one route: its declared path, query and form parameters, and some
    undeclared extra fields."""
    path_params, query_params, body_params = (params_of(route.dependant, kind) for kind in ("path", "query", "body"))
    path_value = st.one_of(st.sampled_from(known), WEIRD.filter(lambda v: v.strip("/.") != ""))
    method = sorted(route.methods)[0]

    @st.composite
    def build(draw):
        url = route.path
        for param in path_params:
            url = url.replace("{" + param.name + "}", quote(draw(path_value), safe=""))
        query = {p.name: draw(VALUE) for p in query_params if draw(st.booleans())}
        form: dict[str, str | list[str]] = {}
        if method == "POST":
            form = {p.name: draw(VALUE) for p in body_params if p.name != "csrf" and draw(st.integers(0, 3))}
            for name in draw(st.lists(st.sampled_from(EXTRA_FIELDS), max_size=3, unique=True)):
                form[name] = draw(st.lists(VALUE, min_size=1, max_size=3)) if name == "item" else draw(VALUE)
            form["csrf"] = token if draw(st.integers(0, 5)) else draw(VALUE)
        return method, url, query, form

    return build()


def test_web_routes_answer_malformed_forms_without_server_errors(site):
    _, client, token, known = site
    failures: list[str] = []
    routes = web_routes()
    cases = 0
    for route in routes:

        @given(request=requests_for(route, known, token))
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH, database=None)
        def check(request) -> None:
            nonlocal cases
            cases += 1
            method, url, query, form = request
            response = client.request(method, url, params=query, data=form or None, follow_redirects=False)
            if response.status_code >= 500:
                failures.append(f"{method} {url} {query} {form}: HTTP {response.status_code} {response.text[:200]}")

        check()
    print(f"web fuzz: {cases} cases over {len(routes)} routes, {len(failures)} server errors")
    assert len(routes) >= 20 and cases > 200
    assert not failures, "\n".join(failures[:20])
