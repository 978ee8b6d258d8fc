"""What an analysis kind declares, once: its spec, the columns it reads, how it runs, how its entry
reads as text, its report section, its ``regent analyze`` command and how it is federated.

Everything else is generated from these declarations (:mod:`toolkit.study.kinds`): the
``analyses`` union of study.yaml, the reference checks, the study step, the CLI subcommands, the
report sections and the federated run's choice of protocol.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from toolkit.specs import Frozen
from toolkit.study.dictionary import DataDictionary
from toolkit.study.missing import MissingSpec

#: What running an analysis gives: its results.json entry and its plots (name -> PNG bytes).
AnalysisOutput = tuple[dict[str, Any], dict[str, bytes]]
#: (study.yaml key under the analysis, column name) for every column an analysis reads.
ColumnRef = tuple[str, str]
Parse = Literal["column", "columns", "numbers", "number", "integer", "integers", "choice", "flag", "text"]


if TYPE_CHECKING:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy
    from toolkit.disclosure.joint import Tabulation


class AnalysisSpec(Frozen):
    """Base of every analysis spec in study.yaml: a ``type`` (the kind) and a ``name``."""

    type: str
    name: str


@dataclass(frozen=True)
class Option:
    """One ``regent analyze`` option, filling one field of the kind's spec."""

    name: str  # the option without dashes: "covariates" -> --covariates
    parse: Parse
    help: str
    field: str | None = None  # the spec field (default: the same name)
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()

    @property
    def spec_field(self) -> str:
        return self.field or self.name


@dataclass(frozen=True)
class Command:
    """The kind's ``regent analyze NAME`` command: its options beyond --data/--time/--event."""

    name: str
    help: str
    options: tuple[Option, ...] = ()


@dataclass(frozen=True)
class RunContext:
    """What an analysis takes from its study beyond its own spec: the data dictionary (labels,
    units, level order of figures), the study's horizon (the default time range of survival
    figures), the missing-data policy of regressions and the study seed (imputations)."""

    dictionary: DataDictionary = field(default_factory=DataDictionary)
    horizon: float | None = None  # days
    missing: MissingSpec = field(default_factory=MissingSpec)
    seed: int = 0

    def key(self) -> dict[str, Any]:
        """What the analyses' output depends on (the step cache's key)."""
        return {
            "dictionary": self.dictionary.fingerprint(),
            "horizon": self.horizon,
            "missing": self.missing.model_dump(mode="json"),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class AnalysisKind:
    """An analysis kind: the one place that declares it."""

    type: str
    spec: builtins.type[AnalysisSpec]
    title: str  # for docs and error messages
    run: Callable[[Any, pd.DataFrame, DisclosurePolicy, RunContext], AnalysisOutput]
    columns: Callable[[Any], Iterator[ColumnRef]]
    text: Callable[[dict[str, Any]], str] | None = None  # the CLI's reading of an entry
    template: str | None = None  # report partial under toolkit/study/templates/kinds/
    command: Command | None = None
    protocol: str | None = None  # the federated protocol that computes it (toolkit.federated)
    not_federated: str | None = None  # why there is none
    notes: tuple[str, ...] = field(default=())
    #: the counts its entry shows (toolkit.disclosure.joint), protected with every other table's
    shows: Callable[[Any, pd.DataFrame], Iterator[Tabulation]] | None = None

    def __post_init__(self) -> None:
        if (self.protocol is None) == (self.not_federated is None):
            raise ValueError(f"analysis kind {self.type!r}: declare either a protocol or why there is none")


def curve_text(context: RunContext, by: str | None) -> Any:
    """How a survival figure names its groups and time axis, from the study's dictionary."""
    from toolkit.analysis.plots import CurveText

    d = context.dictionary
    return CurveText(
        by_label=d.with_unit(by) if by else None,
        levels=d.level_labels(by) if by else None,
        time_label=d.label("time"),
    )


def with_int_events(frame: pd.DataFrame) -> pd.DataFrame:
    """The study frame with integer event codes, as the survival functions expect."""
    return frame.assign(event=frame["event"].astype(int))


def count_marks(
    frame: pd.DataFrame,
    by: str | None,
    policy: DisclosurePolicy,
    *,
    causes: tuple[int, ...] = (1,),
    taus: tuple[float, ...] = (),
    per_cause: bool = False,
) -> dict[str, dict[str, str]] | None:
    """The withheld counts of a grouped survival table, level -> ``small``/``complementary``:
    persons (``n``), events of code 1 (``events``; ``per_cause``: ``events_<c>`` for each cause)
    and events by tau (``events_by_tau``), as the run decided them for every table that shows
    them (:meth:`DisclosurePolicy.decide`)."""
    from toolkit.disclosure.joint import Partition

    if by is None:
        return None
    decided = policy.decide(frame, [Partition(by, tuple(causes), tuple(taus))])
    levels = sorted(frame[by].dropna().astype(str).unique())

    def withheld(key: Callable[[str], tuple[Any, ...]]) -> dict[str, str]:
        return {lv: st for lv in levels if (st := decided.status.get(key(lv), "published")) != "published"}

    out = {"n": withheld(lambda lv: ("m", by, lv))}
    for c in causes:
        if per_cause or c == 1:
            out[f"events_{c}" if per_cause else "events"] = withheld(partial(_event_key, c, by))
    for tau in taus:
        out["events_by_tau"] = withheld(partial(_by_tau_key, tau, by))
    return out


def _event_key(code: int, by: str, level: str) -> tuple[Any, ...]:
    return ("e", code, by, level)


def _by_tau_key(tau: float, by: str, level: str) -> tuple[Any, ...]:
    return ("eb", tau, by, level)


def withheld_groups(marks: dict[str, dict[str, str]] | None) -> set[str]:
    """The groups whose size the run withholds (plots leave their time-0 at-risk count out)."""
    return set() if marks is None else set(marks["n"])


def refs(**named: str | list[str] | None) -> Iterator[ColumnRef]:
    """Column references from spec fields: a single column or a list (``covariates[0]`` ...)."""
    for key, value in named.items():
        if value is None:
            continue
        if isinstance(value, list):
            for i, v in enumerate(value):
                yield f"{key}[{i}]", v
        else:
            yield key, value
