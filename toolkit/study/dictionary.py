"""The study's data dictionary: a label, a unit and the order (and labels) of the levels of each
variable, declared once under ``dictionary:`` in study.yaml and used everywhere a variable is
named for a reader: the report's tables (Table 1, Cox, AFT, Fine–Gray, logistic, subgroups), the
figures (legends, forest plots, axes), the predictors table and the model card.

Display only: computations and results.json keep the column names and codes (a Cox model's
reference level stays the first sorted level; the dictionary's order is the order rows and
curves are *shown* in).  Undeclared variables fall back to what Regent knows: the registry's
built-in columns (``age`` in years, ``sex``, ``age_band``, ``site_id``), a window feature's
value unit, ``present`` features as yes/no, and the column name itself.

.. code-block:: yaml

    dictionary:
      nt_probnp: {label: NT-proBNP, unit: pg/mL}
      sex: {label: Sex, levels: {F: Female, M: Male}}      # order and labels
      age_band: {label: Age band, unit: years}            # bands sort naturally: <65 first
      time: {label: Time since first HF admission}        # the time axis of survival figures
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from toolkit.analysis.labels import ordered
from toolkit.specs import Frozen


class Variable(Frozen):
    """How one variable is named in the report and figures."""

    label: str | None = Field(None, description="What readers see instead of the column name.")
    unit: str | None = Field(None, description="Unit of a numeric variable (mg/dL, years, ...).")
    levels: list[str] | dict[str, str] | None = Field(
        None,  # codes and labels are text: YAML's 1, 0, yes and no are read as written
        description="The levels in the order to show them; a mapping also gives each level's label "
        "(codes as written in the data: {F: Female, M: Male}; 0/1 features: {1: yes, 0: no}).",
    )

    @field_validator("levels", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        def text(x: Any) -> str:
            return ("yes" if x else "no") if isinstance(x, bool) else str(x)

        if isinstance(v, dict):
            return {text(k): text(x) for k, x in v.items()}
        if isinstance(v, list):
            return [text(x) for x in v]
        return v


#: Columns of the registry's vocabulary (toolkit.registry.schema) and of every cohort.
BUILTIN: dict[str, Variable] = {
    "age": Variable(label="Age", unit="years"),
    "age_years": Variable(label="Age", unit="years"),
    "sex": Variable(label="Sex"),
    "age_band": Variable(label="Age band", unit="years"),
    "site_id": Variable(label="Site"),
    "time": Variable(label="Time since cohort entry", unit="days"),
}
YES_NO = {"1": "yes", "0": "no"}


@dataclass(frozen=True)
class DataDictionary:
    """The resolved dictionary: declared entries over Regent's defaults."""

    entries: Mapping[str, Variable] = field(default_factory=dict)
    binary: frozenset[str] = frozenset()  # 0/1 features (present: yes/no)

    def _get(self, name: str) -> Variable:
        return self.entries.get(name) or BUILTIN.get(name) or Variable()

    def label(self, name: str) -> str:
        """``NT-proBNP``; the column name when nothing is declared."""
        return self._get(name).label or name

    def unit(self, name: str) -> str | None:
        return self._get(name).unit

    def with_unit(self, name: str) -> str:
        """``NT-proBNP (pg/mL)``."""
        unit = self.unit(name)
        return f"{self.label(name)} ({unit})" if unit else self.label(name)

    def level_labels(self, name: str) -> dict[str, str]:
        """Declared level -> label, in the declared order (yes/no for a 0/1 feature)."""
        levels = self._get(name).levels
        if levels is None:
            return dict(YES_NO) if name in self.binary else {}
        if isinstance(levels, list):
            return {str(lv): str(lv) for lv in levels}
        return {str(k): str(v) for k, v in levels.items()}

    def level(self, name: str, level: Any) -> str:
        text = str(level)
        return self.level_labels(name).get(text, text)

    def order(self, name: str, levels: Iterable[Any]) -> list[str]:
        """``levels`` in the declared order, else in natural order (``<65`` before ``65-74``)."""
        return ordered((str(lv) for lv in levels), list(self.level_labels(name)))

    def term(self, term: str) -> str:
        """A model term as readers see it: ``sex=M`` -> ``Sex: Male``, ``nt_probnp`` ->
        ``NT-proBNP (pg/mL)``, ``diabetes`` (0/1) -> ``Diabetes (yes vs no)``, a spline basis
        column ``age~s2`` -> ``Age (years), spline 2``, ``log(x)`` -> ``log X (unit)``."""
        if "=" in term:
            name, level = term.split("=", 1)
            return f"{self.label(name)}: {self.level(name, level)}"
        if "~s" in term:
            name, k = term.split("~s", 1)
            return f"{self.with_unit(name)}, spline {k}"
        if term.startswith("log(") and term.endswith(")"):
            return f"log {self.with_unit(term[4:-1])}"
        if term in self.binary or self._get(term).levels is not None:
            labels = self.level_labels(term)
            if len(labels) == 2:
                yes, no = (labels.get("1", "yes"), labels.get("0", "no"))
                return f"{self.label(term)} ({yes} vs {no})"
        return self.with_unit(term)

    @property
    def time_label(self) -> str:
        return self.label("time")

    def fingerprint(self) -> dict[str, Any]:
        """What the figures depend on (step cache keys)."""
        return {
            "entries": {k: v.model_dump(mode="json") for k, v in sorted(self.entries.items())},
            "binary": sorted(self.binary),
        }


def dictionary_of(spec: Any) -> DataDictionary:
    """The study's dictionary: ``spec.dictionary`` over each window feature's unit and the yes/no
    of ``present`` features."""
    entries: dict[str, Variable] = {}
    binary = set()
    for w in getattr(spec.features, "windows", []):
        if w.agg == "present":
            binary.add(w.name)
        unit = getattr(getattr(w, "value", None), "unit", None)
        if unit:
            entries[w.name] = Variable(unit=unit)
    for name, v in (getattr(spec, "dictionary", None) or {}).items():
        base = entries.get(name) or BUILTIN.get(name) or Variable()
        entries[name] = base.model_copy(update=v.model_dump(exclude_unset=True))
    return DataDictionary(entries, frozenset(binary))
