"""The site's secret key, keyed pseudonyms (HMAC-SHA256) and per-person date shifts.

Pseudonyms and shifts are deterministic given the key: re-running de-identification with the
same key gives the same pseudonyms (new data links to old), and without the key nobody can
recompute them from an identifier.  The key never leaves the site and is never written into
the de-identified registry.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from toolkit.errors import DeidentificationError


def load_or_create_key(path: Path | str) -> bytes:
    """Read a hex key file, or create one (32 random bytes, readable by the owner only)."""
    path = Path(path)
    if path.exists():
        try:
            key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except ValueError:
            raise DeidentificationError(f"{path}: not a key file (expected hex digits)") from None
        if len(key) < 16:
            raise DeidentificationError(f"{path}: key too short ({len(key)} bytes; expected at least 16)")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
    return key


def _digest(key: bytes, purpose: str, value: str) -> bytes:
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()


def pseudonym(key: bytes, person_id: int) -> int:
    """A keyed pseudonym: a positive 62-bit integer (fits BIGINT)."""
    return int.from_bytes(_digest(key, "person", str(person_id))[:8], "big") >> 2


def text_pseudonym(key: bytes, value: str, *, prefix: str = "P") -> str:
    return prefix + _digest(key, "text", value)[:6].hex().upper()


def date_shift_days(key: bytes, person_id: int | str, *, max_days: int = 365) -> int:
    """The person's shift: a non-zero number of days in [-max_days, max_days]."""
    n = int.from_bytes(_digest(key, "shift", str(person_id))[:4], "big") % (2 * max_days)
    return n - max_days if n < max_days else n - max_days + 1


def uid(key: bytes, value: str) -> str:
    """A DICOM UID derived from an original UID (``2.25.<128-bit integer>``)."""
    return "2.25." + str(int.from_bytes(_digest(key, "uid", value)[:16], "big"))
