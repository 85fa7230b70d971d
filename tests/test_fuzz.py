"""API fuzzing: schemathesis generates requests from the app's own OpenAPI schema (in-process ASGI, no network).

Pass means no 5xx anywhere and every response, errors included, matches what the schema documents.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e .[dev])")

from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from api.app import create_app  # noqa: E402
from copilot.auth import create_key  # noqa: E402
from copilot.gateway.fake import FakeModel  # noqa: E402
from copilot.jobs import JobKind  # noqa: E402
from copilot.services import Services  # noqa: E402
from copilot.settings import Settings  # noqa: E402
from copilot.store import Store, get_or_create_workspace  # noqa: E402
from copilot.store.models import AuthorKind, Message, Ticket  # noqa: E402

KEY: dict[str, str] = {}
# Server errors, responses outside the documented schema (error bodies included), undocumented status codes and
# content types. Business-rule 422s on schema-valid input ("give a text or a draft_id") are correct answers here.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
]
EXAMPLES = 8


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("fuzz"), model="fake/echo", index_on_ingest=False)
    store = Store.from_settings(settings)
    with store.session() as session:
        get_or_create_workspace(session, "fuzz")
    with store.repo("fuzz") as repo:
        ticket = repo.add(Ticket(external_id="T-1", subject="Charged twice"))
        repo.session.flush()
        repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body="I was charged twice for ORD-1."))
        KEY["admin"] = create_key(repo, "admin", "fuzzer")[0]
    services = Services(settings, store, fake=FakeModel(), sleep=lambda _seconds: None)
    app = create_app(services=services)
    jobs = app.state.services.jobs
    jobs.kinds = {
        name: JobKind(name, lambda job: {}, kind.permission) for name, kind in jobs.kinds.items()
    }  # jobs: lifecycle only
    app.state.services.embedder.encode(["warm up"])  # load the embedder before the clock starts
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    services.close()


def test_no_server_errors_and_documented_responses(api_schema):
    failures, cases = [], 0
    for result in api_schema.get_all_operations():
        cases += _fuzz_operation(result.ok(), failures)
    operations = len(list(api_schema.get_all_operations()))
    print(f"schemathesis: {cases} cases over {operations} operations, {len(failures)} failing")
    assert cases > 100
    assert not failures, "\n".join(dict.fromkeys(failures))


def _fuzz_operation(operation, failures: list[str]) -> int:
    """Run the generated cases of one operation, adding its first failure to ``failures``; returns the cases run."""
    from hypothesis import given

    cases = 0

    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        nonlocal cases
        cases += 1
        try:
            case.call_and_validate(headers={"X-API-Key": KEY["admin"]}, checks=CHECKS)
        except BaseException as error:  # collect every operation's first failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(error).splitlines()[0][:300]}")
            raise

    try:
        check()
    except BaseException:  # schemathesis raises a BaseExceptionGroup of failures
        pass
    return cases
