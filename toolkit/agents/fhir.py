"""Map FHIR R4 resources (CDS Hooks prefetch, fetched searches, a Bundle) to an agent's inputs.

The resources are validated first (:mod:`toolkit.agents.fhir_model`), then each input takes
its value per the contract and the FHIR rules of docs/serving.md:

- codes match by system and code, a ``*`` code by prefix (:mod:`toolkit.agents.fhir_codes`);
- a partial date stands for the start of its period; a value dated in the future is not used;
  with a look-back window, only values whose time reaches into the window are used, and an
  undated value is never used; an Observation without a date is never used;
- each value not used is counted with its reason, for the card and for a 412.

Errors name the input and the FHIR path, never the patient's values.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.agents.contract import AgentContract, FhirSource, InputSpec
from toolkit.agents.fhir_codes import CodeRef, match, search_templates
from toolkit.agents.fhir_model import (
    Found,
    Instant,
    PatientMismatchError,
    Span,
    check_patient,
    parse_prefetch,
    parse_when,
    span_of,
)
from toolkit.errors import InputValidationError

__all__ = [
    "UNIT_FACTORS",
    "Mapped",
    "PatientMismatchError",
    "UsedDatum",
    "incomplete_keys",
    "inputs_from_fhir",
    "map_inputs",
    "prefetch_templates",
    "resources_of",
]

#: Linear unit conversions accepted on FHIR quantities (UCUM codes): (from, to) -> factor.
UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("cm", "mm"): 10.0,
    ("mm", "cm"): 0.1,
    ("g/L", "g/dL"): 0.1,
    ("g/dL", "g/L"): 10.0,
    ("ng/L", "pg/mL"): 1.0,
    ("pg/mL", "ng/L"): 1.0,
    ("mmol/l", "mmol/L"): 1.0,
    ("mm[Hg]", "mmHg"): 1.0,
    ("mmHg", "mm[Hg]"): 1.0,
}

#: how far ahead of the server's clock a value may be dated: a time of day is compared as such;
#: a date (or partial date) has no time zone, so it may be "today" anywhere on earth (UTC+14)
FUTURE_LEEWAY = {"time": dt.timedelta(minutes=5)}
DATE_LEEWAY = dt.timedelta(hours=14)

_NOT_OBSERVED = {"entered-in-error", "cancelled", "registered"}
_NOT_TAKEN = {"entered-in-error", "cancelled", "stopped", "not-taken", "draft"}
_ACTIVE_CONDITION = {"active", "recurrence", "relapse"}


@dataclass(frozen=True)
class UsedDatum:
    input: str
    resource: str
    code: str | None
    date: str | None


@dataclass(frozen=True)
class Mapped:
    """Inputs found (absent ones left out), the data used, and why other data were not used."""

    values: dict[str, Any]
    used: list[UsedDatum]
    notes: dict[str, list[str]] = field(default_factory=dict)
    patient_id: str | None = None

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as ``values, used`` (the shape ``map_inputs`` returned before notes)."""
        return iter((self.values, self.used))


def _shown(when: Instant) -> str:
    iso = when.at.date().isoformat()
    return {"year": iso[:4], "month": iso[:7]}.get(when.precision, iso)


def _unusable(span: Span, src: FhirSource, now: dt.datetime, *, need_date: bool) -> str | None:
    """Why a resource with this span is not used for ``src`` (None: it is used)."""
    if not span.dated:
        return "no date" if need_date or src.lookback_days is not None else None
    if span.start is not None and span.start.at > now + FUTURE_LEEWAY.get(span.start.precision, DATE_LEEWAY):
        return "dated in the future"
    if src.lookback_days is not None:
        end = span.end or (now if span.ongoing else span.start.at if span.start else None)
        if end is not None and end < now - dt.timedelta(days=src.lookback_days):
            return f"older than the {src.lookback_days}-day look-back window"
    return None


def _note(spec: InputSpec, resource: str, skipped: Counter[str]) -> list[str]:
    label = spec.label or spec.name
    return [f"{label}: {n} {resource}{'s' if n > 1 else ''} not used ({why})" for why, n in skipped.items()]


def _quantity(spec: InputSpec, f: Found) -> float:
    q = f.resource.valueQuantity
    if q is None or q.value is None:
        raise InputValidationError(f"{spec.name}: {f.path} has no numeric valueQuantity", fields=(spec.name,))
    if q.comparator is not None:
        raise InputValidationError(
            f"{spec.name}: {f.path}.valueQuantity has a comparator: it is a bound, not a measurement",
            fields=(spec.name,),
        )
    value = float(q.value)  # may be inf for a huge decimal: the agent refuses it, naming the input
    unit = q.code or q.unit
    if spec.unit is not None and unit is not None and unit != spec.unit:
        factor = UNIT_FACTORS.get((str(unit), spec.unit))
        if factor is None:
            accepted = sorted({spec.unit} | {a for a, b in UNIT_FACTORS if b == spec.unit})
            raise InputValidationError(
                f"{spec.name}: {f.path}.valueQuantity has a unit that cannot be converted to "
                f"{spec.unit!r} (accepted: {accepted})",
                fields=(spec.name,),
            )
        value *= factor
    return value


def _coded(spec: InputSpec, src: FhirSource, f: Found) -> Any:
    res = f.resource
    raw: Any = None
    concept = res.valueCodeableConcept
    if concept is not None:
        raw = concept.coding[0].code if concept.coding else concept.text
    elif res.valueString is not None:
        raw = res.valueString
    elif res.valueBoolean is not None:
        raw = res.valueBoolean
    if raw is None:
        raise InputValidationError(
            f"{spec.name}: {f.path} has no coded, string or boolean value", fields=(spec.name,)
        )
    return src.values.get(str(raw), raw) if isinstance(raw, str) else raw


def _observation(
    spec: InputSpec, src: FhirSource, found: Iterable[Found], now: dt.datetime
) -> tuple[Any, UsedDatum | None, list[str]]:
    refs = [CodeRef.parse(c) for c in src.codes]
    kept: list[tuple[dt.datetime, Any, str, Instant | None]] = []
    skipped: Counter[str] = Counter()
    for f in found:
        if f.type != "Observation" or f.resource.status in _NOT_OBSERVED:
            continue
        code = match(f.resource.code, refs)
        if code is None:
            continue
        span = span_of(f)
        why = _unusable(span, src, now, need_date=True)
        if why is not None:
            skipped[why] += 1
            continue
        value = _quantity(spec, f) if spec.type not in ("category", "boolean") else _coded(spec, src, f)
        end = span.end or (span.start.at if span.start else now)
        kept.append((end, value, code, span.start))
    notes = _note(spec, "Observation", skipped)
    if not kept:
        return None, None, notes
    kept.sort(key=lambda k: k[0])  # stable: equal times keep the order received
    values = [v for _, v, _, _ in kept]
    _, value, code, start = kept[-1]
    if spec.type not in ("category", "boolean"):
        if src.select == "max":
            value = max(values)
        elif src.select == "min":
            value = min(values)
        elif src.select == "mean":
            value = sum(values) / len(values)
    return value, UsedDatum(spec.name, "Observation", code, _shown(start) if start else None), notes


def _medications(found: Iterable[Found]) -> dict[str, Any]:
    """Medication resources by reference ('Medication/<id>'), for medicationReference."""
    return {f"Medication/{f.resource.id}": f.resource for f in found if f.type == "Medication"}


def _concept(f: Found, src: FhirSource, meds: Mapping[str, Any]) -> Any:
    res = f.resource
    if src.resource == "Condition":
        return res.code
    if res.medicationCodeableConcept is not None:
        return res.medicationCodeableConcept
    ref = getattr(res.medicationReference, "reference", None)
    if isinstance(ref, str) and ref.startswith("#"):
        contained = [c for c in res.contained or [] if c.id == ref[1:]]
        return getattr(contained[0], "code", None) if contained else None
    med = meds.get(ref) if isinstance(ref, str) else None
    return getattr(med, "code", None)


def _excluded(f: Found, src: FhirSource) -> bool:
    res = f.resource
    if src.resource == "Condition":
        clinical = {c.code for c in getattr(res.clinicalStatus, "coding", None) or []}
        verification = {c.code for c in getattr(res.verificationStatus, "coding", None) or []}
        return bool(clinical and not clinical & _ACTIVE_CONDITION) or bool(
            verification & {"refuted", "entered-in-error"}
        )
    return res.status in _NOT_TAKEN


def _presence(
    spec: InputSpec, src: FhirSource, found: list[Found], now: dt.datetime
) -> tuple[Any, UsedDatum | None, list[str]]:
    refs = [CodeRef.parse(c) for c in src.codes]
    meds = _medications(found)
    skipped: Counter[str] = Counter()
    for f in found:
        if f.type != src.resource or _excluded(f, src):
            continue
        code = match(_concept(f, src, meds), refs)
        if code is None:
            continue
        span = span_of(f)
        why = _unusable(span, src, now, need_date=False)
        if why is not None:
            skipped[why] += 1
            continue
        present = src.present if src.present is not None else 1.0
        date = _shown(span.start) if span.start else None
        return present, UsedDatum(spec.name, src.resource, code, date), _note(spec, src.resource, skipped)
    absent = src.absent if src.absent is not None else 0.0
    return absent, UsedDatum(spec.name, src.resource, None, None), _note(spec, src.resource, skipped)


def _age(born: Instant, today: dt.date) -> float:
    b = born.at.date()
    return float(today.year - b.year - ((today.month, today.day) < (b.month, b.day)))


def _patient(
    spec: InputSpec, src: FhirSource, found: Iterable[Found], now: dt.datetime
) -> tuple[Any, UsedDatum | None, list[str]]:
    patients = [f for f in found if f.type == "Patient"]
    if not patients:
        return None, None, []
    p = patients[0]
    if src.field == "age":
        born = parse_when(p.resource.birthDate, f"{p.path}.birthDate")
        if born is None:
            return None, None, []
        notes = []
        if born.precision in ("year", "month"):
            notes.append(
                f"{spec.label or spec.name}: birth date known to the {born.precision} only; "
                "age counted from its first day"
            )
        return _age(born, now.date()), UsedDatum(spec.name, "Patient", "birthDate", None), notes
    g = p.resource.gender
    if g is None:
        return None, None, []
    return src.values.get(str(g), str(g)), UsedDatum(spec.name, "Patient", "gender", None), []


def map_inputs(
    contract: AgentContract,
    found: list[Found],
    *,
    now: dt.datetime | None = None,
    searched: set[str] | None = None,
) -> Mapped:
    """Inputs found in validated resources, the data used and the data not used (with why).

    ``searched``: the resource types whose search results are complete (None: all).  A
    Condition or medication input is "absent" only when its search was done; otherwise it is
    missing, never taken as absent.
    """
    now = now or dt.datetime.now(dt.UTC)
    values: dict[str, Any] = {}
    used: list[UsedDatum] = []
    notes: dict[str, list[str]] = {}
    for spec in contract.inputs:
        src = spec.fhir
        if src is None:
            continue
        if src.resource == "Patient":
            value, datum, why = _patient(spec, src, found, now)
        elif src.resource == "Observation":
            value, datum, why = _observation(spec, src, found, now)
        else:
            value, datum, why = _presence(spec, src, found, now)
            if searched is not None and src.resource not in searched and datum and datum.code is None:
                # not found, but not searched either: unknown, not absent
                value, datum = None, None
                why = [*why, f"{spec.label or spec.name}: no complete {src.resource} search"]
        if value is not None:
            values[spec.name] = value
        if datum is not None:
            used.append(datum)
        if why:
            notes[spec.name] = why
    return Mapped(values, used, notes)


def inputs_from_fhir(
    contract: AgentContract,
    prefetch: Mapping[str, Any] | None,
    *,
    patient_id: str | None = None,
    now: dt.datetime | None = None,
    where: str = "prefetch",
) -> Mapped:
    """Validate, check the patient, and map: the one path from FHIR JSON to inputs.

    >>> inputs_from_fhir(contract, {"bundle": bundle_json}).values   # doctest: +SKIP
    """
    found = parse_prefetch(prefetch, where=where)
    pid = check_patient(found, patient_id)
    m = map_inputs(contract, found, now=now)
    return Mapped(m.values, m.used, m.notes, pid)


def resources_of(prefetch: Mapping[str, Any] | None) -> list[Found]:
    """Validated resources of a prefetch object or ``{"bundle": <Bundle>}``, all of one patient."""
    found = parse_prefetch(prefetch)
    check_patient(found, None)
    return found


def incomplete_keys(prefetch: Mapping[str, Any] | None) -> list[str]:
    """Prefetch keys holding a searchset Bundle with a next page: a partial search result.

    Call after :func:`~toolkit.agents.fhir_model.parse_prefetch` accepted ``prefetch``.
    """
    out = []
    for key, value in (prefetch or {}).items():
        if isinstance(value, Mapping) and value.get("resourceType") == "Bundle":
            links = value.get("link") or []
            if any(isinstance(lk, Mapping) and lk.get("relation") == "next" for lk in links):
                out.append(str(key))
    return out


def prefetch_templates(contract: AgentContract, *, code_below: bool = False) -> dict[str, str]:
    """CDS Hooks prefetch templates built from the contract's FHIR mapping (see fhir_codes)."""
    return search_templates(contract, code_below=code_below)
