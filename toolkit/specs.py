"""Loading YAML/JSON specifications into frozen pydantic models with errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

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


def validation_message(source: str, exc: ValidationError) -> str:
    """Format pydantic errors as ``source: key.path: problem`` lines, without echoing values."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        # tagged unions repeat the tag in the location ('occurs', 'occurs'): collapse repeats
        parts: list[str | int] = []
        for part in err["loc"]:
            if not (parts and parts[-1] == part and isinstance(part, str)):
                parts.append(part)
        loc = yaml_path(tuple(parts))
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{source}: {loc}: {msg}")
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
