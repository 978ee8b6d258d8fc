"""De-identify a whole registry: ``regent registry deidentify IN OUT --key-file K``.

* person ids: keyed pseudonyms (HMAC-SHA256 of the id under the site's key) or random surrogate
  ids with a separate link table (written only where the caller says, never beside OUT);
* every date and time of a person moves by the same per-person shift (intervals preserved);
* ages over 89 are top-coded: a birth date is moved so that no age exceeds 90, numeric
  attributes named ``age*`` are capped at 90;
* declared geography attributes keep only their first characters (``postcode: 3``);
* declared direct-identifier attributes are dropped;
* notes are scrubbed (:mod:`.text`), dates in them shifted; DICOM headers de-identified
  (:mod:`.dicom`) into ``OUT``'s own image folder;
* a k-anonymity and l-diversity report on the declared quasi-identifiers is written beside OUT
  (``<OUT>.deid.json``) and returned.
"""

from __future__ import annotations

import json
import secrets
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from toolkit.errors import DeidentificationError
from toolkit.io import atomic_write_json
from toolkit.registry import schema as S
from toolkit.registry.deid.corpus import Note
from toolkit.registry.deid.dicom import deidentify_dicom
from toolkit.registry.deid.engine import NoteDeidentifier
from toolkit.registry.deid.keys import date_shift_days, load_or_create_key, pseudonym, text_pseudonym
from toolkit.registry.deid.notes import deidentify_notes
from toolkit.registry.store import Attribute, Registry, RegistryData, write_registry
from toolkit.specs import Frozen, parse_model, read_yaml

TOP_AGE = 90


class DeidConfig(Frozen):
    """De-identification settings (YAML with ``--config``; every key optional)."""

    ids: str = Field("hmac", pattern="^(hmac|surrogate)$", description="hmac pseudonyms or random surrogates")
    max_shift_days: int = Field(365, ge=1, le=3650)
    top_code_age: int = Field(89, ge=1, description="Ages above this are shown as 90.")
    geography: dict[str, int] = Field(default_factory=dict, description="attribute -> characters kept")
    drop: list[str] = Field(default_factory=list, description="Direct-identifier attributes to remove.")
    quasi_identifiers: list[str] = Field(
        default_factory=lambda: ["sex", "birth_year", "site_id"], description="For the k-anonymity report."
    )
    sensitive: list[str] = Field(default_factory=list, description="Attributes for the l-diversity report.")
    k: int = Field(5, ge=2)
    l_diversity: int = Field(2, ge=2, alias="l")
    names_file: str | None = Field(None, description="Known names to remove from notes, one per line.")
    notes: str = Field(
        "mask",
        pattern="^(mask|surrogate)$",
        description="Identifiers in notes: typed masks ([NAME]; dates shifted) or consistent surrogates.",
    )

    @staticmethod
    def load(path: Path | str) -> DeidConfig:
        from toolkit.errors import SpecError

        return parse_model(
            DeidConfig, read_yaml(Path(path), error=SpecError), source=str(path), error=SpecError
        )


@dataclass
class DeidReport:
    persons: int
    notes: int
    identifiers: dict[str, int]
    dicom_files: int
    dicom_dropped: int
    top_coded: int
    k_anonymity: dict[str, Any]
    l_diversity: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def summary(self) -> str:
        ka = self.k_anonymity
        lines = [
            f"de-identified {self.persons} persons, {self.notes} notes, {self.dicom_files} DICOM files "
            f"({self.dicom_dropped} missing or unreadable: dropped)",
            "identifiers removed from notes: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.identifiers.items())) or "none"),
            f"ages top-coded: {self.top_coded}",
            f"k-anonymity on {ka['quasi_identifiers']}: smallest class {ka['k']}, "
            f"{ka['classes_below_k']} classes ({ka['persons_below_k']} persons) below k={ka['target_k']}",
        ]
        for attr, ld in self.l_diversity.items():
            lines.append(
                f"l-diversity of {attr}: l={ld['l']}, {ld['classes_below_l']} classes below l={ld['target_l']}"
            )
        return "\n".join(lines)


def anonymity_report(
    person: pd.DataFrame, qis: list[str], sensitive: list[str], k: int, l_target: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Equivalence classes on the quasi-identifiers: the smallest class, classes below k; l per class."""
    missing = [c for c in qis + sensitive if c not in person.columns]
    if missing:
        raise DeidentificationError(
            f"quasi_identifiers/sensitive: unknown column(s) {missing}; available: {sorted(person.columns)}"
        )
    keys = person[qis].astype(str)
    sizes = keys.value_counts()
    ka = {
        "quasi_identifiers": qis,
        "target_k": k,
        "k": int(sizes.min()) if len(sizes) else 0,
        "classes": len(sizes),
        "classes_below_k": int((sizes < k).sum()),
        "persons_below_k": int(sizes[sizes < k].sum()),
    }
    ld: dict[str, Any] = {}
    for s in sensitive:
        distinct = person.assign(_k=keys.agg("|".join, axis=1)).groupby("_k")[s].nunique()
        ld[s] = {
            "target_l": l_target,
            "l": int(distinct.min()) if len(distinct) else 0,
            "classes_below_l": int((distinct < l_target).sum()),
        }
    return ka, ld


def _shift(series: pd.Series, days: pd.Series) -> pd.Series:
    return pd.to_datetime(series) + pd.to_timedelta(days.to_numpy(), unit="D")


def deidentify_registry(
    source: Path | str,
    target: Path | str,
    *,
    key_file: Path | str,
    config: DeidConfig | None = None,
    link_table: Path | str | None = None,
) -> DeidReport:
    """Write a de-identified copy of ``source`` at ``target`` (atomically, images included)."""
    cfg = config or DeidConfig()
    source, target = Path(source), Path(target)
    if source.resolve() == target.resolve():
        raise DeidentificationError(f"{target}: the de-identified registry must not replace its source")
    if cfg.ids == "surrogate" and link_table is None:
        raise DeidentificationError("surrogate ids need --link-table PATH (kept apart from the registry)")
    key = load_or_create_key(key_file)
    names: list[str] = []
    if cfg.names_file:
        names = [
            n.strip() for n in Path(cfg.names_file).read_text(encoding="utf-8").splitlines() if n.strip()
        ]
    with Registry(source) as reg:
        person = reg.sql("SELECT * FROM person")
        obs = reg.sql("SELECT * FROM observation_period")
        events = reg.sql("SELECT * FROM events")
        present = reg.table_names()
        notes = reg.sql("SELECT * FROM notes") if "notes" in present else None
        images = reg.sql("SELECT * FROM images") if "images" in present else None
        attributes = reg.attributes()
        meta = reg.metadata()
    for name in [*cfg.geography, *cfg.drop]:
        if name not in person.columns:
            raise DeidentificationError(
                f"geography/drop: person has no attribute {name!r}; available: {sorted(person.columns)}"
            )

    ids = person[S.PERSON_ID].astype("int64")
    if cfg.ids == "hmac":
        new_ids = ids.map(lambda i: pseudonym(key, int(i)))
        if new_ids.duplicated().any():
            raise DeidentificationError(
                "two persons received the same pseudonym; use --config ids: surrogate"
            )
    else:
        pool: set[int] = set()
        while len(pool) < len(ids):
            pool.add(secrets.randbits(62))
        new_ids = pd.Series(list(pool), index=ids.index)
    id_map = dict(zip(ids, new_ids, strict=True))
    shift_of = {int(i): date_shift_days(key, int(i), max_days=cfg.max_shift_days) for i in ids}

    def remap(frame: pd.DataFrame, time_cols: tuple[str, ...]) -> pd.DataFrame:
        days = frame[S.PERSON_ID].map(shift_of)
        if days.isna().any():
            raise DeidentificationError("some rows refer to persons missing from the person table")
        out = frame.copy()
        for c in time_cols:
            if c in out:
                out[c] = _shift(out[c], days)
        out[S.PERSON_ID] = out[S.PERSON_ID].map(id_map).astype("int64")
        return out

    # --- person: shifted, top-coded birth dates; coarse geography; no direct identifiers --------
    p = person.drop(columns=list(cfg.drop))
    birth = _shift(p["birth_date"], p[S.PERSON_ID].map(shift_of)) if "birth_date" in p else None
    top_coded = 0
    if birth is not None:
        last = remap(obs, ("start_time", "end_time")).groupby(S.PERSON_ID)["end_time"].max()
        last_of = p[S.PERSON_ID].map(id_map).map(last)
        age = (last_of - birth).dt.days / 365.25
        old = age > cfg.top_code_age
        floor = last_of - pd.DateOffset(years=TOP_AGE)
        top_coded = int(old.sum())
        birth = birth.where(~old, floor)
        p["birth_date"] = birth.dt.date
    for c in p.columns:
        if c.startswith("age") and pd.api.types.is_numeric_dtype(p[c]):
            top_coded += int((p[c] > cfg.top_code_age).sum())
            p[c] = p[c].where(~(p[c] > cfg.top_code_age), TOP_AGE)
    for c, keep in cfg.geography.items():
        p[c] = p[c].astype("string").str.strip().str[:keep].str.strip()  # "E1 6AN" -> "E1", "94110" -> "941"
    p[S.PERSON_ID] = p[S.PERSON_ID].map(id_map).astype("int64")

    found: Counter[str] = Counter()
    new_notes = None
    if notes is not None:
        texts: list[Any] = list(notes["text"])
        rows = [
            Note(str(i), str(text), str(int(pid)))
            for i, (pid, text) in enumerate(zip(notes[S.PERSON_ID], texts, strict=True))
            if not (text is None or (isinstance(text, float) and np.isnan(text)))
        ]
        cleaned = deidentify_notes(
            rows,
            mode=cfg.notes,
            key=key,
            engine=NoteDeidentifier(names=names),
            shift_of=lambda person: shift_of[int(person)],
        )
        for c in cleaned:  # each person's notes are read together (see toolkit.registry.deid.engine)
            found.update(sp.kind for sp in c.spans)
            texts[int(c.note_id)] = c.text
        new_notes = remap(notes.assign(text=texts), (S.TIME,))

    tmp_images = target.with_name(f".{target.stem}.images.tmp-{uuid.uuid4().hex[:8]}")
    final_images = target.with_name(f"{target.stem}.images")
    new_images = None
    n_dicom = unreadable = 0
    try:
        if images is not None and len(images):
            uris: list[str | None] = []
            for row in images.itertuples():
                src = (source.resolve().parent / str(row.uri)) if row.uri else None
                try:
                    if src is None or not src.is_file():
                        raise FileNotFoundError(str(row.image_id))
                    deidentify_dicom(
                        src,
                        tmp_images / f"{row.image_id}.dcm",
                        key=key,
                        pseudo_id=text_pseudonym(key, str(getattr(row, S.PERSON_ID))),
                        shift_days=shift_of[int(getattr(row, S.PERSON_ID))],
                    )
                except Exception:  # a missing or unreadable file is dropped, never copied as is
                    unreadable += 1
                    uris.append(None)
                    continue
                uris.append(f"{final_images.name}/{row.image_id}.dcm")
                n_dicom += 1
            new_images = remap(images.assign(uri=uris), (S.TIME,))
        kept_attrs = tuple(a for a in attributes if a.name not in cfg.drop)
        data = RegistryData(
            person=p,
            observation_period=remap(obs, ("start_time", "end_time")),
            events=remap(events, (S.TIME,)),
            notes=new_notes,
            images=new_images,
            attributes=tuple(Attribute(a.name, a.dtype, a.levels, a.unit, a.description) for a in kept_attrs),
            metadata={
                **{k: v for k, v in meta.items() if k not in ("schema_version", "seed")},
                "deidentified": json.dumps(
                    {"ids": cfg.ids, "dates_shifted": True, "top_code_age": cfg.top_code_age}
                ),
            },
        )
        write_registry(target, data)
        if tmp_images.exists():
            if final_images.exists():
                shutil.rmtree(final_images)
            tmp_images.replace(final_images)
    except BaseException:
        shutil.rmtree(tmp_images, ignore_errors=True)
        raise
    if link_table is not None and cfg.ids == "surrogate":
        link = Path(link_table)
        link.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"person_id": ids, "surrogate_id": new_ids}).to_parquet(link, index=False)
    view = p.assign(birth_year=pd.to_datetime(p["birth_date"]).dt.year) if "birth_date" in p else p
    ka, ld = anonymity_report(view, list(cfg.quasi_identifiers), list(cfg.sensitive), cfg.k, cfg.l_diversity)
    report = DeidReport(
        len(p), 0 if notes is None else len(notes), dict(found), n_dicom, unreadable, top_coded, ka, ld
    )
    atomic_write_json(target.with_name(f"{target.stem}.deid.json"), report.to_dict())
    return report
