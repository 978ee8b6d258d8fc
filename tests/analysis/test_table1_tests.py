"""Table 1's optional tests against base R (tests/_scripts/make_table1_reference.R, stored values)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from toolkit.analysis.describe import table1

DATA = Path(__file__).resolve().parents[1] / "data"
REF = json.loads((DATA / "describe" / "table1_tests.json").read_text())


@pytest.fixture(scope="module")
def gbsg() -> pd.DataFrame:
    d = pd.read_csv(DATA / "survival" / "gbsg.csv")
    return d.assign(grade_c="g" + d["grade"].astype(str), meno_c=d["meno"].map({1: "post", 0: "pre"}))


def _p(t1, variable: str) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    row = next(r for r in t1.rows if r.get("variable") == variable and "p" in r)
    return str(row["test"]), float(row["p"])


@pytest.mark.parametrize(("by", "suffix"), [("hormon", "by_hormon"), ("grade_c", "by_grade")])
def test_p_values_match_r(gbsg: pd.DataFrame, by: str, suffix: str) -> None:
    t1 = table1(gbsg.assign(hormon=gbsg["hormon"].astype(str)), ["age", "nodes", "meno_c"], by=by, tests=True)
    two = by == "hormon"
    # t.test(age ~ hormon) / oneway.test(age ~ grade, var.equal=TRUE)
    test, p = _p(t1, "age")
    assert test == ("welch t" if two else "anova") and p == pytest.approx(REF[f"age_{suffix}"]["p"], rel=1e-8)
    # wilcox.test(nodes ~ hormon, exact=FALSE, correct=TRUE) / kruskal.test(nodes ~ grade)
    test, p = _p(t1, "nodes")
    assert test == ("wilcoxon rank-sum" if two else "kruskal-wallis")
    assert p == pytest.approx(REF[f"nodes_{suffix}"]["p"], rel=1e-8)
    # chisq.test(table(meno_c, group), correct=FALSE)
    test, p = _p(t1, "meno_c")
    assert test == "chi-squared" and p == pytest.approx(REF[f"meno_{suffix}"]["p"], rel=1e-8)


def test_no_tests_unless_asked_or_without_groups(gbsg: pd.DataFrame) -> None:
    assert all("p" not in r for r in table1(gbsg, ["age", "meno_c"], by="hormon").rows)
    assert all("p" not in r for r in table1(gbsg, ["age", "meno_c"], tests=True).rows)
