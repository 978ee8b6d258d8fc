"""CDS Hooks JWT authentication, API keys and CORS against the real server (auth required)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.serve.conftest import Secure
from tests.serve.helpers import API_KEY, GBSG2_INPUTS, Keys, hook_request

SERVICE = "/cds-services/gbsg2-recurrence"


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _alg_none(keys: Keys, aud: str) -> str:
    now = int(time.time())
    claims = {"iss": "https://ehr.example.org", "aud": aud, "iat": now, "exp": now + 60, "jti": "n1"}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _hs256_with_public_key(keys: Keys, aud: str) -> str:
    """The classic key-confusion attack: HMAC 'signed' with the issuer's public RSA key."""
    pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": "https://ehr.example.org", "aud": aud, "iat": now, "exp": now + 60, "jti": "h1"}
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    import hashlib
    import hmac

    signing_input = f"{header}.{_b64(claims)}"
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def _wrong_signature(keys: Keys, aud: str) -> str:
    other = Keys.__new__(Keys)
    from cryptography.hazmat.primitives.asymmetric import ec

    other.ec = ec.generate_private_key(ec.SECP384R1())
    return other.token(aud)  # same kid, same claims shape, a key the issuer never published


def _tampered(keys: Keys, aud: str) -> str:
    header, payload, sig = keys.token(aud).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tenant"] = "someone-else"
    return f"{header}.{_b64(claims)}.{sig}"


ATTACKS: dict[str, Callable[[Keys, str], str | None]] = {
    "no token": lambda k, aud: None,
    "wrong signature": _wrong_signature,
    "alg none": _alg_none,
    "HS256 signed with the public key": _hs256_with_public_key,
    "expired": lambda k, aud: k.token(aud, iat=int(time.time()) - 600, exp=int(time.time()) - 300),
    "iat in the future": lambda k, aud: k.token(aud, iat=int(time.time()) + 600, exp=int(time.time()) + 700),
    "wrong aud": lambda k, aud: k.token("https://other.example.org/cds-services/gbsg2-recurrence"),
    "aud of another service": lambda k, aud: k.token(aud.replace("gbsg2-recurrence", "x")),
    "unknown iss": lambda k, aud: k.token(aud, iss="https://evil.example.org"),
    "no jti": lambda k, aud: k.token(aud, jti=None),
    "no exp": lambda k, aud: k.token(aud, exp=None),
    "unknown kid": lambda k, aud: k.token(aud, kid="ec-9"),
    "lifetime too long": lambda k, aud: k.token(aud, exp=int(time.time()) + 86400),
    "tampered payload": _tampered,
    "not a JWT": lambda k, aud: "abc.def",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_jwt_attack_gets_a_bare_401(secure: Secure, attack: str) -> None:
    aud = secure.url + SERVICE
    token = ATTACKS[attack](secure.keys, aud)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    reply = httpx.post(aud, json=hook_request(), headers=headers)
    assert reply.status_code == 401, reply.text
    assert reply.content == b"" and reply.headers["www-authenticate"] == "Bearer"


def test_replayed_jti_is_refused(secure: Secure) -> None:
    aud = secure.url + SERVICE
    headers = secure.keys.bearer(aud)
    first = httpx.post(aud, json=hook_request(), headers=headers)
    assert first.status_code == 200, first.text
    again = httpx.post(aud, json=hook_request(), headers=headers)
    assert again.status_code == 401 and again.content == b""


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_valid_token_is_accepted(secure: Secure, alg: str) -> None:
    aud = secure.url + SERVICE
    reply = httpx.post(aud, json=hook_request(), headers=secure.keys.bearer(aud, alg=alg))
    assert reply.status_code == 200, reply.text
    assert reply.json()["cards"][0]["summary"]


def test_unauthenticated_bad_body_still_gets_401_not_422(secure: Secure) -> None:
    reply = httpx.post(
        secure.url + SERVICE, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 401 and reply.content == b""


def test_rest_takes_jwt_or_api_key_cds_hooks_jwt_only(secure: Secure) -> None:
    url = secure.url + "/agents/gbsg2-recurrence/predict"
    body = {"inputs": GBSG2_INPUTS}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    by_key = httpx.post(url, json=body, headers={"X-API-Key": API_KEY})
    assert by_key.status_code == 200, by_key.text
    by_jwt = httpx.post(url, json=body, headers=secure.keys.bearer(url))
    assert by_jwt.status_code == 200 and by_jwt.json()["risk"] == by_key.json()["risk"]
    hooks = httpx.post(secure.url + SERVICE, json=hook_request(), headers={"X-API-Key": API_KEY})
    assert hooks.status_code == 401


def test_public_endpoints_need_no_credentials(secure: Secure) -> None:
    for path in (
        "/cds-services",
        "/healthz",
        "/readyz",
        "/metrics",
        "/agents",
        "/agents/gbsg2-recurrence/model-card",
    ):
        assert httpx.get(secure.url + path).status_code == 200, path


def test_cors_allows_only_listed_origins(secure: Secure) -> None:
    pre = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    ok = httpx.options(secure.url + SERVICE, headers={"Origin": "https://ehr.example.org", **pre})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://ehr.example.org"
    bad = httpx.options(secure.url + SERVICE, headers={"Origin": "https://evil.example.org", **pre})
    assert "access-control-allow-origin" not in bad.headers


def test_settings_refuse_symmetric_algorithms() -> None:
    from toolkit.errors import SpecError
    from toolkit.serve.settings import Settings

    with pytest.raises(ValueError, match="only asymmetric"):
        Settings(algorithms=["HS256"])
    with pytest.raises(ValueError, match="exactly one of jwks_file or jwks_url"):
        Settings.model_validate({"issuers": [{"iss": "x"}]})
    assert issubclass(SpecError, ValueError)


def test_a_jwks_with_a_private_key_is_refused(keys: Keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from toolkit.errors import SpecError
    from toolkit.serve.auth import KeySet
    from toolkit.serve.settings import Issuer

    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(keys.ec))
    f = tmp_path / "jwks.json"
    f.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(SpecError, match="private key"):
        KeySet(Issuer(iss="x", jwks_file=f))
