"""Loading YAML/JSON specifications into frozen pydantic models with errors that name the key,
and the one way specs write a duration (``5y``, ``6mo``, ``2w``, ``30d``, ``12h``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from toolkit.errors import SpecError, yaml_path

M = TypeVar("M", bound=BaseModel)


class Frozen(BaseModel):
    """Base for every parsed specification: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def read_yaml(path: Path, *, error: type[SpecError] = SpecError) -> Any:
    """Read a YAML file, turning I/O and syntax problems into errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise error(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


_MEMBER = re.compile(r"^(?:[A-Z]\w*|str|int|float|bool|none|list\[.*\]|dict\[.*\]|\w+-\w+\[.*\])$")
_TYPE_ONLY = {
    "string_type",
    "int_type",
    "int_parsing",
    "float_type",
    "float_parsing",
    "bool_type",
    "list_type",
}


def validation_message(source: str, exc: ValidationError) -> str:
    """Format pydantic errors as ``source: key.path: problem`` lines, without echoing values.

    A union (``cohort: CohortSpec | str``) reports each member by its type name; the names are
    left out of the key path, and a member that only says "not my type" is dropped when another
    member got further (``cohort.outcome.horizons[0]: ...``, not also ``cohort: not a string``).
    """
    found: list[tuple[tuple[str | int, ...], str, str]] = []
    for err in exc.errors(include_input=False, include_url=False):
        # tagged unions repeat the tag in the location ('occurs', 'occurs'): collapse repeats
        parts: list[str | int] = []
        for part in err["loc"]:
            if isinstance(part, str) and _MEMBER.match(part):
                continue
            if not (parts and parts[-1] == part and isinstance(part, str)):
                parts.append(part)
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        found.append((tuple(parts), kind, msg))
    lines = []
    for loc, kind, msg in found:
        deeper = any(len(other) > len(loc) and other[: len(loc)] == loc for other, _, _ in found)
        if kind in _TYPE_ONLY and deeper:
            continue
        line = f"{source}: {yaml_path(loc)}: {msg}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


def parse_model(model: type[M], data: Any, *, source: str, error: type[SpecError] = SpecError) -> M:
    """Validate ``data`` against ``model``; raise ``error`` naming ``source`` and the key path."""
    if data is None:
        raise error(f"{source}: the file is empty; expected a mapping")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(validation_message(source, exc)) from None


def load_model(model: type[M], path: Path, *, error: type[SpecError] = SpecError) -> M:
    """Read a YAML file and validate it as ``model``."""
    return parse_model(model, read_yaml(Path(path), error=error), source=str(path), error=error)


# --- durations ---------------------------------------------------------------------------------
#: Days per unit.  A year is the Julian year (365.25 days, the mean calendar year, as R's
#: lubridate ``dyears``); a month is a twelfth of it (30.4375 days).  ``5y`` is 1826.25 days.
UNIT_DAYS: dict[str, float] = {"y": 365.25, "mo": 365.25 / 12, "w": 7.0, "d": 1.0, "h": 1 / 24}
_DURATION_RE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(y|mo|w|d|h)\s*$")


def parse_duration(value: str | int | float) -> float:
    """A duration in days: ``'5y'`` -> 1826.25, ``'6mo'`` -> 182.625, ``'-365d'`` -> -365.0,
    ``'12h'`` -> 0.5; a bare number is days.  Units and day lengths: :data:`UNIT_DAYS`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '365d', '6mo', '5y' or '12h'; got {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number of days; got {value!r}")
        return float(value)
    m = _DURATION_RE.match(str(value))
    if not m:
        raise ValueError(
            f"expected a duration such as '365d', '6mo', '5y', '2w' or '12h' (units y, mo, w, d, h); "
            f"got {value!r}"
        )
    return float(m.group(1)) * UNIT_DAYS[m.group(2)]


def _valid_duration(value: str | int | float) -> str | int | float:
    parse_duration(value)  # raises naming what was expected; the value stays as written
    return value


def _positive_duration(value: str | int | float) -> str | int | float:
    if parse_duration(value) <= 0:
        raise ValueError(f"expected a positive duration such as '365d' or '5y'; got {value!r}")
    return value


def _duration_days(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


#: A relative time as written in a spec (``'-365d'``, ``'5y'``); checked when the spec is loaded.
Duration = Annotated[
    str | int | float,
    AfterValidator(_valid_duration),
    Field(description="A duration: '365d', '6mo', '5y', '2w', '12h' (y = 365.25 d, mo = y/12), or days."),
]
#: A duration that must be positive (horizons, tau).
PositiveDuration = Annotated[
    str | int | float,
    AfterValidator(_positive_duration),
    Field(description="A positive duration: '365d', '6mo', '5y' (y = 365.25 d, mo = y/12), or days."),
]
#: A time point after index in days; a number or a duration (``'1y'`` is read as 365.25).
TimePoint = Annotated[float, BeforeValidator(_duration_days), Field(ge=0)]
