"""The wire format of federated messages: JSON, with numpy arrays as typed base64 blobs.

Every request and reply crosses a transport as these bytes, the in-process transport included,
so what a unit test sends is exactly what a Flower deployment sends and the byte counts that
``results.json`` reports are real.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

_ND = "__nd__"
_ALLOWED_DTYPES = {"float64", "int64", "bool"}


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        arr = value
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.dtype.kind != "b":
            raise TypeError(f"cannot send arrays of dtype {value.dtype}")
        return {_ND: [str(arr.dtype), list(arr.shape), base64.b64encode(arr.tobytes()).decode("ascii")]}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"cannot send a {type(value).__name__}")


def _hook(obj: dict[str, Any]) -> Any:
    if _ND in obj and len(obj) == 1:
        dtype, shape, data = obj[_ND]
        if dtype not in _ALLOWED_DTYPES:
            raise ValueError(f"array dtype {dtype!r} not allowed")
        arr = np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).copy()
        return arr.reshape(shape)
    return obj


def encode(message: dict[str, Any]) -> bytes:
    """Serialise a message; NaN and infinities are allowed (JSON extension, Python reads them)."""
    return json.dumps(message, default=_default, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> dict[str, Any]:
    out = json.loads(data.decode("utf-8"), object_hook=_hook)
    if not isinstance(out, dict):
        raise ValueError("a message must be a JSON object")
    return out
