"""What a served call leaves for monitoring: flags, reference bins, pseudonyms; reading it back."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.serve.helpers import GBSG2_INPUTS
from toolkit.agents.bundle import write_sums
from toolkit.agents.load import Agent
from toolkit.errors import MissingDataError
from toolkit.monitor.calls import MonitorError, call_fields, patient_pseudonym, read_calls, refused_fields
from toolkit.serve.audit import AuditLog


@pytest.fixture(scope="module")
def agent(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Agent:
    """The gbsg2 agent, with an invalid estrogen receptor value taken as missing (then imputed)."""
    dst = tmp_path_factory.mktemp("calls") / gbsg2_bundle.name
    shutil.copytree(gbsg2_bundle, dst)
    contract = yaml.safe_load((dst / "agent.yaml").read_text())
    for spec in contract["inputs"]:
        if spec["name"] == "estrogen_receptor":
            spec["invalid"] = "missing"
    (dst / "agent.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    write_sums(dst)
    return Agent.load(dst)


def test_a_bundle_carries_its_reference_and_every_input_gets_a_bin(agent: Agent) -> None:
    assert agent.reference is not None and (agent.path / "reference.json").is_file()
    p = agent.predict(GBSG2_INPUTS)
    assert p.flags == {}
    fields = call_fields(agent.reference, p.inputs, p.flags)
    assert fields["flags"] == {}
    assert set(fields["bins"]) == set(agent.model.features_in_)
    assert all(isinstance(b, int) for b in fields["bins"].values())


def test_missing_imputed_and_out_of_range_inputs_are_flagged_and_get_no_bin(agent: Agent) -> None:
    p = agent.predict({**GBSG2_INPUTS, "progesterone_receptor": None, "estrogen_receptor": 5000})
    assert p.flags["progesterone_receptor"] == ("missing", "imputed")
    assert p.flags["estrogen_receptor"] == ("missing", "out_of_range", "imputed")  # invalid: taken as missing
    fields = call_fields(agent.reference, p.inputs, p.flags)
    assert fields["bins"]["progesterone_receptor"] is None and fields["bins"]["estrogen_receptor"] is None
    assert fields["flags"]["estrogen_receptor"] == ["imputed", "missing", "out_of_range"]
    ranges = agent.model.training_ranges["tumor_size"]
    high = agent.predict({**GBSG2_INPUTS, "tumor_size": min(ranges[1] + 20, 199)})
    assert high.flags == {"tumor_size": ("out_of_range",)}  # outside training, still observed
    assert call_fields(agent.reference, high.inputs, high.flags)["bins"]["tumor_size"] is not None


def test_a_refused_call_names_only_the_missing_inputs(agent: Agent) -> None:
    with pytest.raises(MissingDataError) as err:
        agent.predict({k: v for k, v in GBSG2_INPUTS.items() if k != "tumor_grade"})
    assert refused_fields(err.value.fields) == {"flags": {"tumor_grade": ["missing"]}}


def test_patient_pseudonyms_are_keyed_and_stable() -> None:
    a, b = patient_pseudonym("p1", b"a" * 32), patient_pseudonym("p1", b"b" * 32)
    assert a != b and a == patient_pseudonym("p1", b"a" * 32) and "p1" not in a and len(a) == 64
    assert patient_pseudonym("p1", None) != a


def test_read_calls_keeps_this_bundle_and_names_what_else_it_found(agent: Agent, tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite")
    base = {"agent": agent.name, "status": 200, "risk": 0.2, "flags": {}, "bins": {}}
    log.append({**base, "kind": "cds-hooks", "version": agent.version, "bundle_sha256": agent.bundle_hash})
    log.append({**base, "kind": "rest", "version": "9.9", "bundle_sha256": "other"})
    log.append({"kind": "feedback", "agent": agent.name, "card_uuid": "c1", "outcome": "accepted"})
    log.append({"kind": "refused", "reason": "no-token"})
    log.close()
    calls = read_calls(tmp_path / "audit.sqlite", agent=agent.name, bundle_sha256=agent.bundle_hash)
    assert (
        len(calls.predictions) == 1 and calls.records == 4 and calls.versions == {agent.version: 1, "9.9": 1}
    )
    assert calls.predictions["time"].iloc[0].tzinfo is not None and len(calls.feedback) == 1


def test_an_unreadable_audit_log_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="audit log not found"):
        read_calls(tmp_path / "none.sqlite", agent="a", bundle_sha256="x")
    bad = tmp_path / "bad.sqlite"
    sqlite3.connect(bad).execute("CREATE TABLE other (x)").connection.close()
    with pytest.raises(MonitorError, match=f"{bad}: not a readable Regent audit log"):
        read_calls(bad, agent="a", bundle_sha256="x")
