"""FHIR R4 resources as a maintained model parses them, and the date rule Regent applies.

Every resource a CDS client sends (prefetch) or Regent fetches is validated with
``fhir.resources`` (the R4B models: for Patient, Observation, Condition, MedicationStatement,
MedicationRequest and Bundle, R4B is R4).  A structural error is an
:class:`~toolkit.errors.InputValidationError` naming the FHIR path and what was expected,
never the value.  Resources that belong to another patient than the one in context are a
:class:`PatientMismatchError` naming where they were.

The date rule (docs/serving.md, "FHIR rules"): a partial date (``2019``, ``2019-05``) stands
for the start of its period; a date without a time is taken in UTC; a period runs from its
start to its end (an active Condition or medication without an end runs until now).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from toolkit.errors import InputValidationError

#: how deep Bundles may nest inside a prefetch value (a searchset inside a collection ...)
MAX_BUNDLE_DEPTH = 3


class PatientMismatchError(InputValidationError):
    """Resources of another patient than ``context.patientId`` (CDS Hooks answers 412)."""


@dataclass(frozen=True)
class Found:
    """One validated resource and where it was in the request (``prefetch.obs.entry[2].resource``)."""

    path: str
    resource: Any  # a fhir.resources model instance

    @property
    def type(self) -> str:
        return str(self.resource.get_resource_type())


# --- parsing -----------------------------------------------------------------------------------
_PRIMITIVE = re.compile(r"Value error, (\w+) value")
_EXPECTED = {
    "missing": "required element missing",
    "extra_forbidden": "not an element of this resource in FHIR R4",
    "list_type": "expected an array",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "model_validation_format": "expected an object",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "decimal_type": "expected a number",
    "fhir-validation-wrong-resource-type": "resourceType does not match the element's type",
}


def _path(where: str, loc: tuple[Any, ...]) -> str:
    out = where
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) and p != "root":
            out += f".{p}"
    return out


def _expected(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    m = _PRIMITIVE.match(str(err.get("msg", "")))
    if kind == "value_error" and m:  # "Decimal value string does not match spec regex"
        return f"not a valid FHIR {m.group(1).lower()}"
    return f"invalid ({kind or 'unknown error'})"


def structure_error(where: str, exc: ValidationError) -> InputValidationError:
    """A 4xx naming each FHIR path at fault and what was expected (pydantic's input is dropped)."""
    errors = exc.errors(include_input=False, include_url=False)
    lines = [f"{_path(where, tuple(e.get('loc', ())))}: {_expected(e)}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return InputValidationError("malformed FHIR: " + "; ".join(lines) + more, fields=(where,))


def parse_resource(obj: Any, where: str) -> Any:
    """One FHIR R4 resource validated by its fhir.resources model."""
    if not isinstance(obj, Mapping):
        raise InputValidationError(f"{where}: expected a FHIR resource (a JSON object)", fields=(where,))
    kind = obj.get("resourceType")
    if not isinstance(kind, str):
        raise InputValidationError(f"{where}.resourceType: required, a FHIR resource type", fields=(where,))
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError, AttributeError, ImportError):
        model = None
    if model is None or not re.fullmatch(r"[A-Z][A-Za-z]+", kind):
        raise InputValidationError(
            f"{where}.resourceType: not a FHIR R4 resource type", fields=(where,)
        ) from None
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise structure_error(where, exc) from None
    except Exception:  # the model library's own failures on odd input (KeyError on a nested
        # resourceType, RecursionError ...): still a malformed resource, never a 500
        raise InputValidationError(f"{where}: not a valid FHIR {kind}", fields=(where,)) from None


def _flatten(resource: Any, path: str, depth: int) -> Iterator[Found]:
    if resource.get_resource_type() != "Bundle":
        yield Found(path, resource)
        return
    if depth >= MAX_BUNDLE_DEPTH:
        raise InputValidationError(f"{path}: Bundles nested too deeply", fields=(path,))
    for i, entry in enumerate(resource.entry or []):
        search = getattr(entry, "search", None)
        if entry.resource is None or (search is not None and search.mode == "outcome"):
            continue  # deleted entries and search OperationOutcomes carry no patient data
        yield from _flatten(entry.resource, f"{path}.entry[{i}].resource", depth + 1)


def parse_prefetch(prefetch: Mapping[str, Any] | None, *, where: str = "prefetch") -> list[Found]:
    """Every resource of a prefetch object (resources and searchset Bundles), validated."""
    if prefetch is None:
        return []
    if not isinstance(prefetch, Mapping):
        raise InputValidationError(
            f"{where}: expected an object of prefetch key -> resource", fields=(where,)
        )
    out: list[Found] = []
    for key, value in prefetch.items():
        if value is None:  # CDS Hooks: the client could not prefetch this key
            continue
        path = f"{where}.{key}" if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(key)) else f"{where}[?]"
        resource = parse_resource(value, path)
        out.extend(r for r in _flatten(resource, path, 0) if r.type != "OperationOutcome")
    return out


# --- whose data --------------------------------------------------------------------------------
def referenced_patient(ref: Any) -> str | None:
    """The Patient id a Reference points to ('Patient/p1', an absolute URL, a versioned one)."""
    text = getattr(ref, "reference", None)
    if not isinstance(text, str):
        return None
    parts = text.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] else None


def owner(found: Found) -> str | None:
    """Whose resource this is: the Patient's id, or the patient its subject/patient refers to."""
    res = found.resource
    if found.type == "Patient":
        return str(res.id) if res.id else None
    for attr in ("subject", "patient"):
        if attr in type(res).model_fields:
            return referenced_patient(getattr(res, attr))
    return ""  # a resource about no patient (Practitioner, Medication, ...)


def check_patient(found: list[Found], patient_id: str | None) -> str | None:
    """Refuse resources of any other patient; returns the patient's id.

    Without ``patient_id`` (a FHIR Bundle given on the command line) the patient is the one
    every resource names; resources naming two patients are refused all the same.
    """
    owners = {f.path: owner(f) for f in found}
    if patient_id is None:
        named = {o for o in owners.values() if o}
        patient_id = next(iter(named)) if len(named) == 1 else None
    wrong = [p for p, o in owners.items() if o != "" and (patient_id is None or o != patient_id)]
    if wrong:
        shown = ", ".join(wrong[:5]) + (f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else "")
        raise PatientMismatchError(
            "FHIR data of another patient than context.patientId (or with no subject): "
            f"{shown}; send only the resources of the patient in context",
            fields=tuple(wrong),
        )
    return patient_id


# --- dates -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instant:
    """A FHIR date/dateTime/instant as the instant its period starts, and its precision."""

    at: dt.datetime  # timezone-aware
    precision: str  # "year" | "month" | "day" | "time"


_PARTIAL = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def parse_when(value: Any, where: str) -> Instant | None:
    """A date-like value per the date rule; an impossible date is an error naming ``where``."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return Instant(value if value.tzinfo else value.replace(tzinfo=dt.UTC), "time")
    if isinstance(value, dt.date):
        return Instant(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC), "day")
    text = str(value)
    try:
        m = _PARTIAL.fullmatch(text)
        if m:
            year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
            precision = "day" if m.group(3) else "month" if m.group(2) else "year"
            return Instant(dt.datetime(year, month, day, tzinfo=dt.UTC), precision)
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputValidationError(f"{where}: not a valid calendar date", fields=(where,)) from None
    return Instant(t if t.tzinfo else t.replace(tzinfo=dt.UTC), "time")


@dataclass(frozen=True)
class Span:
    """When a resource applies: from ``start`` to ``end`` (``end`` None: still ongoing)."""

    start: Instant | None
    end: dt.datetime | None
    ongoing: bool = False

    @property
    def dated(self) -> bool:
        return self.start is not None or self.end is not None


_ACTIVE_MEDICATION = {"active", "intended", "on-hold"}


def _period(res: Any, name: str, path: str) -> tuple[Instant | None, Instant | None]:
    p = getattr(res, name, None)
    if p is None:
        return None, None
    return parse_when(p.start, f"{path}.{name}.start"), parse_when(p.end, f"{path}.{name}.end")


def _at(when: Instant | None) -> dt.datetime | None:
    return when.at if when is not None else None


def span_of(found: Found) -> Span:
    """The time span of an Observation, Condition, MedicationStatement or MedicationRequest."""
    res, path, kind = found.resource, found.path, found.type
    if kind == "Observation":
        point = parse_when(res.effectiveDateTime, f"{path}.effectiveDateTime") or parse_when(
            res.effectiveInstant, f"{path}.effectiveInstant"
        )
        if point is not None:
            return Span(point, point.at)
        start, end = _period(res, "effectivePeriod", path)
        return Span(start or end, _at(end or start))
    if kind == "Condition":
        start = parse_when(res.onsetDateTime, f"{path}.onsetDateTime")
        onset_start, onset_end = _period(res, "onsetPeriod", path)
        start = start or onset_start or parse_when(res.recordedDate, f"{path}.recordedDate")
        end = parse_when(res.abatementDateTime, f"{path}.abatementDateTime") or onset_end
        if end is None:
            _, end = _period(res, "abatementPeriod", path)
        return Span(start, end.at if end else None, ongoing=end is None and start is not None)
    if kind == "MedicationStatement":
        point = parse_when(res.effectiveDateTime, f"{path}.effectiveDateTime")
        if point is not None:
            return Span(point, point.at)
        start, end = _period(res, "effectivePeriod", path)
        if start is None and end is None:
            asserted = parse_when(res.dateAsserted, f"{path}.dateAsserted")
            return Span(asserted, asserted.at if asserted else None)
        ongoing = end is None and res.status in _ACTIVE_MEDICATION
        return Span(start or end, None if ongoing else _at(end or start), ongoing)
    if kind == "MedicationRequest":
        authored = parse_when(res.authoredOn, f"{path}.authoredOn")
        ongoing = authored is not None and res.status in _ACTIVE_MEDICATION
        return Span(authored, None if ongoing or authored is None else authored.at, ongoing)
    return Span(None, None)
