"""Import a one-row-per-patient table (CSV or Parquet) into the canonical registry schema.

A small mapping file says which column is the id, the index date (or a fixed anchor), the
duration and its unit, the event indicator and the code it becomes, the values that mean a
competing event, and the static covariates with their types and levels.  Every source row
becomes one person; a row that cannot be mapped stops the import with a message naming the
mapping key and column and a row count.  Messages may name a status code or category level
that is not in the mapping, never a person's measurements or identifiers.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from toolkit.errors import ImportMappingError
from toolkit.registry import schema as S
from toolkit.registry.store import Attribute, RegistryData, write_registry
from toolkit.specs import Frozen, load_model

Scalar = int | float | str | bool

_UNIT_DAYS = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12.0, "years": 365.25}


def _norm(value: object) -> str:
    """Normalise a cell or a mapping value so that 1, 1.0, True and '1' compare equal."""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value).strip()


def _check_code(code: str) -> str:
    ns = S.namespace(code)
    if ns is None or ns not in S.KNOWN_NAMESPACES:
        raise ValueError(
            f"code {code!r} must be namespaced with one of {sorted(S.KNOWN_NAMESPACES)} "
            "(e.g. 'LOCAL:RECURRENCE' or 'DEATH')"
        )
    return code


class IndexMap(Frozen):
    column: str | None = Field(None, description="Column holding each person's index date.")
    anchor: dt.date | None = Field(None, description="Fixed index date when the source has none.")
    code: str = Field("STUDY:ENROLLED", description="Entry event written at the index time.")

    @model_validator(mode="after")
    def _one_source(self) -> IndexMap:
        if (self.column is None) == (self.anchor is None):
            raise ValueError("give exactly one of 'column' or 'anchor'")
        _check_code(self.code)
        return self


class DurationMap(Frozen):
    column: str
    unit: Literal["days", "weeks", "months", "years"] = "days"


class OutcomeMap(Frozen):
    column: str = Field(description="Status column: which values mean the event, which censoring.")
    event_values: list[Scalar] = Field(min_length=1)
    censored_values: list[Scalar] = Field(default=[0])
    code: str = Field(description="Code the event becomes, e.g. DEATH or LOCAL:RECURRENCE.")

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        return _check_code(v)


class CompetingMap(Frozen):
    values: list[Scalar] = Field(min_length=1)
    code: str

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        return _check_code(v)


class AgeMap(Frozen):
    column: str = Field(description="Age in whole years at the index date.")


class SexMap(Frozen):
    column: str | None = None
    values: dict[str, Literal["F", "M"]] = Field(
        default_factory=dict, description="Source value -> 'F' or 'M'; unlisted values are an error."
    )
    constant: Literal["F", "M"] | None = Field(None, description="Everyone has this sex.")

    @model_validator(mode="after")
    def _one_source(self) -> SexMap:
        if (self.column is None) == (self.constant is None):
            raise ValueError("give exactly one of 'column' (with 'values') or 'constant'")
        return self


class AttributeMap(Frozen):
    name: str
    column: str
    dtype: Literal["float", "int", "bool", "category", "string"]
    levels: list[str] | None = None
    values: dict[str, str | int | float | bool] | None = Field(
        None, description="Optional recoding of source values before typing."
    )
    unit: str | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not S.is_identifier(v):
            raise ValueError("must be a lower-case identifier like 'tumor_size'")
        return v


class FlatMapping(Frozen):
    """A mapping from a one-row-per-patient table to the canonical registry schema."""

    name: str
    description: str = ""
    citation: str = ""
    id_column: str | None = None
    site: str = "SITE1"
    site_column: str | None = None
    index: IndexMap
    duration: DurationMap
    outcome: OutcomeMap
    competing: list[CompetingMap] = Field(default_factory=list)
    age: AgeMap | None = None
    sex: SexMap | None = None
    attributes: list[AttributeMap] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> FlatMapping:
        seen: dict[str, str] = {}
        groups = [
            ("outcome.event_values", self.outcome.event_values),
            ("outcome.censored_values", self.outcome.censored_values),
        ]
        groups += [(f"competing[{i}].values", c.values) for i, c in enumerate(self.competing)]
        for key, values in groups:
            for v in values:
                if _norm(v) in seen:
                    raise ValueError(f"{key}: value {v!r} is also listed in {seen[_norm(v)]}")
                seen[_norm(v)] = key
        names = [a.name for a in self.attributes]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"attributes: duplicate names {sorted(dupes)}")
        return self


def load_mapping(path: Path | str) -> FlatMapping:
    return load_model(FlatMapping, Path(path), error=ImportMappingError)


def read_table(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ImportMappingError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError) as exc:
        raise ImportMappingError(f"{path}: could not read the table ({type(exc).__name__})") from None
    raise ImportMappingError(f"{path}: expected a .csv, .tsv or .parquet file; got {suffix!r}")


def _subtract_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year - years, day=28)


def flat_to_registry(frame: pd.DataFrame, mapping: FlatMapping, *, source: str) -> RegistryData:
    """Map a one-row-per-patient frame to registry tables.  ``source`` names the mapping file."""

    def need(key: str, column: str | None) -> pd.Series:
        if column is None or column not in frame.columns:
            raise ImportMappingError(
                f"{source}: {key}: column {column!r} not in the data; available: {list(frame.columns)}"
            )
        return frame[column]

    n = len(frame)
    if n == 0:
        raise ImportMappingError(f"{source}: the data has no rows")

    if mapping.id_column:
        ids = pd.to_numeric(need("id_column", mapping.id_column), errors="coerce")
        if ids.isna().any() or not np.all(np.mod(ids.to_numpy(float), 1) == 0):
            raise ImportMappingError(
                f"{source}: id_column {mapping.id_column!r}: expected whole-number ids in every row"
            )
        person_id = ids.astype("int64").to_numpy()
        if len(np.unique(person_id)) != n:
            raise ImportMappingError(f"{source}: id_column: {n - len(np.unique(person_id))} duplicate ids")
    else:
        person_id = np.arange(1, n + 1, dtype="int64")

    # index dates
    if mapping.index.column:
        idx = pd.to_datetime(need("index.column", mapping.index.column), errors="coerce")
        if idx.isna().any():
            raise ImportMappingError(
                f"{source}: index.column: {int(idx.isna().sum())} rows have a missing or unparseable date"
            )
        index_time = idx.dt.normalize().to_numpy(dtype="datetime64[ns]")
    else:
        assert mapping.index.anchor is not None
        index_time = np.full(n, np.datetime64(mapping.index.anchor, "ns"))

    # durations
    dur = pd.to_numeric(need("duration.column", mapping.duration.column), errors="coerce")
    bad = dur.isna() | (dur < 0)
    if bad.any():
        raise ImportMappingError(
            f"{source}: duration.column {mapping.duration.column!r}: {int(bad.sum())} rows have a "
            "missing or negative duration; expected a number >= 0"
        )
    days = dur.to_numpy(dtype=float) * _UNIT_DAYS[mapping.duration.unit]
    end_time = index_time + (days * 86_400_000_000_000).round().astype("timedelta64[ns]")

    # status
    status = need("outcome.column", mapping.outcome.column).map(_norm)
    code_of: dict[str, str | None] = {_norm(v): mapping.outcome.code for v in mapping.outcome.event_values}
    code_of.update({_norm(v): None for v in mapping.outcome.censored_values})
    for comp in mapping.competing:
        code_of.update({_norm(v): comp.code for v in comp.values})
    unknown = sorted(set(status.unique()) - set(code_of))
    if unknown:
        raise ImportMappingError(
            f"{source}: outcome.column {mapping.outcome.column!r}: values {unknown} are neither "
            "event_values, censored_values nor a competing value"
        )
    ev_code = status.map(code_of)

    # person table
    person = pd.DataFrame({S.PERSON_ID: person_id})
    if mapping.age is not None:
        age = pd.to_numeric(need("age.column", mapping.age.column), errors="coerce")
        index_dates = pd.to_datetime(index_time).date
        person["birth_date"] = [
            None if pd.isna(a) else _subtract_years(d, int(np.floor(a)))
            for a, d in zip(age, index_dates, strict=True)
        ]
    else:
        person["birth_date"] = None
    if mapping.sex is not None and mapping.sex.constant is not None:
        person[S.SEX] = mapping.sex.constant
    elif mapping.sex is not None:
        raw = need("sex.column", mapping.sex.column)
        sex_map = {_norm(k): v for k, v in mapping.sex.values.items()}
        mapped = raw.map(lambda x: None if pd.isna(x) else sex_map.get(_norm(x), "?"))
        if (mapped == "?").any():
            raise ImportMappingError(
                f"{source}: sex.values: {int((mapped == '?').sum())} rows have a value that is not listed"
            )
        person[S.SEX] = mapped
    else:
        person[S.SEX] = None
    if mapping.site_column:
        person[S.SITE] = need("site_column", mapping.site_column).map(
            lambda x: None if pd.isna(x) else _norm(x)
        )
    else:
        person[S.SITE] = mapping.site

    attributes: list[Attribute] = []
    for i, am in enumerate(mapping.attributes):
        col = need(f"attributes[{i}].column", am.column)
        if am.values is not None:
            recode = {_norm(k): v for k, v in am.values.items()}
            col = col.map(lambda x, r=recode: None if pd.isna(x) else r.get(_norm(x), x))
        levels = None
        if am.dtype == "category":
            vals = col.dropna().map(_norm)
            levels = list(am.levels) if am.levels else sorted(vals.unique())
            outside = sorted(set(vals.unique()) - set(levels))
            if outside:
                raise ImportMappingError(
                    f"{source}: attributes[{i}].levels: column {am.column!r} has values {outside} "
                    f"not among the levels {levels}"
                )
            person[am.name] = col.map(lambda x: None if pd.isna(x) else _norm(x))
        elif am.dtype in ("float", "int"):
            num = pd.to_numeric(col, errors="coerce")
            if (num.isna() & col.notna()).any():
                raise ImportMappingError(
                    f"{source}: attributes[{i}]: column {am.column!r} has non-numeric values"
                )
            person[am.name] = num.astype("Int64") if am.dtype == "int" else num.astype(float)
        elif am.dtype == "bool":
            b = col.map(lambda x: None if pd.isna(x) else _norm(x))
            if not set(b.dropna().unique()) <= {"0", "1"}:
                raise ImportMappingError(
                    f"{source}: attributes[{i}]: column {am.column!r} must hold 0/1 or true/false"
                )
            person[am.name] = b.map(lambda x: None if x is None else x == "1").astype("boolean")
        else:
            person[am.name] = col.astype("string")
        attributes.append(
            Attribute(am.name, am.dtype, tuple(levels) if levels else None, am.unit, am.description)
        )

    observation = pd.DataFrame({S.PERSON_ID: person_id, "start_time": index_time, "end_time": end_time})
    entry = pd.DataFrame({S.PERSON_ID: person_id, S.TIME: index_time, "code": mapping.index.code})
    has = ev_code.notna().to_numpy()
    outcome = pd.DataFrame(
        {S.PERSON_ID: person_id[has], S.TIME: end_time[has], "code": ev_code[has].to_numpy()}
    )
    events = pd.concat([entry, outcome], ignore_index=True).sort_values([S.PERSON_ID, S.TIME], kind="stable")
    return RegistryData(
        person=person,
        observation_period=observation,
        events=events.reset_index(drop=True),
        attributes=tuple(attributes),
        metadata={
            "name": mapping.name,
            "source": "flat-import",
            "description": mapping.description,
            "citation": mapping.citation,
        },
    )


def import_flat(
    frame: pd.DataFrame, mapping: FlatMapping, out: Path | str, *, source: str, format: str = "duckdb"
) -> Path:
    """Map ``frame`` with ``mapping`` and write the registry to ``out`` atomically."""
    return write_registry(out, flat_to_registry(frame, mapping, source=source), format=format)
