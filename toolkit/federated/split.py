"""Split one registry into one registry per site (for demonstrations and tests).

A real federation never does this: each hospital already holds its own registry.  The
synthetic heart-failure registry records a ``site_id`` per person, so splitting it gives
site registries whose union is the pooled registry, and a federated run over them can be
checked against a pooled run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from toolkit.errors import RegistryError
from toolkit.registry import schema as S
from toolkit.registry.store import Registry, RegistryData, write_registry


def split_registry(registry: Path | str, out_dir: Path | str, *, by: str = S.SITE) -> dict[str, Path]:
    """Write ``<out_dir>/<site>.duckdb`` for every value of ``person.<by>``; returns them by site."""
    out_dir = Path(out_dir)
    with Registry(registry) as reg:
        person = reg.sql("SELECT * FROM person")
        if by not in person.columns:
            raise RegistryError(f"{registry}: person has no column {by!r} to split on")
        if person[by].isna().any():
            raise RegistryError(f"{registry}: some persons have no {by!r}; cannot assign them to a site")
        tables = {t: reg.sql(f"SELECT * FROM {t}") for t in ("observation_period", "events")}
        optional = {t: reg.sql(f"SELECT * FROM {t}") for t in ("notes", "images") if t in reg.table_names()}
        if "images" in optional:  # image uris are relative to the registry file: make them absolute
            folder = Path(registry).resolve().parent
            optional["images"]["uri"] = [
                None if u is None else str((folder / u).resolve()) for u in optional["images"]["uri"]
            ]
        attributes = reg.attributes()
        meta = reg.metadata()
    out: dict[str, Path] = {}
    for site in sorted(person[by].astype(str).unique()):
        if not S.is_identifier(site.lower()):
            raise RegistryError(f"{registry}: site {site!r} is not usable as a file name")
        ids = set(person.loc[person[by].astype(str) == site, S.PERSON_ID])

        def part(frame: pd.DataFrame, ids: set[int] = ids) -> pd.DataFrame:
            return frame[frame[S.PERSON_ID].isin(ids)].reset_index(drop=True)

        data = RegistryData(
            person=part(person),
            observation_period=part(tables["observation_period"]),
            events=part(tables["events"]),
            notes=part(optional["notes"]) if "notes" in optional else None,
            images=part(optional["images"]) if "images" in optional else None,
            attributes=attributes,
            metadata={
                **{k: v for k, v in meta.items() if k != "schema_version"},
                "site": site,
                "split_from": str(registry),
            },
        )
        out[site] = write_registry(out_dir / f"{site}.duckdb", data)
    return out
