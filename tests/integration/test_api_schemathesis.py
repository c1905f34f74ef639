"""Property-based fuzzing of the seed API from its own OpenAPI document (schemathesis 4).

The app runs in-process over ASGI: schemathesis drives its lifespan in its own event-loop
thread, so `create_app(gw)` (manage_gateway=True) starts the Gateway in the loop that serves the
requests. SQLite only: this checks the HTTP contract, not the storage backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kaskad.api.app import create_app
from kaskad.bootstrap import Gateway
from kaskad.services.admin import Admin
from kaskad.storage.db import Database
from kaskad.storage.migrate import upgrade
from tests.conftest import make_settings
from tests.helpers import callback_transport

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]

OPERATIONS = [("/api/send/", "POST"), ("/api/status/", "GET"), ("/api/status/", "POST")]
SANDBOX_NUMBERS = [f"7900123456{d}" for d in range(10)]
FUZZ = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])


async def _prepare(url: str) -> str:
    db = Database(url)
    try:
        await upgrade(db)
        admin = Admin(db, test_balance_kop=10_000_000, default_directions=["RU"])
        await admin.ensure_demo_tariffs()
        return (await admin.create_account("acme")).api_key
    finally:
        await db.dispose()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """The OpenAPI schema of a live app (lifespan started by schemathesis) and an API key."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'kaskad.db'}"
    key = asyncio.run(_prepare(url))
    gw = Gateway(make_settings(url, send_wait_s=0.5))
    # Customer callbacks go nowhere near the network: fuzzed callback_urls are arbitrary.
    gw.callbacks.transport = callback_transport(lambda _: httpx.Response(200))
    app = create_app(gw, demo_inbox=True)
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app), key
    finally:
        asgi.shutdown_lifespans()  # stops the Gateway in the loop that started it


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
@pytest.mark.parametrize("with_key", [True, False], ids=["key", "no-key"])
def test_schema_conformance(served: tuple[Any, str], path: str, method: str,
                            with_key: bool) -> None:
    schema, key = served
    operation = schema[path][method]
    headers = {"Authorization": key} if with_key else None

    @given(case=operation.as_strategy(headers=headers))
    @FUZZ
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS)
        assert "Traceback" not in response.text

    fuzz()


def test_send_with_sandbox_numbers(served: tuple[Any, str]) -> None:
    """Schema-valid bodies with a routable number, so the fuzzing reaches the cascade."""
    schema, key = served
    strategy = schema["/api/send/"]["POST"].as_strategy(headers={"Authorization": key})

    @given(case=strategy, number=st.sampled_from(SANDBOX_NUMBERS))
    @FUZZ
    def fuzz(case: Any, number: str) -> None:
        if isinstance(case.body, dict):
            case.body = {**case.body, "number": number}
        response = case.call_and_validate(checks=CHECKS)
        body = response.json()
        if body["result"] == "ok":
            assert body["number"] == number
            assert body["code"].isdigit()

    fuzz()


def test_send_negative_data(served: tuple[Any, str]) -> None:
    """Bodies that violate the schema are refused in the seed's error shape, never a 5xx."""
    schema, key = served
    strategy = schema["/api/send/"]["POST"].as_strategy(
        GenerationMode.NEGATIVE, headers={"Authorization": key})

    @given(case=strategy)
    @FUZZ
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(checks=[not_a_server_error,
                                                  response_schema_conformance])
        assert response.status_code in (200, 413)
        assert "Traceback" not in response.text

    fuzz()


def test_openapi_documents_the_seed_operations(served: tuple[Any, str]) -> None:
    schema, _ = served
    raw = schema.raw_schema
    assert {"/api/send/", "/api/status/"} <= set(raw["paths"])
    components = raw["components"]["schemas"]
    assert {"SendRequest", "SendOk", "StatusOk", "SeedError"} <= set(components)
    assert set(components["SendOk"]["properties"]) == {
        "result", "state", "state_reason", "resend", "number", "code", "price", "request_id"}


def test_operation_ids_are_unique(served: tuple[Any, str]) -> None:
    """OpenAPI requires unique operationIds (clients generated from the document need them)."""
    schema, _ = served
    ids = [op["operationId"] for item in schema.raw_schema["paths"].values()
           for op in item.values() if isinstance(op, dict) and "operationId" in op]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == []
