"""The audit log: one hash-chained, append-only SQLite record per call and per feedback.

Each record is canonical JSON (``body``) with ``hash = sha256(prev_hash + body)``, so changing
or deleting a record breaks the chain from there on; triggers refuse UPDATE and DELETE so the
server itself cannot rewrite history.  No patient value is stored: inputs are represented by a
hash of their canonical JSON.  :func:`verify_audit` walks the chain
(``regent audit verify``); an external anchor (a head hash kept elsewhere, ``regent audit head``)
also detects records cut from the end.

Record fields: ``time`` (UTC ISO), ``kind`` (cds-hooks | rest | mcp | feedback), ``call`` (the
hook, REST operation or tool), ``hook_instance``, ``agent``, ``version``, ``bundle_sha256``,
``issuer``, ``tenant``, ``jti``, ``auth`` (jwt | api-key | none), ``inputs_sha256``, ``risk``,
``card_uuid``, ``status`` (HTTP-like code), ``latency_ms``; feedback adds ``outcome`` and
``override_reason``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    card_uuid TEXT,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_card ON audit (card_uuid);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditError(ToolkitError, ValueError):
    """The audit log is unreadable or its chain is broken."""


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def inputs_digest(inputs: Mapping[str, Any]) -> str:
    """SHA-256 of the inputs' canonical JSON: links identical calls without storing values."""
    return hashlib.sha256(canonical(dict(inputs)).encode()).hexdigest()


def _chain(prev: str, body: str) -> str:
    return hashlib.sha256((prev + body).encode()).hexdigest()


class AuditLog:
    """Append records to the SQLite audit log at ``path`` (safe across threads and workers)."""

    def __init__(self, path: Path | str, *, sync: str = "normal") -> None:
        """``sync``: "normal" (WAL; a record survives a crash of the server, and reaches the disk
        at the next checkpoint) or "full" (fsync per record: survives power loss, ~10 ms a call
        on slow disks)."""
        if sync not in ("normal", "full"):
            raise AuditError(f"audit sync: expected 'normal' or 'full'; got {sync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={sync.upper()}")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> str:
        """Append one record (the time is added); return its hash."""
        rec = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"), **record}
        body = canonical(rec)
        with self._lock:
            # BEGIN IMMEDIATE takes the write lock first, so two workers never fork the chain
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                prev = row[0] if row else GENESIS
                digest = _chain(prev, body)
                self._db.execute(
                    "INSERT INTO audit (time, kind, card_uuid, body, prev_hash, hash) VALUES (?,?,?,?,?,?)",
                    (rec["time"], rec.get("kind", ""), rec.get("card_uuid"), body, prev, digest),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return digest

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class VerifyResult:
    records: int
    head: str  # "<seq>:<hash>" of the last record
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _open_ro(path: Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise AuditError(f"{path}: audit log not found")
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)


def verify_audit(path: Path | str, *, anchor: str | None = None) -> VerifyResult:
    """Walk the chain; report every changed, inserted or deleted record.

    ``anchor`` is a ``"<seq>:<hash>"`` recorded earlier (``regent audit head``): the record must
    still be there with that hash, which also catches records cut from the end of the log.
    """
    db = _open_ro(Path(path))
    problems: list[str] = []
    prev, expected_seq, n, head = GENESIS, 1, 0, f"0:{GENESIS}"
    try:
        rows = db.execute("SELECT seq, body, prev_hash, hash FROM audit ORDER BY seq")
        by_seq: dict[int, str] = {}
        for seq, body, prev_hash, digest in rows:
            n += 1
            if seq != expected_seq:
                problems.append(f"records {expected_seq}..{seq - 1} are missing (deleted)")
            if prev_hash != prev:
                problems.append(f"record {seq}: prev_hash does not match record {seq - 1}'s hash")
            if _chain(prev_hash, body) != digest:
                problems.append(f"record {seq}: content changed (hash mismatch)")
            prev, expected_seq, head = digest, seq + 1, f"{seq}:{digest}"
            by_seq[seq] = digest
    except sqlite3.DatabaseError as exc:
        raise AuditError(f"{path}: not a readable audit log ({type(exc).__name__})") from None
    finally:
        db.close()
    if anchor is not None:
        seq_s, _, digest = anchor.partition(":")
        if not seq_s.isdigit() or len(digest) != 64:
            raise AuditError("anchor: expected '<seq>:<sha256 hex>' as printed by 'regent audit head'")
        if by_seq.get(int(seq_s)) != digest:
            problems.append(f"anchor record {seq_s} is missing or changed (records cut or rewritten)")
    return VerifyResult(n, head, tuple(problems))


def read_records(path: Path | str, *, card: str | None = None, last: int | None = None) -> Iterator[dict]:
    """Records as dicts (with ``seq``), optionally those of one card uuid or the last N."""
    db = _open_ro(Path(path))
    try:
        if card is not None:
            rows = db.execute("SELECT seq, body FROM audit WHERE card_uuid = ? ORDER BY seq", (card,))
        elif last is not None:
            rows = db.execute(
                "SELECT seq, body FROM (SELECT seq, body FROM audit ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (last,),
            )
        else:
            rows = db.execute("SELECT seq, body FROM audit ORDER BY seq")
        for seq, body in rows:
            yield {"seq": seq, **json.loads(body)}
    finally:
        db.close()
