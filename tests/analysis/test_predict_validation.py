"""Internal and external validation: optimism bootstrap, external splits, assessment, subgroups."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from toolkit.analysis.predict.assess import assess, point_metrics
from toolkit.analysis.predict.develop import ModelPlan, develop_model, external_split
from toolkit.analysis.predict.evaluate import optimism_bootstrap
from toolkit.analysis.predict.models import make_model
from toolkit.analysis.predict.subgroups import subgroup_metrics
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import AnalysisError

H = 365.0


def _frame(rng: np.random.Generator, n: int, signal: float = 1.0, noise: int = 0) -> pd.DataFrame:
    x = rng.normal(size=n)
    d = pd.DataFrame({"x": x})
    for j in range(noise):
        d[f"z{j}"] = rng.normal(size=n)
    t_event = rng.exponential(365 / (0.4 * np.exp(signal * x)))
    t_cens = rng.uniform(200, 1000, n)
    d["time"] = np.minimum(t_event, t_cens)
    d["event"] = (t_event <= t_cens).astype(int)
    d["site_id"] = rng.choice(["SITE01", "SITE02", "SITE03"], n)
    d["sex"] = rng.choice(["F", "M"], n)
    d["index_time"] = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")
    return d


def test_optimism_removes_the_apparent_skill_of_pure_noise(rng: np.random.Generator) -> None:
    """Known truth: 15 noise features carry no information, so the true C-index is 0.5."""
    d = _frame(rng, 200, signal=0.0, noise=15)
    feats = [f"z{j}" for j in range(15)]
    t, e = d["time"].to_numpy(), d["event"].to_numpy()

    def make():  # type: ignore[no-untyped-def]
        return make_model("cox", horizon=H, features=feats)

    apparent, _ = point_metrics(t, e, make().fit(d, t, e).predict_risk(d), H)
    opt = optimism_bootstrap(make, d, t, e, horizon=H, apparent=apparent, replicates=25, seed=3)
    assert apparent["c_harrell"] > 0.58
    assert abs(opt.corrected["c_harrell"] - 0.5) < 0.04
    assert opt.optimism["calibration_slope"] > 0.3  # a noise model's predictions are far too extreme
    assert opt.failed == 0 and set(opt.metrics()) >= {"optimism_c_harrell", "corrected_auroc"}


def test_optimism_records_failed_replicates(rng: np.random.Generator) -> None:
    d = _frame(rng, 150)
    t, e = d["time"].to_numpy(), d["event"].to_numpy()
    calls = [0]

    def make():  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise AnalysisError("cox: no events in the training data")
        return make_model("cox", horizon=H, features=["x"])

    apparent, _ = point_metrics(
        t, e, make_model("cox", horizon=H, features=["x"]).fit(d, t, e).predict_risk(d), H
    )
    opt = optimism_bootstrap(make, d, t, e, horizon=H, apparent=apparent, replicates=9, seed=0)
    assert opt.failed == 3 and any("3 of 9 replicates failed" in w for w in opt.warnings)


def test_bootstrap_auroc_interval_agrees_with_delong(rng: np.random.Generator) -> None:
    n = 400
    p = rng.uniform(0.05, 0.8, n)
    dead = rng.random(n) < p
    time = np.where(dead, rng.uniform(1, 364, n), 400.0)
    a = assess(time, dead.astype(int), p, H, bootstrap=400, seed=1)
    # DeLong et al. (1988) variance from placement values
    pos, neg = p[dead], p[~dead]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = math.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
    width = a.metrics["auroc_upper"] - a.metrics["auroc_lower"]
    assert a.metrics["auroc"] == pytest.approx(psi.mean(), abs=1e-12)
    assert width == pytest.approx(2 * 1.959964 * se, rel=0.15)
    assert a.calibration_outcome == "binary"


def test_assess_degenerate_predictions_are_warnings_not_nans(rng: np.random.Generator) -> None:
    d = _frame(rng, 300)
    t, e = d["time"].to_numpy(), d["event"].to_numpy()
    a = assess(t, e, np.full(len(t), 0.3), H, bootstrap=20)
    assert all(np.isfinite(v) for v in a.metrics.values())
    assert "calibration_slope" not in a.metrics and "ici" not in a.metrics
    assert any("predictions are constant" in w for w in a.warnings)
    assert a.metrics["auroc"] == 0.5
    # nobody has the event by the horizon: discrimination at the horizon is undefined, said so
    late = np.where(e == 1, np.maximum(t, H + 1), t)
    b = assess(late, e, rng.uniform(0.1, 0.5, len(t)), H, bootstrap=20)
    assert "auroc" not in b.metrics and any(w.startswith("auroc: only one outcome class") for w in b.warnings)
    # warnings are released with the results: they name the problem, never a count of persons
    counts = {str(int(x)) for x in (len(t), (e == 1).sum(), (t >= H).sum(), (late >= H).sum())}
    assert not any(c in w.split() for w in [*a.warnings, *b.warnings] for c in counts)


def test_external_split_by_site_and_by_date(rng: np.random.Generator) -> None:
    d = _frame(rng, 300)
    s = external_split(d, by="site_id", values=["SITE03"])
    assert s.mask.sum() == (d["site_id"] == "SITE03").sum() and s.description == "site_id in ['SITE03']"
    s = external_split(d, index_after="2021-01-01")
    assert s.mask.sum() == (d["index_time"] >= "2021-01-01").sum() and "2021-01-01" in s.description
    with pytest.raises(AnalysisError, match=r"values: \['SITE09'\] do not occur in 'site_id'"):
        external_split(d, by="site_id", values=["SITE09"])
    with pytest.raises(AnalysisError, match="leaves no persons"):
        external_split(d, index_after="2099-01-01")
    with pytest.raises(AnalysisError, match="either 'by' with 'values', or 'index_after'"):
        external_split(d)
    with pytest.raises(AnalysisError, match="unknown column 'hospital'"):
        external_split(d, by="hospital", values=["A"])


def test_subgroup_cells_below_min_cell_are_suppressed_and_gaps_are_max_minus_min(
    rng: np.random.Generator,
) -> None:
    d = _frame(rng, 600)
    d.loc[d.index[:6], "sex"] = "X"  # a level with 6 persons
    t, e = d["time"].to_numpy(), d["event"].to_numpy()
    risk = make_model("cox", horizon=H, features=["x"]).fit(d, t, e).predict_risk(d)
    table, largest = subgroup_metrics(
        d[["sex", "site_id"]], t, e, risk, H, policy=DisclosurePolicy(min_cell=10)
    )
    cells = {c["level"]: c for c in table["variables"]["sex"]}
    assert cells["X"] == {"level": "X", "suppressed": True}
    shown = [c["metrics"]["c_harrell"] for c in table["variables"]["site_id"]]
    gap = next(g for g in table["gaps"] if g["variable"] == "site_id" and g["metric"] == "c_harrell")
    assert gap["gap"] == pytest.approx(max(shown) - min(shown))
    assert largest["subgroup_gap_c_harrell"] == max(
        g["gap"] for g in table["gaps"] if g["metric"] == "c_harrell"
    )
    for c in table["variables"]["site_id"]:  # each cell is the metric on that level's persons
        sel = (d["site_id"] == c["level"]).to_numpy()
        assert c["metrics"]["c_harrell"] == pytest.approx(
            point_metrics(t[sel], e[sel], risk[sel], H)[0]["c_harrell"]
        )


def test_develop_model_with_external_validation(rng: np.random.Generator) -> None:
    d = _frame(rng, 900)
    ext = external_split(d, by="site_id", values=["SITE03"])
    policy = DisclosurePolicy(min_cell=10)
    _, res, plots = develop_model(
        d,
        ModelPlan(
            name="m",
            kind="logistic",
            features=("x", "sex"),
            horizon=H,
            cv_folds=3,
            bootstrap=30,
            optimism=5,
            subgroups=("sex",),
            external=ext,
        ),
        policy=policy,
    )
    m = res["metrics"]
    assert res["task"] == "binary" and res["n"] == int((~ext.mask).sum())
    for key in (
        "auroc_mean",
        "oof_auroc",
        "oof_auroc_lower",
        "oof_c_uno",
        "oof_calibration_slope",
        "corrected_c_harrell",
        "optimism_auroc",
        "subgroup_gap_c_harrell",
        "external_auc_td",
        "external_recal_slope",
        "external_recal_intercept",
        "apparent_ici",
    ):
        assert key in m and np.isfinite(m[key]), key
    assert all(v is None or np.isfinite(v) for v in m.values())
    assert res["external"]["split"] == "site_id in ['SITE03']" and res["external"]["n"] == int(ext.mask.sum())
    assert set(plots) == {"roc_m", "calibration_m", "dca_m", "calibration_external_m"}
    assert all(png.startswith(b"\x89PNG") for png in plots.values())
    assert set(res["importance"]) == {"x", "sex"} and res["coefficients"]
    for row in res["thresholds"]:
        assert row.get("suppressed") or row["n_positive"] is None or row["n_positive"] >= 10
    assert [c["threshold"] for c in res["decision_curve"]][:2] == [0.01, 0.02]
