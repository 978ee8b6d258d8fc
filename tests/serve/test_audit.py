"""The audit log: one record per call, feedback linked by card uuid, tampering detected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.serve.conftest import Secure
from tests.serve.helpers import API_KEY, GBSG2_INPUTS, hook_request
from toolkit.cli.main import app
from toolkit.serve.audit import AuditError, AuditLog, read_records, verify_audit

SERVICE = "/cds-services/gbsg2-recurrence"


def _regent(*args: str) -> Result:
    """``regent ARGS`` in-process (a subprocess would spend seconds importing the toolkit)."""
    return CliRunner().invoke(app, list(args))


def test_calls_and_feedback_are_audited_without_values(secure: Secure) -> None:
    aud = secure.url + SERVICE
    req = hook_request()
    card = httpx.post(aud, json=req, headers=secure.keys.bearer(aud)).json()["cards"][0]
    fb_url = aud + "/feedback"
    offered = next(r for r in card["overrideReasons"] if r["code"] == "not-relevant")
    fb = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": offered["code"], "system": offered["system"]}},
                "outcomeTimestamp": "2026-11-28T10:00:00Z",
            }
        ]
    }
    assert httpx.post(fb_url, json=fb, headers=secure.keys.bearer(fb_url)).status_code == 200
    rest = httpx.post(
        secure.url + "/agents/gbsg2-recurrence/explain",
        json={"inputs": GBSG2_INPUTS},
        headers={"X-API-Key": API_KEY},
    )
    assert rest.status_code == 200

    call, feedback = list(read_records(secure.audit, card=card["uuid"]))
    assert call["kind"] == "cds-hooks" and call["call"] == "patient-view"
    assert call["hook_instance"] == req["hookInstance"] and call["agent"] == "gbsg2-recurrence"
    assert call["version"] and len(call["bundle_sha256"]) == 64 and len(call["inputs_sha256"]) == 64
    assert call["issuer"] == "https://ehr.example.org" and call["tenant"] == "hospital-a" and call["jti"]
    assert 0 < call["risk"] < 1 and call["status"] == 200 and call["latency_ms"] > 0
    assert feedback["kind"] == "feedback" and feedback["outcome"] == "overridden"
    assert feedback["override_reason"] == "not-relevant"
    (last,) = read_records(secure.audit, last=1)
    assert last["kind"] == "rest" and last["call"] == "explain" and last["client"] == "portal"

    text = secure.audit.read_bytes().decode("latin-1")
    for value in ('"Post"', "1970-05-05", "fmol/mg", "Practitioner/1"):
        assert value not in text  # no patient value, date or FHIR content in the log
    assert verify_audit(secure.audit).ok


def test_refused_and_invalid_calls_are_audited_with_status(secure: Secure) -> None:
    url = secure.url + "/cds-services/gbsg2-recurrence"
    few = hook_request()
    few["prefetch"]["observation"]["entry"] = few["prefetch"]["observation"]["entry"][:2]
    assert httpx.post(url, json=few, headers=secure.keys.bearer(url)).status_code == 412
    (last,) = read_records(secure.audit, last=1)
    assert last["status"] == 412 and last["risk"] is None and last["card_uuid"] is None


def _copy(secure: Secure, tmp_path: Path) -> Path:
    dst = tmp_path / "audit.sqlite"
    src = sqlite3.connect(secure.audit)
    with sqlite3.connect(dst) as out:
        src.backup(out)
    src.close()
    return dst


def test_the_log_refuses_update_and_delete(secure: Secure, tmp_path: Path) -> None:
    path = _copy(secure, tmp_path)
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET body = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit WHERE seq = 1")


def _tamper(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")  # an attacker would
    db.execute(sql)
    db.commit()
    db.close()


def test_verify_detects_a_changed_record(secure: Secure, tmp_path: Path) -> None:
    path = _copy(secure, tmp_path)
    assert verify_audit(path).ok and _regent("audit", "verify", str(path)).exit_code == 0
    _tamper(path, "UPDATE audit SET body = replace(body, 'gbsg2', 'gbsg3') WHERE seq = 2")
    result = verify_audit(path)
    assert not result.ok and any("record 2: content changed" in p for p in result.problems)
    cli = _regent("audit", "verify", str(path))
    assert cli.exit_code == 1 and "record 2" in cli.output


def test_verify_detects_a_deleted_record(secure: Secure, tmp_path: Path) -> None:
    path = _copy(secure, tmp_path)
    _tamper(path, "DELETE FROM audit WHERE seq = 2")
    problems = verify_audit(path).problems
    assert any("records 2..2 are missing" in p for p in problems)


def test_an_anchor_detects_records_cut_from_the_end(secure: Secure, tmp_path: Path) -> None:
    path = _copy(secure, tmp_path)
    head = _regent("audit", "head", str(path)).output.strip()
    assert verify_audit(path, anchor=head).ok
    last = int(head.split(":")[0])
    _tamper(path, f"DELETE FROM audit WHERE seq = {last}")
    assert verify_audit(path).ok  # the chain alone cannot see a cut tail ...
    assert not verify_audit(path, anchor=head).ok  # ... the anchor does
    assert _regent("audit", "verify", str(path), "--anchor", head).exit_code == 1


def test_two_writers_keep_one_chain(tmp_path: Path) -> None:
    """Two workers append to the same file: the chain stays linear."""
    import threading

    logs = [AuditLog(tmp_path / "a.sqlite"), AuditLog(tmp_path / "a.sqlite")]

    def write(log: AuditLog) -> None:
        for i in range(50):
            log.append({"kind": "rest", "i": i})

    threads = [threading.Thread(target=write, args=(lg,)) for lg in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify_audit(tmp_path / "a.sqlite")
    assert result.ok and result.records == 100


def test_audit_show_prints_json_lines(secure: Secure) -> None:
    out = _regent("audit", "show", str(secure.audit), "--last", "2")
    assert out.exit_code == 0
    assert len([json.loads(line)["seq"] for line in out.output.splitlines()]) == 2
    bad = _regent("audit", "verify", str(secure.audit.parent / "missing" / "x.sqlite"))
    assert isinstance(bad.exception, AuditError) and "not found" in str(bad.exception)
