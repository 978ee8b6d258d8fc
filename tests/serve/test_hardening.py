"""Defects of the adversarial pass, each pinned: request shapes that gave a 500, the one handler of
unexpected errors, DNS rebinding, header and slow-client limits, and outbound FHIR fetches that
escaped the allowlist or read without bound.  Against real servers on loopback."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI, Request

from tests.serve.conftest import Secure
from tests.serve.fhir_server import TOKEN
from tests.serve.helpers import GBSG2_INPUTS, ISS, PATIENT, hook_request, running
from toolkit.agents.bundle import write_sums
from toolkit.serve.app import create_app
from toolkit.serve.audit import read_records
from toolkit.serve.fhir_fetch import allowed_server, under
from toolkit.serve.settings import Settings

SERVICE = "/cds-services/gbsg2-recurrence"


# --- request shapes that gave a 500 ------------------------------------------------------------
def _entry_number(r: dict[str, Any]) -> None:
    r["prefetch"]["observation"]["entry"] = 7


def _coding_number(r: dict[str, Any]) -> None:
    r["prefetch"]["observation"]["entry"][0]["resource"]["code"]["coding"] = 7


def _huge_integer(r: dict[str, Any]) -> None:
    r["prefetch"]["observation"]["entry"][1]["resource"]["valueQuantity"]["value"] = 10**400


def _patient_id_number(r: dict[str, Any]) -> None:
    r["context"]["patientId"] = 12


def _deep_nesting(r: dict[str, Any]) -> None:
    r["prefetch"]["patient"]["_birthDate"] = "DEEP"  # replaced in the JSON text below


def _nesting(r: dict[str, Any]) -> None:
    r["prefetch"]["patient"]["_birthDate"] = "NESTED"


DEEP = '{"extension": [' * 3000 + "{}" + "]}" * 3000  # deeper than a JSON parser recurses
NESTED = '{"extension": [' * 150 + '{"url": "x"}' + "]}" * 150


SHAPES = {
    "Bundle.entry is a number": (_entry_number, r"prefetch\.observation\.entry: expected an array"),
    "coding is a number": (_coding_number, r"entry\[0\]\.resource\.code\.coding: expected an array"),
    "a huge integer value": (_huge_integer, "tumor_size: expected a finite number"),
    "patientId is a number": (_patient_id_number, "context.patientId: expected a FHIR id"),
    "JSON nested past the parser": (_deep_nesting, "error parsing the body"),
    "deeply nested FHIR element": (_nesting, r"prefetch\.patient"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_request_shapes_that_gave_a_500_are_a_4xx_naming_the_path(server: str, shape: str) -> None:
    import copy
    import re

    mutate, pattern = SHAPES[shape]
    req = copy.deepcopy(hook_request())
    mutate(req)
    body = json.dumps(req).replace('"DEEP"', DEEP).replace('"NESTED"', NESTED)
    reply = httpx.post(server + SERVICE, content=body, headers={"content-type": "application/json"})
    assert 400 <= reply.status_code < 500, reply.text
    assert re.search(pattern, reply.json()["error"]), reply.json()


def test_a_signed_token_whose_exp_is_a_string_gets_401(secure: Secure) -> None:
    aud = secure.url + SERVICE
    now = int(time.time())
    claims = {"iss": ISS, "aud": aud, "iat": now, "exp": str(now + 60), "jti": str(uuid.uuid4())}
    token = jwt.encode(claims, secure.keys.ec, algorithm="ES384", headers={"kid": "ec-1"})
    reply = httpx.post(aud, json=hook_request(), headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401 and reply.content == b""


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[str]:
    app = FastAPI()

    @app.get("/jwks.json")
    def jwks() -> dict[str, Any]:
        return {"keys": {"not": "a list"}}  # malformed, as an attacker-influenced refetch may find

    with running(app) as url:
        yield f"{url}/jwks.json"


def test_a_malformed_fetched_jwks_refuses_tokens_without_a_500(
    secure: Secure, gbsg2_bundle: Path, jwks_server: str, tmp_path: Path
) -> None:
    from toolkit.serve.auth import KeySet
    from toolkit.serve.settings import Issuer

    ks = KeySet(Issuer(iss=ISS, jwks_url=jwks_server))  # no exception: previous (no) keys kept
    assert ks.key_for("ec-1") is None
    settings = Settings(agents_dir=gbsg2_bundle.parent, issuers=[Issuer(iss=ISS, jwks_url=jwks_server)])
    with running(create_app(settings)) as url:
        aud = url + SERVICE
        reply = httpx.post(aud, json=hook_request(), headers=secure.keys.bearer(aud, kid="new-kid"))
    assert reply.status_code == 401


# --- the one handler of unexpected errors ------------------------------------------------------
@pytest.fixture(scope="module")
def broken(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """A server whose bundle verifies but whose manifest makes prediction fail inside Regent."""
    folder = tmp_path_factory.mktemp("broken")
    dst = folder / "dist" / gbsg2_bundle.name
    shutil.copytree(gbsg2_bundle, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["inputs"][0]["training_range"] = "corrupt"
    (dst / "manifest.json").write_text(json.dumps(manifest))
    write_sums(dst)
    settings = Settings(
        agents_dir=dst.parent, auth="off", audit_path=folder / "audit.sqlite", debug_dir=folder / "debug"
    )
    with running(create_app(settings)) as url:
        yield url, folder / "audit.sqlite", folder / "debug"


def test_an_unexpected_error_is_a_500_with_an_id_logged_once_counted_and_audited(
    broken: tuple[str, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, audit, debug = broken
    caplog.set_level(logging.INFO)
    with httpx.Client() as client:  # one keep-alive connection for both requests
        reply = client.post(f"{url}/agents/gbsg2-recurrence/predict", json={"inputs": GBSG2_INPUTS})
        assert reply.status_code == 500
        error_id = reply.json()["error_id"]
        uuid.UUID(error_id)
        assert reply.json() == {"error": "internal error", "error_id": error_id}
        assert client.get(f"{url}/healthz").status_code == 200  # the connection was not reset
    lines = [r for r in caplog.records if error_id in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None and "\n" not in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # no traceback anywhere in the logs
    assert "Traceback" in (debug / f"{error_id}.txt").read_text()
    metrics = httpx.get(f"{url}/metrics").text
    assert 'endpoint="/agents/{agent_id}/predict",status="500"' in metrics
    assert 'kind="server"' in metrics
    (last,) = read_records(audit, last=1)
    assert last["kind"] == "error" and last["status"] == 500 and last["error_id"] == error_id


# --- DNS rebinding, header and slow-client limits ----------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.example:8080"}, {"Origin": "https://evil.example"}, {"Host": "127.0.0.1.evil.example"}],
)
def test_auth_off_refuses_a_rebound_host_or_foreign_origin_on_every_route(
    server: str, headers: dict[str, str]
) -> None:
    for method, path, body in (("GET", "/cds-services", None), ("POST", SERVICE, hook_request())):
        reply = httpx.request(method, server + path, json=body, headers=headers)
        assert reply.status_code == 403, (path, reply.text)
    assert httpx.get(server + "/cds-services", headers={"Origin": "http://localhost:3000"}).status_code == 200


@pytest.fixture(scope="module")
def strict(gbsg2_bundle: Path) -> Iterator[str]:
    settings = Settings(
        agents_dir=gbsg2_bundle.parent, auth="off", max_header_bytes=8192, header_timeout_s=1.0
    )
    with running(create_app(settings)) as url:
        yield url


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=15)
    return s


def test_headers_over_the_limit_get_431_and_the_server_keeps_answering(strict: str) -> None:
    s = _raw(strict)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    answer = s.recv(200)
    s.close()
    assert answer.startswith(b"HTTP/1.1 431")
    ok = httpx.get(strict + "/healthz", headers={"X-Fine": "a" * 4000})
    assert ok.status_code == 200


def test_a_client_that_sends_its_headers_too_slowly_is_disconnected(strict: str) -> None:
    s = _raw(strict)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the blank line
    assert s.recv(100) == b""  # closed by the server (the socket timeout is far longer)
    s.close()


# --- outbound fetches --------------------------------------------------------------------------
BASE = "https://fhir.example.org/r4"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        (f"{BASE}/Patient/1", True),
        ("HTTPS://FHIR.example.org:443/r4/Observation?code=x", True),
        (f"{BASE}/../admin", False),
        (f"{BASE}/%2e%2e/admin", False),
        (f"{BASE}/x/..%2F..%2Fadmin", False),
        (f"{BASE}/%252e%252e/admin", False),  # double encoding: refused, not guessed
        ("https://fhir.example.org/r4x/Patient", False),
        ("https://fhir.example.org:8443/r4/Patient", False),
        ("http://fhir.example.org/r4/Patient", False),
        ("https://user@fhir.example.org/r4/Patient", False),
        ("https://fhir.example.org.evil.example/r4/Patient", False),
        ("https://fhir.example.org\\@evil.example/r4", False),
    ],
)
def test_the_allowlist_compares_normalised_urls(url: str, ok: bool) -> None:
    assert under(url, BASE) is ok and allowed_server(url, [BASE]) is ok


def hostile_fhir(big: bool = False) -> FastAPI:
    app = FastAPI()
    app.state.seen = []

    @app.middleware("http")
    async def log(request: Request, call_next):  # type: ignore[no-untyped-def]
        app.state.seen.append((request.url.path, request.headers.get("authorization")))
        return await call_next(request)

    @app.get("/fhir/Patient/p1")
    def patient() -> dict[str, Any]:
        return PATIENT

    @app.get("/fhir/{rtype}")
    def search(rtype: str, request: Request) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        entries = [{"resource": {**PATIENT, "id": "p1"}}] * (20_000 if big else 0)
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": entries,
            "link": [{"relation": "next", "url": f"{base}/fhir/../admin/steal"}],
        }

    return app


def _fetching(fhir_server: str) -> dict[str, Any]:
    req = hook_request()
    del req["prefetch"]
    req["fhirServer"] = fhir_server
    req["fhirAuthorization"] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "regent",
    }
    return req


def test_the_ehr_token_never_leaves_the_allowed_server(gbsg2_bundle: Path) -> None:
    app = hostile_fhir()
    with running(app) as fhir:
        settings = Settings(agents_dir=gbsg2_bundle.parent, auth="off", fhir_servers=[f"{fhir}/fhir"])
        with running(create_app(settings)) as url:
            escaped = httpx.post(url + SERVICE, json=_fetching(f"{fhir}/fhir/../admin"))
            assert escaped.status_code == 412 and app.state.seen == []  # never contacted
            paged = httpx.post(url + SERVICE, json=_fetching(f"{fhir}/fhir"))
    assert paged.status_code == 422 and "leaves the FHIR server" in paged.json()["error"]
    assert app.state.seen and all(path.startswith("/fhir/") for path, _ in app.state.seen)


def test_fetched_answers_are_read_up_to_a_byte_limit(gbsg2_bundle: Path) -> None:
    with running(hostile_fhir(big=True)) as fhir:
        settings = Settings(
            agents_dir=gbsg2_bundle.parent, auth="off", fhir_servers=[f"{fhir}/fhir"], fhir_max_bytes=200_000
        )
        with running(create_app(settings)) as url:
            reply = httpx.post(url + SERVICE, json=_fetching(f"{fhir}/fhir"), timeout=30)
    assert reply.status_code == 422 and "fhir_max_bytes" in reply.json()["error"]


def test_a_slow_fhir_server_ends_at_fhir_timeout_with_a_412(gbsg2_bundle: Path) -> None:
    import asyncio

    slow = FastAPI()

    @slow.get("/fhir/{path:path}")
    async def answer(path: str) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    with running(slow) as fhir:
        settings = Settings(
            agents_dir=gbsg2_bundle.parent, auth="off", fhir_servers=[f"{fhir}/fhir"], fhir_timeout_s=0.5
        )
        with running(create_app(settings)) as url:
            reply = httpx.post(url + SERVICE, json=_fetching(f"{fhir}/fhir"), timeout=30)
    assert reply.status_code == 412 and "tumor_size" in reply.json()["missing"]


def test_errors_do_not_repeat_names_the_caller_chose(server: str) -> None:
    for path in ("/agents/mrn-77120934/predict", "/cds-services/gbsg2-recurrence--mrn-77120934"):
        reply = httpx.post(server + path, json=hook_request())
        assert 400 <= reply.status_code < 500 and "77120934" not in reply.text, reply.text
