"""Tiny inline registries for hand-checked cohort tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.registry import RegistryData, write_registry
from toolkit.registry.store import Attribute


def day(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


def make_registry(
    path: Path,
    persons: list[dict[str, Any]],
    events: list[tuple[Any, ...]],
    attributes: tuple[Attribute, ...] = (),
) -> Path:
    """persons: dicts with person_id, birth_date, sex, site_id, obs (start, end) and attributes;
    events: (person_id, time, code[, numeric_value[, text_value[, unit]]])."""
    person = pd.DataFrame([{k: v for k, v in p.items() if k != "obs"} for p in persons])
    person["birth_date"] = pd.to_datetime(person["birth_date"]).dt.date
    obs = pd.DataFrame(
        [
            {"person_id": p["person_id"], "start_time": day(p["obs"][0]), "end_time": day(p["obs"][1])}
            for p in persons
            if p.get("obs")
        ]
    )
    rows = []
    for e in events:
        e = tuple(e) + (None,) * (6 - len(e))
        rows.append(
            {
                "person_id": e[0],
                "time": day(e[1]),
                "code": e[2],
                "numeric_value": e[3],
                "text_value": e[4],
                "unit": e[5],
            }
        )
    ev = pd.DataFrame(rows, columns=["person_id", "time", "code", "numeric_value", "text_value", "unit"])
    ev["numeric_value"] = ev["numeric_value"].astype(float)
    return write_registry(path, RegistryData(person, obs, ev, attributes=attributes))
