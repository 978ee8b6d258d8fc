"""No token, patient value or FHIR resource is ever written to a log."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from tests.serve.conftest import Secure
from tests.serve.helpers import API_KEY, GBSG2_INPUTS, PATIENT, hook_request

SERVICE = "/cds-services/gbsg2-recurrence"


def test_nothing_sensitive_reaches_the_logs(secure: Secure, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    aud = secure.url + SERVICE
    token = secure.keys.token(aud)
    req = hook_request()
    calls = [
        httpx.post(aud, json=req, headers={"Authorization": f"Bearer {token}"}),  # ok
        httpx.post(aud, json=req, headers={"Authorization": f"Bearer {token}"}),  # replayed: 401
        httpx.post(aud, json=req, headers={"Authorization": "Bearer not.a.jwt"}),
    ]
    bad = hook_request()
    bad["prefetch"]["observation"]["entry"][1]["resource"]["valueQuantity"]["code"] = "furlong"
    calls.append(httpx.post(aud, json=bad, headers=secure.keys.bearer(aud)))
    calls.append(
        httpx.post(
            secure.url + "/agents/gbsg2-recurrence/predict",
            json={"inputs": {**GBSG2_INPUTS, "tumor_size": 9999}},
            headers={"X-API-Key": API_KEY},
        )
    )
    assert [c.status_code for c in calls] == [200, 401, 401, 422, 422]
    assert any("authentication refused" in r.getMessage() for r in caplog.records)  # logging works
    text = "\n".join(r.getMessage() + " " + json.dumps(r.args, default=str) for r in caplog.records)
    for secret in (
        token,
        API_KEY,
        PATIENT["birthDate"],
        "9999",
        "furlong",
        "fmol/mg",
        "Practitioner/1",
        'p1"',
    ):
        assert secret not in text, f"a sensitive value reached the logs: {secret[:12]}"
