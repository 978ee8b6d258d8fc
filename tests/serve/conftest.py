from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.serve.helpers import API_KEY, ISS, Keys, running
from toolkit.serve.app import create_app
from toolkit.serve.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn server on a loopback port serving the gbsg2 bundle, auth off (loopback only)."""
    audit = tmp_path_factory.mktemp("audit") / "audit.sqlite"
    with running(create_app(Settings(agents_dir=gbsg2_bundle.parent, auth="off", audit_path=audit))) as url:
        yield url


@dataclass(frozen=True)
class Secure:
    url: str
    keys: Keys
    audit: Path
    settings: Settings


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("jwks"))


def secure_settings(bundle_dir: Path, keys: Keys, folder: Path, **extra: object) -> Settings:
    issuers = folder / "issuers.yaml"
    issuers.write_text(
        yaml.safe_dump({"issuers": [{"iss": ISS, "jwks_file": str(keys.jwks_file), "tenant": "hospital-a"}]}),
        encoding="utf-8",
    )
    return Settings.model_validate(
        {
            "agents_dir": bundle_dir,
            "issuers_file": issuers,
            "api_keys": [{"name": "portal", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}],
            "audit_path": folder / "audit.sqlite",
            "cors_origins": ["https://ehr.example.org"],
            "demo_dir": REPO / "agents",
            **extra,
        }
    )


@pytest.fixture(scope="module")
def secure(gbsg2_bundle: Path, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    """The gbsg2 server with auth required: issuer allowlist + JWKS file, an API key, audit, CORS."""
    folder = tmp_path_factory.mktemp("secure")
    settings = secure_settings(gbsg2_bundle.parent, keys, folder)
    with running(create_app(settings)) as url:
        yield Secure(url, keys, folder / "audit.sqlite", settings)


@pytest.fixture(scope="module")
def variant_bundle(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gbsg2 bundle re-packaged (hashes rewritten, as packaging does) with a wildcard code for
    hormonal therapy (ATC L02B*: tamoxifen L02BA01 is under it) and an estrogen receptor value
    that the contract takes as missing (then imputed) when it is not a valid number."""
    import shutil

    from toolkit.agents.bundle import write_sums

    dst = tmp_path_factory.mktemp("variant") / gbsg2_bundle.name
    shutil.copytree(gbsg2_bundle, dst)
    contract = yaml.safe_load((dst / "agent.yaml").read_text())
    for spec in contract["inputs"]:
        if spec["name"] == "hormone_therapy":
            spec["fhir"]["codes"] = ["http://www.whocc.no/atc|L02B*"]
        if spec["name"] == "estrogen_receptor":
            spec["invalid"] = "missing"
    (dst / "agent.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    write_sums(dst)
    return dst
