"""Server settings, from a YAML file (``REGENT_SETTINGS``) and the environment (``REGENT_*``).

Nothing is read at import.  Authentication is on unless a settings file says ``auth: off``; a
server with ``auth: off`` answers loopback clients only (see :mod:`toolkit.serve.limits`).

Example ``serve.yaml``::

    agents_dir: /srv/regent/agents
    base_url: https://cds.hospital.example/regent      # JWT 'aud' = base_url + the called path
    issuers_file: /etc/regent/issuers.yaml             # the EHRs allowed to call, with their JWKS
    api_keys:                                          # for REST and MCP clients without JWTs
      - {name: research-portal, sha256: 9f86d08...}    # sha256 of the key, never the key
    audit_path: /var/lib/regent/audit.sqlite
    cors_origins: [https://ehr.hospital.example]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator, model_validator

from toolkit.errors import SpecError
from toolkit.specs import Frozen, load_model

#: JWS algorithms accepted by default: asymmetric only (CDS Hooks forbids 'none' and HMAC).
ASYMMETRIC_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)


class Issuer(Frozen):
    """A CDS client (an EHR) allowed to call, with where its public keys are."""

    iss: str = Field(description="The 'iss' claim, exactly as the client sends it.")
    jwks_file: Path | None = Field(None, description="A JWKS JSON file with the issuer's public keys.")
    jwks_url: str | None = Field(None, description="Or its JWKS URL (fetched at start and on unknown kid).")
    tenant: str | None = Field(None, description="Tenant recorded in the audit log when no claim names one.")

    @model_validator(mode="after")
    def _one_source(self) -> Issuer:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError(f"issuer {self.iss!r}: give exactly one of jwks_file or jwks_url")
        return self


class ApiKey(Frozen):
    """A REST/MCP client authenticated by the ``X-API-Key`` header."""

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key.")
    tenant: str | None = None


class IssuersFile(Frozen):
    issuers: list[Issuer]


class Settings(Frozen):
    agents_dir: Path = Field(Path("dist/agents"), description="Folder of agent bundles to serve.")
    base_url: str | None = Field(
        None, description="Public base URL; JWT 'aud' must equal it plus the called path."
    )
    auth: Literal["required", "off"] = Field(
        "required", description="'off' serves loopback clients only, without tokens (development)."
    )
    issuers: list[Issuer] = Field(default_factory=list)
    issuers_file: Path | None = Field(None, description="YAML with 'issuers:' (merged with 'issuers').")
    api_keys: list[ApiKey] = Field(default_factory=list)
    algorithms: list[str] = Field(default_factory=lambda: list(ASYMMETRIC_ALGORITHMS))
    clock_skew_s: int = Field(30, ge=0, le=300, description="Leeway on exp and iat.")
    max_token_lifetime_s: int = Field(
        600, gt=0, description="Tokens expiring later than this from now are refused (bounds the jti cache)."
    )
    audit_path: Path | None = Field(
        None, description="SQLite audit log (and jti replay cache shared by workers)."
    )
    audit_sync: Literal["normal", "full"] = Field(
        "normal", description="'full' fsyncs each audit record (survives power loss; slower)."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed (CORS).")
    max_body_bytes: int = Field(1_000_000, gt=0, description="Larger requests are refused (413).")
    request_timeout_s: float = Field(10.0, gt=0, description="A request still running then answers 504.")
    fhir_servers: list[str] = Field(
        default_factory=list,
        description="URL prefixes of FHIR servers the service may fetch missing data from (empty: never).",
    )
    fhir_timeout_s: float = Field(5.0, gt=0, description="All fetches of one call end by then (then 412).")
    fhir_max_bytes: int = Field(
        5_000_000, gt=0, description="Bytes read from the FHIR server per call; more is refused (422)."
    )
    fhir_max_pages: int = Field(20, gt=0, description="Pages per search; a longer search is refused (422).")
    fhir_code_below: bool = Field(
        False,
        description="The EHR's FHIR server supports 'code:below' on token searches: wildcard codes "
        "are searched with it (otherwise every resource of the type for the patient is searched).",
    )
    audit_key_file: Path | None = Field(
        None,
        description="A secret key (at least 32 bytes; e.g. 64 hex digits) for the audit log's HMAC: "
        "without it, anyone who can write the file can append a record that verifies.",
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, description="Request line and headers larger than this are refused (431)."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="A client still sending its request headers then is disconnected."
    )
    debug_dir: Path | None = Field(
        None,
        description="Write the traceback of each unexpected error to <debug_dir>/<error id>.txt "
        "(tracebacks can hold request data: development only).",
    )
    demo_dir: Path | None = Field(
        None, description="Enables /demo with synthetic patients from <demo_dir>/<agent>/examples/*.json."
    )
    mcp_http: bool = Field(True, description="Serve the agents as MCP tools on /mcp (streamable HTTP).")
    monitoring_dir: Path | None = Field(
        None,
        description="Where 'regent agent monitor --out' writes (monitoring.json, or one folder per "
        "agent): its alerts become /metrics gauges and, where the contract asks, a note on cards.",
    )

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(f"only asymmetric algorithms are allowed; refused {bad}")
        return v

    def all_issuers(self) -> list[Issuer]:
        """Issuers from the settings and from ``issuers_file`` (read now)."""
        found = list(self.issuers)
        if self.issuers_file is not None:
            base = self.issuers_file.parent
            for i in load_model(IssuersFile, self.issuers_file).issuers:
                if i.jwks_file is not None and not i.jwks_file.is_absolute():
                    i = i.model_copy(update={"jwks_file": base / i.jwks_file})
                found.append(i)
        names = [i.iss for i in found]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpecError(f"issuers: {dup} configured more than once")
        return found

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``REGENT_SETTINGS`` (a YAML file), then ``REGENT_*`` variables, then overrides."""
        file = os.environ.get("REGENT_SETTINGS")
        base: dict[str, object] = {}
        if file:
            raw = yaml.safe_load(Path(file).read_text(encoding="utf-8")) or {}
            load_model(cls, Path(file))  # validates, naming the key on error
            base = dict(raw)
            for key in (
                "agents_dir",
                "issuers_file",
                "audit_path",
                "demo_dir",
                "audit_key_file",
                "debug_dir",
                "monitoring_dir",
            ):
                if isinstance(base.get(key), str) and not Path(str(base[key])).is_absolute():
                    base[key] = str(Path(file).parent / str(base[key]))
        env = {
            "agents_dir": os.environ.get("REGENT_AGENTS_DIR"),
            "base_url": os.environ.get("REGENT_BASE_URL"),
            "auth": os.environ.get("REGENT_AUTH"),
            "issuers_file": os.environ.get("REGENT_ISSUERS_FILE"),
            "audit_path": os.environ.get("REGENT_AUDIT_PATH"),
            "demo_dir": os.environ.get("REGENT_DEMO_DIR"),
            "audit_key_file": os.environ.get("REGENT_AUDIT_KEY_FILE"),
            "monitoring_dir": os.environ.get("REGENT_MONITORING_DIR"),
        }
        base.update({k: v for k, v in env.items() if v})
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(base)
