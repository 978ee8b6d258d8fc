"""Authentication: CDS Hooks JWT bearer tokens (per issuer JWKS) and API keys.

A CDS client signs a short-lived JWT for each call (CDS Hooks 2.0 "Trusting CDS Clients"):
``iss`` from an allowlist, ``aud`` equal to the called URL, ``exp``, ``iat`` and a unique
``jti``, signed with an asymmetric key published in the issuer's JWKS.  Every failure is the
same :class:`AuthError` (answered with a bare 401); its reason goes to metrics and a log line
that never holds the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt

from toolkit.errors import SpecError, ToolkitError
from toolkit.serve.settings import Issuer, Settings

log = logging.getLogger("regent.serve.auth")


class AuthError(ToolkitError):
    """The caller is not authenticated; ``reason`` is a short code, never token content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who called: recorded in the audit log."""

    method: str  # "jwt" | "api-key" | "none"
    issuer: str | None = None
    tenant: str | None = None
    jti: str | None = None
    subject: str | None = None  # API key name


ANONYMOUS = Principal("none")


class JtiCache(Protocol):
    def add(self, iss: str, jti: str, exp: float) -> bool:
        """Record a jti; False if it was seen before (a replay)."""
        ...


class MemoryJtiCache:
    """Seen ``(iss, jti)`` pairs until their token expires (one process)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def add(self, iss: str, jti: str, exp: float) -> bool:
        now = time.time()
        with self._lock:
            if now >= self._next_purge:
                self._seen = {k: e for k, e in self._seen.items() if e > now}
                self._next_purge = now + 30
            key = (iss, jti)
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = exp
            return True


class SqliteJtiCache:
    """Seen jtis in a SQLite table, so every worker of a server refuses a replay."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jti_seen (iss TEXT, jti TEXT, exp REAL, PRIMARY KEY (iss, jti))"
        )
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def add(self, iss: str, jti: str, exp: float) -> bool:
        now = time.time()
        with self._lock:
            if now >= self._next_purge:
                self._db.execute("DELETE FROM jti_seen WHERE exp < ?", (now,))
                self._next_purge = now + 30
            try:
                self._db.execute("INSERT INTO jti_seen VALUES (?, ?, ?)", (iss, jti, exp))
            except sqlite3.IntegrityError:
                return False
            return True


class KeySet:
    """One issuer's public keys by ``kid``, from a JWKS file or URL."""

    def __init__(self, issuer: Issuer, *, timeout: float = 5.0) -> None:
        self.issuer = issuer
        self._timeout = timeout
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._last_fetch = 0.0
        self._lock = threading.Lock()
        self.load()

    def load(self) -> None:
        issuer = self.issuer
        if issuer.jwks_file is not None:
            try:
                data = json.loads(Path(issuer.jwks_file).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise SpecError(
                    f"issuer {issuer.iss!r}: jwks_file is not a readable JWKS JSON file"
                ) from None
        else:
            try:
                reply = httpx.get(str(issuer.jwks_url), timeout=self._timeout)
                reply.raise_for_status()
                data = reply.json()
            except (httpx.HTTPError, ValueError):
                log.warning("JWKS fetch failed for a configured issuer; keeping the previous keys")
                return
            finally:
                self._last_fetch = time.monotonic()
        try:
            self._keys = _public_keys(issuer, data)
        except SpecError:
            if issuer.jwks_file is not None:
                raise  # a configuration error: the server does not start
            # a fetched JWKS (at start or on an unknown kid, which any caller can cause): keep
            # the previous keys rather than fail the request
            log.warning("JWKS fetched for a configured issuer is malformed; keeping the previous keys")

    def key_for(self, kid: str | None) -> dict[str, Any] | None:
        key = self._keys.get(kid) if kid is not None else None
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None and self.issuer.jwks_url is not None:
            # key rotation: an unknown kid re-fetches the JWKS, at most once a minute
            with self._lock:
                if time.monotonic() - self._last_fetch > 60:
                    self.load()
            key = self._keys.get(kid)
        return key


def _numeric_date(v: Any) -> bool:
    """A JWT NumericDate: a finite JSON number (not a string, not a boolean)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e11


def _public_keys(issuer: Issuer, data: Any) -> dict[str | None, dict[str, Any]]:
    keys = data.get("keys") if isinstance(data, Mapping) else None
    if not isinstance(keys, list):
        raise SpecError(f"issuer {issuer.iss!r}: JWKS has no 'keys' list")
    parsed: dict[str | None, dict[str, Any]] = {}
    for k in keys:
        if not isinstance(k, Mapping) or k.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # symmetric ('oct') or malformed keys are never used
        if any(p in k for p in ("d", "p", "q")):
            raise SpecError(f"issuer {issuer.iss!r}: JWKS holds a private key; publish public keys only")
        kid = k.get("kid")
        parsed[kid if isinstance(kid, str) else None] = dict(k)
    return parsed


class Authenticator:
    """Checks CDS Hooks JWTs and API keys per the settings."""

    def __init__(self, settings: Settings, jti_cache: JtiCache) -> None:
        self.settings = settings
        self.required = settings.auth == "required"
        self.keysets = {i.iss: KeySet(i) for i in settings.all_issuers()} if self.required else {}
        self.api_keys = {k.sha256: k for k in settings.api_keys}
        self.jti_cache = jti_cache
        if self.required and not self.keysets and not self.api_keys:
            log.warning("auth is required but no issuers or API keys are configured: every call gets 401")
        if self.required and self.keysets and not settings.base_url:
            log.warning(
                "base_url is not set: JWT audiences are checked against the Host header; set it in production"
            )

    def authenticate(
        self, authorization: str | None, api_key: str | None, audience: str, *, allow_api_key: bool
    ) -> Principal:
        """The caller of a request to ``audience`` (the called URL), or raise :class:`AuthError`."""
        if not self.required:
            return ANONYMOUS
        if api_key is not None:
            if not allow_api_key:
                raise AuthError("api-key-not-accepted-here")
            return self._api_key(api_key)
        if not authorization:
            raise AuthError("no-token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("not-bearer")
        return self.verify_jwt(token.strip(), audience)

    def _api_key(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode()).hexdigest()
        for known, entry in self.api_keys.items():
            if hmac.compare_digest(known, digest):
                return Principal("api-key", tenant=entry.tenant, subject=entry.name)
        raise AuthError("unknown-api-key")

    def verify_jwt(self, token: str, audience: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except Exception:  # PyJWTError, and whatever an attacker's bytes make a decoder raise
            raise AuthError("malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            raise AuthError("algorithm-not-allowed")
        iss = unverified.get("iss")
        if not isinstance(iss, str):
            raise AuthError("no-issuer")
        keyset = self.keysets.get(iss)
        if keyset is None:
            raise AuthError("unknown-issuer")
        kid = header.get("kid")
        jwk = keyset.key_for(kid if isinstance(kid, str) else None)
        if jwk is None:
            raise AuthError("unknown-key")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
        except Exception:  # a published key that cannot be used (PyJWKError, binascii, KeyError ...)
            raise AuthError("key-does-not-fit-algorithm") from None
        skew = self.settings.clock_skew_s
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                leeway=skew,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("wrong-audience") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("not-yet-valid") from None
        except Exception:  # PyJWTError, or a claim of a type PyJWT does not expect
            raise AuthError("invalid-signature-or-claims") from None
        now = time.time()
        iat, exp, jti = claims["iat"], claims["exp"], claims["jti"]
        if not _numeric_date(iat) or not _numeric_date(exp):
            raise AuthError("exp-or-iat-not-a-number")  # PyJWT accepts '"1900000000"' as a number
        if iat > now + skew:
            raise AuthError("issued-in-the-future")
        if exp > now + self.settings.max_token_lifetime_s + skew:
            raise AuthError("lifetime-too-long")
        if not isinstance(jti, str) or not jti:
            raise AuthError("no-jti")
        if not self.jti_cache.add(iss, jti, float(exp) + skew):
            raise AuthError("replayed-jti")
        tenant = claims.get("tenant")
        return Principal(
            "jwt",
            issuer=iss,
            tenant=tenant if isinstance(tenant, str) else keyset.issuer.tenant,
            jti=jti,
        )
