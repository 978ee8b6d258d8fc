"""Property-based fuzzing of the served OpenAPI spec (schemathesis): no input gives a 5xx, and
every answer the spec documents matches its schema.  Against the real server on loopback.

Driven through ``APIOperation.as_strategy`` with hypothesis directly: schemathesis' pytest
plugin (``from_fixture``) does not run under pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serve.helpers import running
from toolkit.serve.app import create_app
from toolkit.serve.settings import Settings

#: no 5xx, and every answer as the OpenAPI document declares it: status, content type, headers, body
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_url(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # auth off (loopback) so the fuzzer reaches every handler; tests/serve/test_auth.py covers auth
    folder = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        agents_dir=gbsg2_bundle.parent,
        auth="off",
        audit_path=folder / "audit.sqlite",
        debug_dir=folder / "debug",  # a 5xx leaves its traceback here, for the failure message
    )
    with running(create_app(settings)) as url:
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
            case.call_and_validate(base_url=fuzz_url, checks=CHECKS)

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


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _replacement(rng, node: object) -> object:  # type: ignore[no-untyped-def]
    deep: object = "x"
    for _ in range(60):
        deep = [deep]
    choices = [
        int(rng.integers(-(10**9), 10**9)),
        10**400,
        -1,
        float("nan"),
        float("inf"),
        3.5,
        True,
        None,
        "",
        "x" * 20_000,
        "2026-13-45",
        [node],
        {"k": node},
        [],
        {},
        deep,
        [node] * 300 if isinstance(node, dict) else node,
    ]
    return choices[int(rng.integers(len(choices)))]


def test_structurally_mutated_cds_requests_never_get_a_5xx(fuzz_url: str, rng, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """Types, nesting and sizes changed at random places of a valid request (seeded, bounded)."""
    debug = tmp_path_factory.getbasetemp() / "fuzz0" / "debug"
    import copy
    import json
    from collections import Counter

    from tests.serve.helpers import hook_request

    base = hook_request()
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=fuzz_url, timeout=30) as client:
        for _ in range(300):
            req = copy.deepcopy(base)
            paths = [p for p in _paths(req) if p]
            for _ in range(int(rng.integers(1, 4))):
                path = paths[int(rng.integers(len(paths)))]
                parent: object = req
                try:
                    for p in path[:-1]:
                        parent = parent[p]  # type: ignore[index]
                    if rng.random() < 0.15 and isinstance(parent, dict):
                        parent.pop(path[-1], None)
                    else:
                        parent[path[-1]] = _replacement(rng, parent[path[-1]])  # type: ignore[index]
                except (KeyError, IndexError, TypeError):
                    continue  # an earlier mutation changed the shape under this path
            body = json.dumps(req)  # NaN and Infinity as Python writes them, as some clients do
            reply = client.post(
                "/cds-services/gbsg2-recurrence", content=body, headers={"content-type": "application/json"}
            )
            if reply.status_code >= 500:
                tb = sorted(debug.glob("*.txt"))
                pytest.fail(
                    f"{reply.status_code} on a mutated request:\n" + (tb[-1].read_text() if tb else "")
                )
            statuses[reply.status_code] += 1
    assert statuses[200] > 10 and sum(n for s, n in statuses.items() if 400 <= s < 500) > 100, statuses
