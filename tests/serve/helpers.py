"""Test helpers: a real uvicorn server on loopback, signing keys and CDS Hooks JWTs, FHIR requests."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from toolkit.cli.demo import free_port

ISS = "https://ehr.example.org"
API_KEY = "test-api-key-0123456789"


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL."""
    from toolkit.serve.server import uvicorn_options

    port = free_port()
    settings = getattr(getattr(app, "state", None), "settings", None)
    options = uvicorn_options(settings) if settings is not None else {}
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    assert srv.started, "server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


class Keys:
    """An issuer's ES384 and RS384 signing keys, with their public JWKS written to ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.ec = ec.generate_private_key(ec.SECP384R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub_ec = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        pub_rsa = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        pub_ec.update(kid="ec-1", use="sig", alg="ES384")
        pub_rsa.update(kid="rsa-1", use="sig", alg="RS384")
        self.jwks = {"keys": [pub_ec, pub_rsa]}
        self.jwks_file = folder / "jwks.json"
        self.jwks_file.write_text(json.dumps(self.jwks), encoding="utf-8")

    def token(self, aud: str, *, alg: str = "ES384", kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISS, "aud": aud, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4()), **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        key = self.ec if alg.startswith("ES") else self.rsa
        return jwt.encode(
            payload, key, algorithm=alg, headers={"kid": kid or ("ec-1" if alg.startswith("ES") else "rsa-1")}
        )

    def bearer(self, aud: str, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(aud, **kw)}"}


def days_ago(n: int) -> str:
    return (dt.date.today() - dt.timedelta(days=n)).isoformat()


def obs(code: str, value: Any, unit: str | None = None, coded: bool = False, when: str | None = None) -> dict:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "effectiveDateTime": when or days_ago(10),
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p1"},
    }
    if coded:
        res["valueCodeableConcept"] = {"coding": [{"code": value}]}
    else:
        res["valueQuantity"] = {"value": value, "unit": unit, "code": unit}
    return res


def gbsg2_observations() -> list[dict[str, Any]]:
    return [
        obs("63889-4", "Post", coded=True),
        obs("21889-1", 25, "mm"),
        obs("21858-7", "II", coded=True),
        obs("21893-3", 3),
        obs("40557-1", 40, "fmol/mg"),
        obs("40556-3", 60, "fmol/mg"),
    ]


PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-05-05"}

GBSG2_INPUTS = {
    "age_years": 55,
    "hormone_therapy": "yes",
    "menopausal_status": "Post",
    "tumor_size": 25,
    "tumor_grade": "II",
    "positive_nodes": 3,
    "progesterone_receptor": 40,
    "estrogen_receptor": 60,
}


def hook_request(observations: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    observations = gbsg2_observations() if observations is None else observations
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
        "prefetch": {
            "patient": PATIENT,
            "observation": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": o} for o in observations],
            },
            # the MedicationStatement search was run and found nothing: hormone therapy "no"
            "medicationstatement": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        },
        **extra,
    }
