"""The audit log: one hash-chained, keyed, append-only SQLite record per call, refusal and feedback.

Each record is canonical JSON (``body``) that holds every field, its sequence number included;
``hash = sha256(prev_hash + body)`` chains the records, and ``mac = HMAC-SHA256(key, hash)``
with the server's secret key (``audit_key_file``) makes a record that someone appended or
rewrote with a recomputed hash fail verification.  The other columns (``time``, ``kind``,
``card_uuid``, and any column added later for indexing) are copies of body fields: verification
checks each against the body, so every column is under the hash.  Triggers refuse UPDATE and
DELETE so the server itself cannot rewrite history.  No patient value is stored: inputs are
represented by a hash of their canonical JSON.  :func:`verify_audit` walks the chain
(``regent audit verify --key``); an external anchor (a head hash kept elsewhere, ``regent audit
head``) also detects records cut from the end.

Record fields: ``seq``, ``time`` (UTC ISO), ``kind`` (cds-hooks | rest | mcp | feedback |
refused | error), ``call`` (the hook, REST operation or tool), ``hook_instance``, ``agent``,
``version``, ``bundle_sha256``, ``issuer``, ``tenant``, ``jti``, ``auth`` (jwt | api-key |
none), ``inputs_sha256``, ``risk``, ``card_uuid``, ``status`` (HTTP-like code), ``latency_ms``;
feedback adds ``outcome``, ``override_reason`` (a code the card offered, or ``unlisted``),
``comment_given`` and ``accepted_suggestions``; refusals add ``route`` and ``reason``; errors
``error_id``.  New fields are new body keys: they are under the hash with no change here.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import hmac
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
    hash TEXT NOT NULL,
    mac TEXT
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


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


#: columns that chain the records; every other column must equal the body field of its name
CHAIN_COLUMNS = ("seq", "body", "prev_hash", "hash", "mac")


def read_key(path: Path | str) -> bytes:
    """The audit HMAC key from a file: 64+ hex digits, or 32+ raw bytes."""
    try:
        raw = Path(path).read_bytes().strip()
    except OSError:
        raise AuditError(f"{path}: audit key file not readable") from None
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) < 32:
        raise AuditError(f"{path}: audit key must hold at least 32 bytes (64 hex digits)")
    return key


_AUDITED: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("regent_audited", default=None)


def track_audit() -> list[bool]:
    """Start tracking whether the current request writes an audit record (see :func:`mark_audited`)."""
    flag = [False]
    _AUDITED.set(flag)
    return flag


def mark_audited() -> None:
    """The current request has its audit record (a shared list: visible across threads)."""
    flag = _AUDITED.get()
    if flag is not None:
        flag[0] = True


class AuditLog:
    """Append records to the SQLite audit log at ``path`` (safe across threads and workers)."""

    def __init__(self, path: Path | str, *, sync: str = "normal", key: bytes | None = None) -> None:
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
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(audit)")}
        if "mac" not in columns:  # a log from before keyed MACs
            self._db.execute("ALTER TABLE audit ADD COLUMN mac TEXT")
        self._key = key
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> str:
        """Append one record (its sequence number and time are added); return its hash."""
        with self._lock:
            # BEGIN IMMEDIATE takes the write lock first, so two workers never fork the chain
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
                now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
                rec = {**record, "seq": seq, "time": now, "kind": record.get("kind", "")}
                rec.setdefault("card_uuid", None)
                body = canonical(rec)
                digest = _chain(prev, body)
                mac = _mac(self._key, digest) if self._key is not None else None
                self._db.execute(
                    "INSERT INTO audit (seq, time, kind, card_uuid, body, prev_hash, hash, mac) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (seq, rec["time"], rec["kind"], rec["card_uuid"], body, prev, digest, mac),
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
    macs_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def _open_ro(path: Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise AuditError(f"{path}: audit log not found")
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)


def _check_record(row: Mapping[str, Any], prev: str, key: bytes | None) -> list[str]:
    seq, body, digest = row["seq"], row["body"], row["hash"]
    problems = []
    if row["prev_hash"] != prev:
        problems.append(f"record {seq}: prev_hash does not match record {seq - 1}'s hash")
    if _chain(row["prev_hash"], body) != digest:
        problems.append(f"record {seq}: content changed (hash mismatch)")
    try:
        fields = json.loads(body)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        return [*problems, f"record {seq}: body is not a JSON object"]
    for column, value in row.items():
        if column not in CHAIN_COLUMNS and fields.get(column) != value:
            problems.append(f"record {seq}: column {column!r} differs from the hashed record")
    if fields.get("seq") != seq:
        problems.append(f"record {seq}: sequence number differs from the hashed record")
    if key is not None and (row["mac"] is None or not hmac.compare_digest(row["mac"], _mac(key, digest))):
        problems.append(f"record {seq}: MAC missing or wrong (appended or rewritten without the key)")
    return problems


def verify_audit(path: Path | str, *, anchor: str | None = None, key: bytes | None = None) -> VerifyResult:
    """Walk the chain; report every changed, inserted, appended or deleted record.

    ``key`` (the server's ``audit_key_file``): every record's MAC is checked too, so a record
    appended or rewritten with a recomputed hash is caught.  ``anchor`` is a ``"<seq>:<hash>"``
    recorded earlier (``regent audit head``): the record must still be there with that hash,
    which also catches records cut from the end of the log.
    """
    db = _open_ro(Path(path))
    db.row_factory = sqlite3.Row
    problems: list[str] = []
    prev, expected_seq, n, head = GENESIS, 1, 0, f"0:{GENESIS}"
    by_seq: dict[int, str] = {}
    try:
        for r in db.execute("SELECT * FROM audit ORDER BY seq"):
            row = dict(r)
            row.setdefault("mac", None)
            seq = row["seq"]
            n += 1
            if seq != expected_seq:
                problems.append(f"records {expected_seq}..{seq - 1} are missing (deleted)")
            problems += _check_record(row, prev, key)
            prev, expected_seq, head = row["hash"], seq + 1, f"{seq}:{row['hash']}"
            by_seq[seq] = row["hash"]
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
    return VerifyResult(n, head, tuple(problems), macs_checked=key is not None)


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
            yield {**json.loads(body), "seq": seq}
    finally:
        db.close()
