"""Design matrices: numeric covariates as given, text/categorical as indicators.

The reference level of a text covariate is its first level in sorted order (as R's default
factor coding for character vectors); indicator columns are named ``column=level``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from toolkit.errors import AnalysisError


@dataclass(frozen=True)
class Design:
    names: tuple[str, ...]
    matrix: np.ndarray
    levels: dict[str, tuple[str, ...]]  # categorical column -> all levels (first is reference)


def complete_cases(frame: pd.DataFrame, cols: Sequence[str], what: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows with every column in ``cols`` present, and the warning that says how many were left
    out; a column not in the frame is an error naming the analysis (``what``)."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise AnalysisError(f"{what}: columns {missing} not in the data; available: {list(frame.columns)}")
    data = frame.dropna(subset=list(cols))
    warnings = []
    if len(data) < len(frame):
        warnings.append(f"{len(frame) - len(data)} rows with missing values were left out (complete cases)")
    return data, warnings


def is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def design_matrix(
    frame: pd.DataFrame, covariates: Sequence[str], levels: dict[str, tuple[str, ...]] | None = None
) -> Design:
    """Build the numeric design.  Pass ``levels`` to reuse a training set's coding."""
    if not covariates:
        raise AnalysisError("no covariates given")
    cols: list[np.ndarray] = []
    names: list[str] = []
    used_levels: dict[str, tuple[str, ...]] = {}
    for c in covariates:
        if c not in frame.columns:
            raise AnalysisError(f"covariate {c!r} not in the data; available: {list(frame.columns)}")
        s = frame[c]
        if (levels and c in levels) or is_categorical(s):
            lv = levels[c] if levels and c in levels else tuple(sorted(s.dropna().astype(str).unique()))
            used_levels[c] = lv
            if len(lv) < 2 and not (levels and c in levels):
                raise AnalysisError(f"covariate {c!r} has fewer than two levels; it is constant")
            sv = s.astype(str)
            for level in lv[1:]:
                cols.append((sv == level).to_numpy(float))
                names.append(f"{c}={level}")
        else:
            cols.append(s.astype(float).to_numpy())
            names.append(c)
    return Design(tuple(names), np.column_stack(cols), used_levels)
