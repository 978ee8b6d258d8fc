"""Property-based fuzzing of the served OpenAPI spec (schemathesis): no input gives a 5xx, and
every answer the spec documents matches its schema.  Against the real server on loopback.

Driven through ``APIOperation.as_strategy`` with hypothesis directly: schemathesis' pytest
plugin (``from_fixture``) does not run under pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.serve.helpers import running
from toolkit.serve.app import create_app
from toolkit.serve.settings import Settings


@pytest.fixture(scope="module")
def fuzz_url(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # auth off (loopback) so the fuzzer reaches every handler; tests/serve/test_auth.py covers auth
    audit = tmp_path_factory.mktemp("fuzz") / "audit.sqlite"
    with running(create_app(Settings(agents_dir=gbsg2_bundle.parent, auth="off", audit_path=audit))) as url:
        yield url


def test_no_input_gives_a_server_error(fuzz_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/cds-services/{service_id}", "/agents/gbsg2-recurrence/predict"} <= paths
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def fuzz(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(
                base_url=fuzz_url, checks=[not_a_server_error, response_schema_conformance]
            )

        fuzz()
    # the fuzzer reached the handlers (not only the validation layer) of the hook and REST calls
    import httpx

    metrics = httpx.get(f"{fuzz_url}/metrics").text
    for endpoint in ("/cds-services/{service_id}", "/agents/{agent_id}/predict"):
        served = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("regent_requests_total{") and f'endpoint="{endpoint}"' in line
        ]
        assert sum(served) >= 20, endpoint
