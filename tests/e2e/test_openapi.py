"""The real server process against its own OpenAPI document, with schemathesis.

Every operation of the document is called with generated requests, valid and invalid, as a
registered user (a bearer token), and every answer must be what the document declares: no server
error (5xx), a declared status, the declared content type, a body matching the declared schema
(and schemathesis's other checks: invalid data refused, valid data accepted, auth not ignored,
undeclared methods answered 405). The user's real thread and run are then read through each
declared answer of the endpoints that take them (200, SSE, 204, 409).

The cases are generated from the document of an app built in this process as the server builds
its own; the first test proves the live server serves that very document. (Loading the document
from the live server inside a fixture, ``schemathesis.pytest.from_fixture``, fails on pytest 9.2.)

Lean by design: ``MAX_EXAMPLES`` per operation and a fixed seed (the same cases on every run, so
a failure is the code's, not the draw's); ``RUNWIRE_TEST_OPENAPI_EXAMPLES=200`` explores further.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.auths import AuthStorageMark
from schemathesis.core import SpecificationFeature
from schemathesis.generation import overrides
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.hypothesis.builder import (
    ApiOperationMark,
    HookDispatcherMark,
    add_coverage,
)
from schemathesis.pytest.plugin import SchemaHandleMark
from schemathesis.python._constants.orchestrator import make_constants_value_source

from runwire.app import create_app
from runwire.config import load_settings
from tests.e2e.wire import Session
from tests.timing import unit

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("RUNWIRE_TEST_OPENAPI_EXAMPLES", "10"))
EXPLORE = "RUNWIRE_TEST_OPENAPI_EXAMPLES" in os.environ
PASSWORD = "correct horse battery"

# Usage files as the import endpoint reads them: a good record, then generated lines, each a record
# with any of its fields wrong (or missing) or any text at all. The server must take the good
# lines and report each bad one, never fail on one.
_RECORD = {
    "timestamp": "2026-11-01T09:30:00Z",
    "provider": "openai",
    "model": "gpt-4o",
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "latency_ms": 850,
}
_ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))
_RECORDS = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.one_of(st.just(good), _ANY_VALUE) for name, good in _RECORD.items()},
        "cost_usd": _ANY_VALUE,
        "status": st.one_of(st.sampled_from(["ok", "error"]), _ANY_VALUE),
        "feature": _ANY_VALUE,
    },
)


def _csv_row(record: dict[str, Any]) -> str:
    return ",".join(str(record.get(name, "")) for name in _RECORD)


_JSONL_LINES = st.lists(st.one_of(_RECORDS.map(json.dumps), st.text(max_size=120)), max_size=5)
_CSV_LINES = st.lists(
    st.one_of(
        _RECORDS.map(_csv_row),
        st.text(max_size=120),
    ),
    max_size=5,
)
schemathesis.openapi.media_type(
    "application/x-ndjson",
    _JSONL_LINES.map(lambda lines: "\n".join([json.dumps(_RECORD), *lines]).encode()),
    aliases=["application/jsonl", "application/json-lines", "application/x-jsonlines"],
)
schemathesis.openapi.media_type(
    "text/csv",
    _CSV_LINES.map(
        lambda lines: "\n".join([",".join(_RECORD), _csv_row(_RECORD), *lines]).encode()
    ),
)
# Sign-ups at ordinary domains: the server refuses special-use ones (.test, .local, …), as the
# document says in words; JSON Schema's `format: email` cannot say it.
schemathesis.openapi.format(
    "email", st.emails(domains=st.sampled_from(["example.com", "mail.example.org"]))
)


# At a deployment given its test-token key (``--test-token-key``), the users come from
# ``POST /auth/test-token`` and have no password; the deployment then also serves (and documents)
# that endpoint.
TEST_TOKEN_KEY = (
    os.environ.get("RUNWIRE_E2E_TEST_TOKEN_KEY", "")
    if os.environ.get("RUNWIRE_E2E_BASE_URL")
    else ""
)


def _document() -> dict[str, Any]:
    """The OpenAPI document of an app built as ``runwire serve`` builds its own."""
    # A directory of its own: building the app makes a signing key in it.
    built = load_settings(
        env="test",
        data_dir=Path(tempfile.mkdtemp(prefix="runwire-openapi-")),
        **({"test_token_key": TEST_TOKEN_KEY} if TEST_TOKEN_KEY else {}),
    )
    return create_app(built).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The coverage phase's cases (each parameter's and body's boundary and invalid values) are made
# as each operation's test starts (_coverage_cases below), not as the file is collected:
# schemathesis makes them while it builds the test, and every pytest-xdist worker collects every
# file, so each worker spent ~6 s of CPU (two thirds of its whole collection) on cases that only
# the worker running this file uses. The examples and coverage cases are the same ones in the
# same order (compared case by case, 1,525 a run); the 10 drawn per operation differ from before,
# as they already did with what else a worker had imported (hypothesis mixes in constants of the
# modules loaded when it draws).
COVERAGE = schema.config.phases.coverage.enabled
schema.config.phases.coverage.enabled = False


@dataclass(frozen=True)
class Account:
    email: str
    token: str
    thread_id: str
    run_id: str
    last_seq: int


def _log_in(base: str, email: str) -> str:
    """A new session's access token: of ``email``, or at a deployment that hands out test users
    (who have no password), of a new test user."""
    if TEST_TOKEN_KEY:
        r = httpx.post(
            f"{base}/auth/test-token",
            headers={"X-Runwire-Test-Key": TEST_TOKEN_KEY},
            timeout=unit(10),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])
    r = httpx.post(
        f"{base}/auth/login", json={"email": email, "password": PASSWORD}, timeout=unit(10)
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def _a_conversation(base: str) -> tuple[str, str, dict[str, Any]]:
    """A user who has asked one question: their e-mail and access token, and the run's
    acceptance and events."""
    session = await Session.new(base)
    try:
        await session.post("/api/usage/sample")
        sock = await session.connect()
        accepted = await sock.ask("Where can we cut our LLM costs?")
        events = await sock.run_to_end(accepted["run_id"])
        return session.email, session.access, {**accepted, "last_seq": events[-1]["seq"]}
    finally:
        await session.aclose()


@pytest.fixture(scope="module")
def account(server_url: str) -> Account:
    email, token, run = asyncio.run(_a_conversation(server_url))
    return Account(email, token, run["thread_id"], run["run_id"], run["last_seq"])


def test_the_live_server_serves_the_document_tested(server_url: str) -> None:
    live = httpx.get(f"{server_url}/openapi.json", timeout=unit(10))
    assert live.status_code == 200
    assert live.json() == DOCUMENT


@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=not EXPLORE,
    database=None,
    deadline=None,  # wall-clock limits on a shared 2-core machine would only make it flaky
    suppress_health_check=[HealthCheck.too_slow],
)
def _every_answer_is_what_the_document_declares(
    case: Case, account: Account, server_url: str
) -> None:
    token = account.token
    if case.operation.path == "/auth/logout":
        # Logging out ends the session: each call ends a new one, not the shared one.
        token = _log_in(server_url, account.email)
    case.call_and_validate(
        base_url=server_url, headers={"Authorization": f"Bearer {token}"}, timeout=unit(10)
    )


def _one_test_per_operation() -> dict[str, Any]:
    """A test per operation, named after it (``test_post_auth_login``, …). schemathesis's own
    ``schema.parametrize()`` on one test makes an item per operation, but pytest 9.2 gives them
    all the same id, and pytest-xdist then runs only one of them."""
    tests = {}
    for path, operations in DOCUMENT["paths"].items():
        for method in operations:
            name = "_".join(["test", method, *re.findall(r"[a-z0-9]+", path)])
            one = schema.include(method=method.upper(), path=path)
            tests[name] = one.parametrize()(_every_answer_is_what_the_document_declares)
    return tests


globals().update(_one_test_per_operation())


@pytest.fixture(autouse=True)
def _coverage_cases(request: pytest.FixtureRequest) -> None:
    """Add the operation's coverage cases to its test, as schemathesis would have while building
    it (``create_test``: after the document's examples, before the seed, with the same
    arguments), just before it runs."""
    test = request.node.obj  # the hypothesis test schemathesis built for one operation
    operation = ApiOperationMark.get(test)
    if not COVERAGE or operation is None or getattr(test, "_coverage_cases_added", False):
        return
    test._coverage_cases_added = True
    test_function = request.node.test_function  # the function before schemathesis built it
    one = SchemaHandleMark.get(test_function)  # the operation's own schema (`schema.include`)
    assert one is not None
    in_settings = test._hypothesis_internal_use_settings
    if (
        Phase.explicit not in in_settings.phases
        or not operation.schema.specification.supports_feature(SpecificationFeature.COVERAGE)
    ):
        return
    generation = one.config.generation_for(operation=operation, phase="coverage")
    add_coverage(
        test,
        operation,
        generation.modes,
        AuthStorageMark.get(test_function),
        overrides.with_config_headers(one.config, operation=operation),
        feedback=FeedbackSources(constants_value_source=make_constants_value_source(one)),
        generation_config=generation,
        hooks=HookDispatcherMark.get(test_function),
    )


def _read(account: Account, server_url: str, path: str, **given: Any) -> int:
    """Call ``path`` (a GET) as the account with ``given``, check the answer, return its status."""
    case = schema[path]["GET"].Case(**given)
    response = case.call_and_validate(
        base_url=server_url,
        headers={"Authorization": f"Bearer {account.token}", **given.get("headers", {})},
        timeout=unit(10),
    )
    return response.status_code


def test_a_real_thread_and_run_answer_as_declared(account: Account, server_url: str) -> None:
    thread = {"thread_id": account.thread_id}
    run = {"run_id": account.run_id}
    events = "/api/runs/{run_id}/events"
    sse = {"Accept": "text/event-stream"}
    assert (
        _read(account, server_url, "/api/threads/{thread_id}/messages", path_parameters=thread)
        == 200
    )
    assert _read(account, server_url, "/api/runs/{run_id}", path_parameters=run) == 200
    assert _read(account, server_url, events, path_parameters=run, query={"after": 2}) == 200
    assert _read(account, server_url, events, path_parameters=run, headers=sse) == 200
    at_end = {"after": account.last_seq}
    assert _read(account, server_url, events, path_parameters=run, query=at_end, headers=sse) == 204
    stale = {"after": 1, "epoch": "an-epoch-of-long-ago"}
    assert _read(account, server_url, events, path_parameters=run, query=stale) == 409
