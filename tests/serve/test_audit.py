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


def _forge_append(path: Path, body: dict, *, mac: str | None = None) -> None:
    """What someone with write access to the file (and no key) can do: append a record whose
    hash is recomputed, so the plain chain still verifies."""
    import hashlib

    from toolkit.serve.audit import canonical

    db = sqlite3.connect(path)
    seq, prev = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    rec = {**body, "seq": seq + 1}
    text = canonical(rec)
    digest = hashlib.sha256((prev + text).encode()).hexdigest()
    db.execute(
        "INSERT INTO audit (seq, time, kind, card_uuid, body, prev_hash, hash, mac) VALUES (?,?,?,?,?,?,?,?)",
        (seq + 1, rec["time"], rec["kind"], rec.get("card_uuid"), text, prev, digest, mac),
    )
    db.commit()
    db.close()


def test_a_forged_appended_record_fails_verification_with_the_key(tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    key.write_text("ab" * 32)
    from toolkit.serve.audit import read_key

    log = AuditLog(tmp_path / "a.sqlite", key=read_key(key))
    for i in range(3):
        log.append({"kind": "rest", "status": 200, "i": i})
    log.close()
    head = verify_audit(tmp_path / "a.sqlite").head
    forged = {"kind": "cds-hooks", "time": "2026-11-28T10:00:00+00:00", "card_uuid": None, "risk": 0.01}
    _forge_append(tmp_path / "a.sqlite", forged, mac="0" * 64)
    assert verify_audit(tmp_path / "a.sqlite", anchor=head).ok  # hash chain and anchor alone pass ...
    result = verify_audit(tmp_path / "a.sqlite", anchor=head, key=read_key(key))
    assert not result.ok and any("record 4: MAC" in p for p in result.problems)  # ... the MAC does not
    cli = _regent("audit", "verify", str(tmp_path / "a.sqlite"), "--key", str(key))
    assert cli.exit_code == 1 and "record 4" in cli.output
    plain = _regent("audit", "verify", str(tmp_path / "a.sqlite"))
    assert plain.exit_code == 0 and "MACs NOT checked" in plain.output


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit SET kind = 'feedback' WHERE seq = 2",
        "UPDATE audit SET time = '2020-01-01T00:00:00+00:00' WHERE seq = 2",
        "UPDATE audit SET card_uuid = 'x' WHERE seq = 2",
    ],
)
def test_every_column_is_under_the_hash(tmp_path: Path, sql: str) -> None:
    log = AuditLog(tmp_path / "a.sqlite")
    for i in range(3):
        log.append({"kind": "cds-hooks", "card_uuid": f"c{i}", "i": i})
    log.close()
    assert verify_audit(tmp_path / "a.sqlite").ok
    _tamper(tmp_path / "a.sqlite", sql)
    problems = verify_audit(tmp_path / "a.sqlite").problems
    assert any(p.startswith("record 2: column") for p in problems), problems


def test_feedback_free_text_and_unoffered_codes_are_not_stored(secure: Secure) -> None:
    aud = secure.url + SERVICE
    card = httpx.post(aud, json=hook_request(), headers=secure.keys.bearer(aud)).json()["cards"][0]
    fb_url = aud + "/feedback"
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "1948-03-02",
        "overrideReason": {
            "reason": {
                "system": "http://ehr.example.org",
                "code": "MRN-77120934",
                "display": "born 1948-03-02",
            },
            "userComment": "Pt MRN 77120934, DOB 1948-03-02, already on therapy",
        },
    }
    ok = httpx.post(fb_url, json={"feedback": [item]}, headers=secure.keys.bearer(fb_url))
    assert ok.status_code == 200, ok.text
    (record,) = read_records(secure.audit, last=1)
    assert record["kind"] == "feedback" and record["override_reason"] == "unlisted"
    assert record["comment_given"] is True
    text = secure.audit.read_bytes().decode("latin-1")
    assert "77120934" not in text and "1948-03-02" not in text
    for bad in ({**item, "card": "MRN-77120934"}, {**item, "acceptedSuggestions": [{"id": "MRN-1"}]}):
        reply = httpx.post(fb_url, json={"feedback": [bad]}, headers=secure.keys.bearer(fb_url))
        assert reply.status_code == 422 and "77120934" not in reply.text
    (refused,) = read_records(secure.audit, last=1)
    assert refused["kind"] == "refused" and refused["status"] == 422


def test_refused_calls_are_audited_without_the_token(secure: Secure) -> None:
    aud = secure.url + SERVICE
    token = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl"
    assert (
        httpx.post(aud, json=hook_request(), headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    (rec,) = read_records(secure.audit, last=1)
    assert rec["kind"] == "refused" and rec["status"] == 401 and rec["reason"] == "unknown-issuer"
    assert rec["agent"] == "gbsg2-recurrence" and rec["auth"] == "none" and rec["jti"] is None
    assert token not in secure.audit.read_bytes().decode("latin-1")
