"""The cohort specification: YAML and the equivalent frozen pydantic objects.

Relative times are written as ``365d`` (days), ``12h`` (hours), ``2w``, ``6mo`` or ``5y`` (a year is
365.25 days, a month 30.4375), negative before index;
``all`` as a window start means "any time before".  ``docs/cohorts.md`` documents the language
with worked examples; ``regent cohort schema`` prints the JSON Schema.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from toolkit.errors import CohortSpecError
from toolkit.registry import schema as S
from toolkit.specs import Duration, Frozen, parse_duration, parse_model, read_yaml


def parse_offset(value: str | int | float) -> float:
    """``'-365d'`` -> -365.0 days; ``'5y'`` -> 1826.25; ``'12h'`` -> 0.5; a bare number is days
    (:func:`toolkit.specs.parse_duration`, units and day lengths in ``UNIT_DAYS``)."""
    return parse_duration(value)


#: Relative time: '-365d', '0d', '6mo', '5y', '12h'; checked when the spec is loaded.
Offset = Duration


def horizon_column(horizon: str | int | float) -> str:
    """The cohort's label column of a horizon: ``label_365d`` for whole days; otherwise named as
    written (``5y`` -> ``label_5y``, ``6mo`` -> ``label_6mo``), a usable SQL name either way."""
    days = parse_offset(horizon)
    if float(days).is_integer():
        return f"label_{int(days)}d"
    written = str(horizon).strip() if isinstance(horizon, str) else f"{days:g}d"
    return "label_" + re.sub(r"[^A-Za-z0-9]", "_", written)


def _check_code_pattern(code: str) -> str:
    """A code or prefix pattern in the registry's canonical form (``ICD10//I50*`` -> ``ICD10:I50*``).

    Namespaces are open: a code of any namespace (or none, as MEDS ``HR``) is accepted; only
    ``regent registry check`` warns about namespaces Regent does not know.
    """
    if not isinstance(code, str) or not code.strip() or code != code.strip():
        raise ValueError(f"code {code!r}: expected a non-empty code without surrounding spaces")
    if "*" in code[:-1]:
        raise ValueError(f"code {code!r}: '*' is allowed only at the end (a prefix match)")
    if code == "*":
        raise ValueError("code '*': a prefix needs at least one character before '*'")
    return S.canonical_code(code)


class ConceptRef(Frozen):
    """An OMOP concept by id, resolved through the registry's vocabulary (``concept`` table).

    ``descendants: true`` adds every concept below it in ``concept_ancestor``; ``exclude: true``
    removes the concept (and its descendants, if asked) from the set, as an ATLAS concept set does.
    A concept id the vocabulary does not hold still matches its opaque code ``OMOP:<id>``.
    """

    concept: int = Field(description="OMOP concept_id")
    descendants: bool = False
    exclude: bool = False


ConceptItem = str | ConceptRef


class Window(Frozen):
    """A window relative to index, inclusive at both ends: ``[-365d, 0d]``."""

    start: Offset | Literal["all"]
    end: Offset

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        if isinstance(data, list | tuple):
            if len(data) != 2:
                raise ValueError("a window is [start, end], e.g. [-365d, 0d]")
            return {"start": data[0], "end": data[1]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        end = parse_offset(self.end)
        if self.start != "all" and parse_offset(self.start) > end:
            raise ValueError(f"window must end after it starts; got start={self.start}, end={self.end}")
        return self

    @property
    def start_days(self) -> float | None:
        return None if self.start == "all" else parse_offset(self.start)

    @property
    def end_days(self) -> float:
        return parse_offset(self.end)


class ValueRange(Frozen):
    min: float | None = None
    max: float | None = None
    unit: str | None = Field(None, description="Only measurements recorded in this UCUM unit count.")

    @model_validator(mode="after")
    def _ordered(self) -> ValueRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min must not exceed max; got min={self.min}, max={self.max}")
        return self


class TextFilter(Frozen):
    """Filter on ``text_value`` (e.g. the ICD-10 cause recorded on a DEATH event)."""

    prefix: list[str] | None = None
    not_prefix: list[str] | None = None


class CodeFilter(Frozen):
    """Which events count: codes (exact, or prefix with a trailing ``*``) or a named concept set."""

    codes: list[str] | None = None
    concept: str | None = None
    value: ValueRange | None = None
    text: TextFilter | None = None

    @field_validator("codes")
    @classmethod
    def _codes(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("codes must not be empty")
            return [_check_code_pattern(c) for c in v]
        return v

    @model_validator(mode="after")
    def _one(self) -> CodeFilter:
        if (self.codes is None) == (self.concept is None):
            raise ValueError("give exactly one of 'codes' or 'concept'")
        return self


class CountBounds(Frozen):
    at_least: int | None = Field(None, ge=0)
    at_most: int | None = Field(None, ge=0)
    exactly: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> CountBounds:
        if self.exactly is not None and (self.at_least is not None or self.at_most is not None):
            raise ValueError("'exactly' cannot be combined with 'at_least' or 'at_most'")
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError("at_least must not exceed at_most")
        return self

    def bounds(self) -> tuple[int, int | None]:
        if self.exactly is not None:
            return self.exactly, self.exactly
        if self.at_least is not None:
            return self.at_least, self.at_most
        # no lower bound given: 'at_most: 2' means 0..2; no bounds at all means 'occurs at least once'
        return (0 if self.at_most is not None else 1), self.at_most


class Occurs(CodeFilter):
    window: Window
    count: CountBounds = Field(default_factory=CountBounds)


class Latest(CodeFilter):
    """The latest measurement in the window must lie in ``range`` (no measurement: fails)."""

    window: Window
    range: ValueRange


class Trend(CodeFilter):
    """Change from the first to the last measurement in the window lies in ``change``."""

    window: Window
    change: ValueRange


class AgeRange(Frozen):
    min: float | None = None
    max: float | None = None


class AttributeCondition(Frozen):
    name: str
    in_: list[str | int | float | bool] | None = Field(None, alias="in")
    min: float | None = None
    max: float | None = None

    model_config = Frozen.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _some(self) -> AttributeCondition:
        if self.in_ is None and self.min is None and self.max is None:
            raise ValueError("give 'in' or 'min'/'max'")
        return self


class _Named(Frozen):
    name: str | None = Field(None, description="Shown in the attrition table; required at top level.")


class OccursCriterion(_Named):
    occurs: Occurs


class LatestCriterion(_Named):
    latest: Latest


class TrendCriterion(_Named):
    trend: Trend


class AgeCriterion(_Named):
    age: AgeRange


class SexCriterion(_Named):
    sex: list[str] = Field(min_length=1)


class SiteCriterion(_Named):
    site: list[str] = Field(min_length=1)


class AttributeCriterion(_Named):
    attribute: AttributeCondition


class AllCriterion(_Named):
    all: list[Criterion] = Field(min_length=1)


class AnyCriterion(_Named):
    any: list[Criterion] = Field(min_length=1)


class NotCriterion(_Named):
    not_: Criterion = Field(alias="not")

    model_config = Frozen.model_config | {"populate_by_name": True}


CRITERION_KEYS = ("occurs", "latest", "trend", "age", "sex", "site", "attribute", "all", "any", "not")


def _criterion_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        keys = [k for k in CRITERION_KEYS if k in v]
        return keys[0] if len(keys) == 1 else None
    for k in CRITERION_KEYS:
        if hasattr(v, k if k != "not" else "not_"):
            return k
    return None


Criterion = Annotated[
    Annotated[OccursCriterion, Tag("occurs")]
    | Annotated[LatestCriterion, Tag("latest")]
    | Annotated[TrendCriterion, Tag("trend")]
    | Annotated[AgeCriterion, Tag("age")]
    | Annotated[SexCriterion, Tag("sex")]
    | Annotated[SiteCriterion, Tag("site")]
    | Annotated[AttributeCriterion, Tag("attribute")]
    | Annotated[AllCriterion, Tag("all")]
    | Annotated[AnyCriterion, Tag("any")]
    | Annotated[NotCriterion, Tag("not")],
    Discriminator(
        _criterion_kind,
        custom_error_type="criterion_kind",
        custom_error_message="a criterion needs exactly one of: " + ", ".join(CRITERION_KEYS),
    ),
]


class Entry(CodeFilter):
    occurrence: Literal["first", "all"] = "first"
    min_gap: Offset = Field("0d", description="For 'all': days since the previous qualifying event.")
    age: AgeRange | None = None
    prior_observation: Offset = "0d"
    post_observation: Offset = "0d"


class TimeAtRisk(Frozen):
    start: Offset = "0d"
    end: Offset | Literal["end_of_observation"] = "end_of_observation"

    @property
    def start_days(self) -> float:
        return parse_offset(self.start)

    @property
    def end_days(self) -> float | None:
        return None if self.end == "end_of_observation" else parse_offset(self.end)

    @model_validator(mode="after")
    def _ordered(self) -> TimeAtRisk:
        if self.end_days is not None and self.end_days <= self.start_days:
            raise ValueError(f"time at risk must end after it starts; got start={self.start}, end={self.end}")
        return self


class Censoring(Frozen):
    events: CodeFilter | None = Field(None, description="Events that censor follow-up (e.g. transplant).")
    date: dt.date | None = Field(None, description="Administrative censoring at this calendar date.")


class Competing(CodeFilter):
    name: str


class Outcome(CodeFilter):
    name: str = "outcome"
    time_at_risk: TimeAtRisk = Field(default_factory=TimeAtRisk)
    washout: bool | Offset = Field(
        True, description="Exclude persons with the outcome before index (true: any time; or '365d')."
    )
    censor: Censoring = Field(default_factory=Censoring)
    competing: list[Competing] = Field(default_factory=list)
    horizons: list[Offset] = Field(default_factory=list)


class ConceptFile(Frozen):
    """A concept set kept in a file: YAML (a list of codes and concept references, or a mapping with
    ``codes``) or an ATLAS concept-set JSON export (``.json``)."""

    file: str


class CohortSpec(Frozen):
    """A complete cohort definition."""

    name: str
    description: str = ""
    concept_sets: dict[str, list[ConceptItem] | ConceptFile] = Field(default_factory=dict)
    entry: Entry
    inclusion: list[Criterion] = Field(default_factory=list)
    exclusion: list[Criterion] = Field(default_factory=list)
    outcome: Outcome | None = None
    subgroups: list[str] = Field(default_factory=list)
    age_bands: list[float] = Field(default_factory=lambda: [65.0, 75.0, 85.0])

    @field_validator("concept_sets")
    @classmethod
    def _concepts(
        cls, v: dict[str, list[ConceptItem] | ConceptFile]
    ) -> dict[str, list[ConceptItem] | ConceptFile]:
        out: dict[str, list[ConceptItem] | ConceptFile] = {}
        for name, codes in v.items():
            if isinstance(codes, list):
                if not codes:
                    raise ValueError(f"concept set {name!r} is empty")
                if all(isinstance(c, ConceptRef) and c.exclude for c in codes):
                    raise ValueError(f"concept set {name!r} only excludes concepts; include at least one")
                out[name] = [_check_code_pattern(c) if isinstance(c, str) else c for c in codes]
            else:
                out[name] = codes
        return out


def check_cohort(spec: CohortSpec, source: str, prefix: str = "") -> None:
    """Checks that need the whole spec: names, concept references, horizons, overlaps."""
    problems: list[str] = []
    source = f"{source}: {prefix}" if prefix else f"{source}: "
    for part in ("inclusion", "exclusion"):
        names: list[str] = []
        for i, crit in enumerate(getattr(spec, part)):
            if not crit.name:
                problems.append(f"{source}{part}[{i}].name: a top-level criterion needs a name")
            else:
                names.append(crit.name)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"{source}{part}: duplicate criterion names {dup}")

    def visit(obj: Any, path: str) -> None:
        if isinstance(obj, CodeFilter) and obj.concept is not None and obj.concept not in spec.concept_sets:
            problems.append(
                f"{source}{path}.concept: unknown concept set {obj.concept!r}; "
                f"declared: {sorted(spec.concept_sets) or 'none'}"
            )
        if isinstance(obj, Frozen):
            for fname in type(obj).model_fields:
                val = getattr(obj, fname)
                key = "not" if fname == "not_" else ("in" if fname == "in_" else fname)
                visit(val, f"{path}.{key}")
        elif isinstance(obj, list):
            for i, item in enumerate(obj):
                visit(item, f"{path}[{i}]")

    for fname in ("entry", "inclusion", "exclusion", "outcome"):
        visit(getattr(spec, fname), fname)

    out = spec.outcome
    if out is not None:
        tar_end = out.time_at_risk.end_days
        for i, h in enumerate(out.horizons):
            hd = parse_offset(h)
            if hd <= out.time_at_risk.start_days or (tar_end is not None and hd > tar_end):
                problems.append(
                    f"{source}outcome.horizons[{i}]: horizon {h} lies outside the time at risk "
                    f"[{out.time_at_risk.start}, {out.time_at_risk.end}]"
                )
        mine = _code_patterns(out, spec)
        for i, comp in enumerate(out.competing):
            if out.text is None and comp.text is None and _overlaps(mine, _code_patterns(comp, spec)):
                problems.append(
                    f"{source}outcome.competing[{i}]: codes overlap the outcome's codes; an event "
                    "cannot be both (add a 'text' filter, e.g. on the cause of death, to split them)"
                )
    if problems:
        raise CohortSpecError("\n".join(problems))


def _code_patterns(f: CodeFilter, spec: CohortSpec) -> list[str]:
    """The code patterns of a filter (concept references need the registry; not compared here)."""
    if f.codes is not None:
        return list(f.codes)
    cs = spec.concept_sets.get(f.concept or "")
    return [c for c in cs if isinstance(c, str)] if isinstance(cs, list) else []


def _overlaps(a: list[str], b: list[str]) -> bool:
    def covers(p: str, q: str) -> bool:
        if p.endswith("*"):
            return q.rstrip("*").startswith(p[:-1])
        return p == q

    return any(covers(x, y) or covers(y, x) for x in a for y in b)


def resolve_concepts(spec: CohortSpec, base: Path | None) -> CohortSpec:
    """Read concept-set files (relative to ``base``) into inline lists of codes and concept refs."""
    if not any(isinstance(v, ConceptFile) for v in spec.concept_sets.values()):
        return spec
    resolved: dict[str, list[ConceptItem] | ConceptFile] = {}
    for name, v in spec.concept_sets.items():
        resolved[name] = (
            _read_concept_file((base or Path.cwd()) / v.file) if isinstance(v, ConceptFile) else v
        )
    return spec.model_copy(update={"concept_sets": resolved})


def _read_concept_file(path: Path) -> list[ConceptItem]:
    if path.suffix.lower() == ".json":
        return read_atlas_concept_set(path)
    data = read_yaml(path, error=CohortSpecError)
    items = data.get("codes") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise CohortSpecError(f"{path}: expected a list of codes (or a mapping with 'codes')")
    out: list[ConceptItem] = []
    for i, c in enumerate(items):
        try:
            out.append(ConceptRef.model_validate(c) if isinstance(c, dict) else _check_code_pattern(str(c)))
        except ValueError as exc:
            raise CohortSpecError(f"{path}: item {i}: {str(exc).splitlines()[0]}") from None
    return out


def read_atlas_concept_set(path: Path | str) -> list[ConceptItem]:
    """The concept references of an ATLAS concept-set JSON export.

    Accepts the expression (``{"items": [...]}``) or a whole concept set (``{"expression": ...}``).
    Each item gives ``concept.CONCEPT_ID``, ``isExcluded`` and ``includeDescendants``;
    ``includeMapped`` adds nothing here, because events carry standard concepts (their source codes
    are mapped at import), and a set that asks for it is refused with that explanation.
    """
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CohortSpecError(f"{path}: not readable JSON ({type(exc).__name__})") from None
    if isinstance(data, dict) and isinstance(data.get("expression"), dict):
        data = data["expression"]
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise CohortSpecError(f"{path}: expected an ATLAS concept set with a non-empty 'items' list")
    out: list[ConceptItem] = []
    for i, item in enumerate(items):
        concept = item.get("concept") if isinstance(item, dict) else None
        cid = concept.get("CONCEPT_ID") if isinstance(concept, dict) else None
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise CohortSpecError(f"{path}: items[{i}].concept.CONCEPT_ID: expected an integer concept id")
        if item.get("includeMapped"):
            raise CohortSpecError(
                f"{path}: items[{i}].includeMapped: not supported (registry events carry standard "
                "concepts; import with --prefer-source and name the source codes instead)"
            )
        out.append(
            ConceptRef(
                concept=cid,
                descendants=bool(item.get("includeDescendants", False)),
                exclude=bool(item.get("isExcluded", False)),
            )
        )
    if all(isinstance(c, ConceptRef) and c.exclude for c in out):
        raise CohortSpecError(f"{path}: every item is excluded; include at least one concept")
    return out


def cohort_from_dict(data: Any, *, source: str = "cohort", base: Path | None = None) -> CohortSpec:
    spec = parse_model(CohortSpec, data, source=source, error=CohortSpecError)
    spec = resolve_concepts(spec, base)
    check_cohort(spec, source)
    return spec


def load_cohort(path: Path | str) -> CohortSpec:
    path = Path(path)
    return cohort_from_dict(read_yaml(path, error=CohortSpecError), source=str(path), base=path.parent)


AllCriterion.model_rebuild()
AnyCriterion.model_rebuild()
NotCriterion.model_rebuild()
CohortSpec.model_rebuild()
