"""``regent analyze``: survival and competing-risks statistics on one table (CSV or Parquet).

One subcommand per analysis kind that declares a command (:mod:`toolkit.study.kinds`): the
command's options fill the kind's study.yaml spec, and the kind's own ``run`` computes the entry.
So each command prints a short text summary, or with ``--json`` exactly the object a study writes
to ``results.json`` for that analysis.  Numeric columns enter models as they are; text columns
are categorical with their first sorted level as the reference.  Output is disclosure-controlled
like a study's (counts 1..min_cell-1 are withheld); ``--no-disclosure`` turns that off.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from toolkit.errors import AnalysisError
from toolkit.study.kinds.base import AnalysisKind, Option, RunContext

if TYPE_CHECKING:  # pandas and the statistics load only when a command runs (fast CLI start)
    import pandas as pd

analyze_app = typer.Typer(
    help="Survival and competing-risks statistics on a CSV/Parquet table (event: 0 censored, 1 event, k>=2 competing).",
    no_args_is_help=True,
)

DataOpt = Annotated[Path, typer.Option("--data", help="CSV or Parquet file, one row per person")]
TimeOpt = Annotated[str, typer.Option("--time", help="Follow-up time column")]
EventOpt = Annotated[
    str, typer.Option("--event", help="Event column: 0 censored, 1 event, k>=2 competing cause k")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results.json entry")]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="Write the plot (PNG) here")]
MinCellOpt = Annotated[int, typer.Option("--min-cell", help="Smallest count shown (disclosure control)")]
DisclosureOpt = Annotated[
    bool, typer.Option("--disclosure/--no-disclosure", help="Withhold counts below --min-cell")
]


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise AnalysisError(f"--data {path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # any reader failure becomes one clear message
        raise AnalysisError(
            f"--data {path}: not a readable CSV or Parquet file ({type(exc).__name__})"
        ) from None


def _columns(frame: pd.DataFrame, source: Path, **named: str | None) -> None:
    for option, col in named.items():
        if col is not None and col not in frame.columns:
            raise AnalysisError(
                f"--{option} {col!r}: no such column in {source.name}; available: {list(frame.columns)}"
            )
    for option in ("time", "event"):
        col = named.get(option)
        if col is not None:
            _check_outcome(frame[col], f"--{option} {col!r} in {source.name}", option)


def _check_outcome(values: pd.Series, where: str, option: str) -> None:
    """Refuse follow-up times that are missing, not numbers, negative or infinite, and event codes
    other than 0 (censored), 1 (event), k >= 2 (competing cause k): the message names the column
    and how many rows, never a value.  Before this, such rows were read as they came."""
    import numpy as np
    import pandas as pd

    number = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_bool_dtype(values) else None
    total = len(values)
    problems: list[tuple[int, str]] = []
    if number is None:
        problems.append((total, "are true/false, not numbers"))
    else:
        problems.append((int(values.isna().sum()), "are empty"))
        problems.append((int((number.isna() & values.notna()).sum()), "are not numbers"))
        x = number.to_numpy(float)
        if option == "time":
            problems.append((int(np.isinf(x).sum()), "are infinite"))
            problems.append((int((x < 0).sum()), "are negative (follow-up times must be >= 0)"))
        else:
            bad = np.isfinite(x) & ((x < 0) | (x != np.round(x)))
            problems.append(
                (
                    int(bad.sum() + np.isinf(x).sum()),
                    "are not event codes 0..k (0 censored, 1 event, k >= 2 competing)",
                )
            )
    found = [f"{n} of {total} rows {what}" for n, what in problems if n]
    if found:
        raise AnalysisError(f"{where}: " + "; ".join(found))
    if option == "event" and number is not None and len(number) and set(number.unique()) <= {1, 2}:
        sys.stderr.write(
            f"warning: {where}: codes 1 and 2 only, no 0: if 1 means censored and 2 an event (R's "
            "Surv() coding), recode to 0/1; Regent reads 1 as the event and 2 as a competing event\n"
        )


def _value(opt: Option, raw: Any) -> Any:
    """An option's value as its kind's spec field wants it (None: not given)."""
    if raw is None or raw == [] or (opt.parse == "flag" and raw is False and opt.default is False):
        return None if opt.parse != "flag" else raw
    text = str(raw)
    if opt.parse == "columns":
        items = [v.strip() for v in text.split(",") if v.strip()]
        if not items:
            raise AnalysisError(f"--{opt.name} is required for this analysis (comma-separated column names)")
        return items
    if opt.parse == "numbers":
        return _numbers(text, opt.name)
    if opt.parse in ("number", "integer"):
        try:
            x = float(text) if opt.parse == "number" else int(text)
        except ValueError:
            raise AnalysisError(f"--{opt.name}: expected a {opt.parse}; got {text!r}") from None
        if not math.isfinite(x):
            raise AnalysisError(f"--{opt.name}: expected a finite {opt.parse}; got {text!r}")
        return x
    if opt.parse == "integers":
        return [int(v) for v in raw]
    if opt.parse == "choice" and text not in opt.choices:
        raise AnalysisError(
            f"--{opt.name}: expected {' or '.join(repr(c) for c in opt.choices)}; got {text!r}"
        )
    return raw


def _numbers(value: str, option: str) -> list[float]:
    out = []
    for v in value.split(","):
        try:
            x = float(v)
        except ValueError:
            raise AnalysisError(f"--{option}: {v.strip()!r} is not a number") from None
        if not math.isfinite(x) or x < 0:
            raise AnalysisError(f"--{option}: times must be finite and >= 0; got {v.strip()!r}")
        out.append(x)
    return out


def _policy(min_cell: int, disclosure: bool) -> Any:
    from toolkit.disclosure import DisclosurePolicy

    if min_cell < 1:
        raise AnalysisError(f"--min-cell must be >= 1; got {min_cell} (use --no-disclosure to turn it off)")
    return DisclosurePolicy(min_cell=min_cell, enabled=disclosure)


def _json_safe(value: Any) -> Any:
    """Non-finite numbers (an infinite CI limit under separation) become null, as in results.json."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _emit(kind: AnalysisKind, entry: dict[str, Any], *, as_json: bool, policy: Any) -> None:
    from toolkit.disclosure import COUNT_KEYS

    released = _json_safe(policy.scrub(entry, COUNT_KEYS))
    if as_json or kind.text is None:
        sys.stdout.write(json.dumps(released, indent=2, allow_nan=False) + "\n")
        return
    from toolkit.study.kinds.textfmt import MIN_CELL

    warnings = released.get("warnings") or []
    token = MIN_CELL.set(policy.min_cell)
    try:
        text = kind.text(released)
    finally:
        MIN_CELL.reset(token)
    sys.stdout.write(text + "".join(f"\nwarning: {w}" for w in warnings) + "\n")
    if not policy.enabled:
        sys.stdout.write(policy.describe() + "\n")


def _plotting_commands() -> str:
    from toolkit.study.kinds import KINDS

    return ", ".join(k.command.name for k in KINDS.values() if k.command and k.template and k.type in _PLOTS)


#: kinds whose run returns a plot (the others refuse --plot)
_PLOTS = ("kaplan_meier", "cox", "cumulative_incidence")


def _study_frame(frame: pd.DataFrame, time: str, event: str) -> pd.DataFrame:
    """The table with its time and event columns named as a study's frame names them."""
    other = [c for c in ("time", "event") if c in frame.columns and c not in (time, event)]
    return frame.drop(columns=other).rename(columns={time: "time", event: "event"})


def run_command(kind: AnalysisKind, common: dict[str, Any], given: dict[str, Any]) -> None:
    """One ``regent analyze`` command: read the table, build the kind's spec, run it, print."""
    from toolkit.specs import validation_message

    assert kind.command is not None
    policy = _policy(common["min_cell"], common["disclosure"])
    if common["plot"] is not None and kind.type not in _PLOTS:
        raise AnalysisError(
            f"--plot: there is no plot for {kind.command.name}; plots exist for {_plotting_commands()}"
        )
    fields: dict[str, Any] = {}
    for opt in kind.command.options:
        value = _value(opt, given.get(opt.name))
        if value is None and opt.required:
            raise AnalysisError(f"--{opt.name} is required for {kind.command.name} ({opt.help.lower()})")
        if value is not None:
            fields[opt.spec_field] = value
    frame = _read(common["data"])
    named = {o.name: given.get(o.name) for o in kind.command.options if o.parse == "column"}
    _columns(frame, common["data"], time=common["time"], event=common["event"], **named)
    try:
        spec = kind.spec.model_validate({"type": kind.type, "name": kind.command.name, **fields})
    except ValidationError as exc:
        raise AnalysisError(validation_message(f"regent analyze {kind.command.name}", exc)) from None
    entry, plots = kind.run(spec, _study_frame(frame, common["time"], common["event"]), policy, RunContext())
    if common["plot"] is not None and plots:
        path = common["plot"]
        path.parent.mkdir(parents=True, exist_ok=True)
        plot = next(iter(plots.values()))  # PNG bytes carrying the SVG (toolkit.analysis.figure.Plot)
        svg = getattr(plot, "svg", "")
        if path.suffix.lower() == ".svg" and svg:
            path.write_text(svg, encoding="utf-8")
        else:
            path.write_bytes(plot)
        sys.stderr.write(f"wrote {path}\n")
    _emit(kind, entry, as_json=common["as_json"], policy=policy)


_COMMON = (
    ("data", DataOpt, inspect.Parameter.empty),
    ("time", TimeOpt, "time"),
    ("event", EventOpt, "event"),
    ("as_json", JsonOpt, False),
    ("plot", PlotOpt, None),
    ("min_cell", MinCellOpt, 10),
    ("disclosure", DisclosureOpt, True),
)


def _annotation(opt: Option) -> Any:
    flag = f"--{opt.name}"
    if opt.parse == "flag":
        return Annotated[bool, typer.Option(flag, help=opt.help)]
    if opt.parse == "integers":
        return Annotated[list[int] | None, typer.Option(flag, help=opt.help)]
    return Annotated[str | None, typer.Option(flag, help=opt.help)]


def _command(kind: AnalysisKind) -> Callable[..., None]:
    """A typer command for ``kind``: the common options, then the kind's own."""
    assert kind.command is not None
    own = kind.command.options

    def command(**kwargs: Any) -> None:
        common = {name: kwargs.pop(name) for name, _, _ in _COMMON}
        run_command(kind, common, kwargs)

    params = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
        for name, ann, default in _COMMON
    ]
    params += [
        inspect.Parameter(
            o.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=_annotation(o),
            default=o.default if o.parse == "flag" else (None if o.default is None else str(o.default)),
        )
        for o in own
    ]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = kind.command.help
    return command


def _register() -> None:
    from toolkit.study.kinds import KINDS

    for kind in KINDS.values():
        if kind.command is not None:
            analyze_app.command(kind.command.name)(_command(kind))


_register()
