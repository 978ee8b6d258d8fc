"""Map FHIR R4 resources (CDS Hooks prefetch, a Bundle) to an agent's inputs per its contract.

Returns the values, where each came from (resource, code, date) for the card, and the
problems found.  Malformed resources and unexpected units are errors naming the input and the
problem, never the patient's values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.agents.contract import AgentContract, FhirSource, InputSpec
from toolkit.errors import InputValidationError

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
SYSTEMS = {
    "LOINC": "http://loinc.org",
    "SNOMED": "http://snomed.info/sct",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
    "ATC": "http://www.whocc.no/atc",
}


@dataclass(frozen=True)
class UsedDatum:
    input: str
    resource: str
    code: str | None
    date: str | None


def resources_of(prefetch: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Flatten a prefetch object (resources and searchset Bundles) to a list of resources."""
    out: list[dict[str, Any]] = []

    def add(obj: Any, where: str) -> None:
        if obj is None:
            return
        if not isinstance(obj, Mapping) or "resourceType" not in obj:
            raise InputValidationError(f"prefetch {where}: expected a FHIR resource with 'resourceType'")
        if obj["resourceType"] == "Bundle":
            for i, e in enumerate(obj.get("entry") or []):
                if not isinstance(e, Mapping):
                    raise InputValidationError(f"prefetch {where}.entry[{i}]: expected an object")
                add(e.get("resource"), f"{where}.entry[{i}].resource")
        else:
            out.append(dict(obj))

    for key, value in (prefetch or {}).items():
        add(value, str(key))
    return out


def _code_key(code: str) -> tuple[str, str]:
    system, sep, value = code.partition("|")
    if not sep:  # 'LOINC:33762-6' shorthand
        ns, _, value = code.partition(":")
        system = SYSTEMS.get(ns, ns)
    return system, value


def _matches(concept: Any, codes: list[str]) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    for c in concept.get("coding") or []:
        if not isinstance(c, Mapping):
            continue
        for want in codes:
            system, value = _code_key(want)
            if c.get("system") != system:
                continue
            code = str(c.get("code", ""))
            if (value.endswith("*") and code.startswith(value[:-1])) or code == value:
                return f"{system}|{code}"
    return None


def _when(res: Mapping[str, Any]) -> dt.datetime | None:
    for key in ("effectiveDateTime", "issued", "recordedDate", "onsetDateTime", "authoredOn", "dateAsserted"):
        v = res.get(key)
        if isinstance(v, str):
            return _parse_time(v)
    period = res.get("effectivePeriod")
    if isinstance(period, Mapping) and isinstance(period.get("start"), str):
        return _parse_time(period["start"])
    return None


def _parse_time(v: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        try:
            t = dt.datetime.fromisoformat(v[:10])
        except ValueError:
            return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _value(spec: InputSpec, src: FhirSource, res: Mapping[str, Any]) -> Any:
    """The Observation's value for this input: a quantity, or a coded/string value for categories."""
    if spec.type not in ("category", "boolean"):
        return _quantity(spec, res)
    concept = res.get("valueCodeableConcept")
    raw: Any = None
    if isinstance(concept, Mapping):
        codings = [c for c in concept.get("coding") or [] if isinstance(c, Mapping)]
        raw = codings[0].get("code") if codings else concept.get("text")
    elif isinstance(res.get("valueString"), str):
        raw = res["valueString"]
    elif isinstance(res.get("valueBoolean"), bool):
        raw = res["valueBoolean"]
    if raw is None:
        raise InputValidationError(
            f"{spec.name}: Observation has no coded, string or boolean value", fields=(spec.name,)
        )
    return src.values.get(str(raw), raw) if isinstance(raw, str) else raw


def _quantity(spec: InputSpec, res: Mapping[str, Any]) -> float:
    q = res.get("valueQuantity")
    if (
        not isinstance(q, Mapping)
        or not isinstance(q.get("value"), int | float)
        or isinstance(q.get("value"), bool)
    ):
        raise InputValidationError(
            f"{spec.name}: Observation {res.get('id', '')!s} has no numeric valueQuantity",
            fields=(spec.name,),
        )
    value = float(q["value"])
    unit = q.get("code") or q.get("unit")
    if spec.unit is not None and unit is not None and unit != spec.unit:
        factor = UNIT_FACTORS.get((str(unit), spec.unit))
        if factor is None:
            raise InputValidationError(
                f"{spec.name}: Observation unit {unit!r} cannot be converted to {spec.unit!r}",
                fields=(spec.name,),
            )
        value *= factor
    return value


def _observation(
    spec: InputSpec, src: FhirSource, resources: Iterable[Mapping[str, Any]], now: dt.datetime
) -> tuple[Any, UsedDatum | None]:
    found: list[tuple[dt.datetime | None, Any, str]] = []
    for res in resources:
        if res.get("resourceType") != "Observation" or res.get("status") in ("entered-in-error", "cancelled"):
            continue
        code = _matches(res.get("code"), src.codes)
        if code is None:
            continue
        when = _when(res)
        if (
            src.lookback_days is not None
            and when is not None
            and when < now - dt.timedelta(days=src.lookback_days)
        ):
            continue
        found.append((when, _value(spec, src, res), code))
    if not found:
        return None, None
    found.sort(key=lambda x: (x[0] is not None, x[0] or dt.datetime.min.replace(tzinfo=dt.UTC)))
    values = [v for _, v, _ in found]
    when, value, code = found[-1]
    if spec.type in ("category", "boolean"):
        pass  # the latest coded value
    elif src.select == "max":
        value = max(values)
    elif src.select == "min":
        value = min(values)
    elif src.select == "mean":
        value = sum(values) / len(values)
    return value, UsedDatum(spec.name, "Observation", code, when.date().isoformat() if when else None)


def _presence(
    spec: InputSpec, src: FhirSource, resources: Iterable[Mapping[str, Any]], now: dt.datetime
) -> tuple[Any, UsedDatum | None]:
    field = "code" if src.resource == "Condition" else "medicationCodeableConcept"
    for res in resources:
        if res.get("resourceType") != src.resource:
            continue
        status = res.get("clinicalStatus") if src.resource == "Condition" else res.get("status")
        if src.resource == "Condition" and isinstance(status, Mapping):
            codes = {c.get("code") for c in status.get("coding") or [] if isinstance(c, Mapping)}
            if codes and not codes & {"active", "recurrence", "relapse"}:
                continue
        elif isinstance(status, str) and status in ("entered-in-error", "cancelled", "stopped", "not-taken"):
            continue
        code = _matches(res.get(field), src.codes)
        if code is None:
            continue
        when = _when(res)
        if (
            src.lookback_days is not None
            and when is not None
            and when < now - dt.timedelta(days=src.lookback_days)
        ):
            continue
        return (src.present if src.present is not None else 1.0), UsedDatum(
            spec.name, src.resource, code, when.date().isoformat() if when else None
        )
    return (src.absent if src.absent is not None else 0.0), UsedDatum(spec.name, src.resource, None, None)


def _patient(
    spec: InputSpec, src: FhirSource, resources: Iterable[Mapping[str, Any]], now: dt.datetime
) -> tuple[Any, UsedDatum | None]:
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if not patients:
        return None, None
    p = patients[0]
    if src.field == "age":
        bd = p.get("birthDate")
        if not isinstance(bd, str):
            return None, None
        try:
            born = dt.date.fromisoformat(bd[:10])
        except ValueError:
            raise InputValidationError(
                f"{spec.name}: Patient.birthDate is not a date", fields=(spec.name,)
            ) from None
        today = now.date()
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        return float(age), UsedDatum(spec.name, "Patient", "birthDate", None)
    g = p.get("gender")
    if g is None:
        return None, None
    return src.values.get(str(g), str(g)), UsedDatum(spec.name, "Patient", "gender", None)


def map_inputs(
    contract: AgentContract, resources: list[dict[str, Any]], *, now: dt.datetime | None = None
) -> tuple[dict[str, Any], list[UsedDatum]]:
    """Inputs found in ``resources`` (absent ones are left out) and the data used."""
    now = now or dt.datetime.now(dt.UTC)
    values: dict[str, Any] = {}
    used: list[UsedDatum] = []
    for spec in contract.inputs:
        src = spec.fhir
        if src is None:
            continue
        if src.resource == "Patient":
            value, datum = _patient(spec, src, resources, now)
        elif src.resource == "Observation":
            value, datum = _observation(spec, src, resources, now)
        else:
            value, datum = _presence(spec, src, resources, now)
        if value is not None:
            values[spec.name] = value
        if datum is not None:
            used.append(datum)
    return values, used


def prefetch_templates(contract: AgentContract) -> dict[str, str]:
    """CDS Hooks prefetch templates built from the contract's FHIR mapping."""
    out: dict[str, str] = {}
    resources = {i.fhir.resource for i in contract.inputs if i.fhir is not None}
    if "Patient" in resources:
        out["patient"] = "Patient/{{context.patientId}}"
    for res in sorted(resources - {"Patient"}):
        codes = sorted(
            {c for i in contract.inputs if i.fhir and i.fhir.resource == res for c in i.fhir.codes}
        )
        tokens = ",".join("|".join(_code_key(c)).rstrip("*") for c in codes)
        # 'code' is the search parameter of Observation, Condition and both medication resources
        out[res.lower()] = f"{res}?patient={{{{context.patientId}}}}&code={tokens}"
    return out
