"""Federated analyses equal the pooled run: exact mode to 1e-8 (KM, log-rank, Cox with Efron and
Breslow ties, logistic regression, Table 1), binned mode to 1e-8 against the pooled analysis of
the same data on the shared bins.  The pooled reference is Regent's own validated code (KM,
log-rank and Cox are validated against R) and statsmodels for logistic regression."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from toolkit.disclosure import COUNT_KEYS, DisclosurePolicy
from toolkit.federated import InProcessTransport, RunOptions, SiteLimits, SiteNode, run_federated
from toolkit.federated.protocols import NOT_FEDERATED_CONCORDANCE, NOT_FEDERATED_PH

FEDERATED_ONLY_NOTES = {NOT_FEDERATED_CONCORDANCE, NOT_FEDERATED_PH}
NOT_COMPUTED = {"concordance", "ph_test"}  # Cox: need individuals from several sites at once


def assert_same(pooled: Any, fed: Any, path: str = "", *, rel: float = 1e-8) -> None:
    """Every number equal to ``rel``; text, counts and structure identical."""
    if isinstance(pooled, dict):
        assert isinstance(fed, dict), path
        keys = set(pooled) - NOT_COMPUTED
        assert keys <= set(fed), f"{path}: missing {keys - set(fed)}"
        for k in keys:
            if k == "warnings":
                notes = FEDERATED_ONLY_NOTES
                assert [w for w in fed[k] if w not in notes] == [w for w in pooled[k] if w not in notes], path
            else:
                assert_same(pooled[k], fed[k], f"{path}.{k}", rel=rel)
    elif isinstance(pooled, list):
        assert isinstance(fed, list) and len(fed) == len(pooled), f"{path}: length"
        for i, (a, b) in enumerate(zip(pooled, fed, strict=True)):
            assert_same(a, b, f"{path}[{i}]", rel=rel)
    elif isinstance(pooled, float) and not isinstance(pooled, bool):
        assert isinstance(fed, int | float), path
        assert math.isclose(pooled, fed, rel_tol=rel, abs_tol=rel), (
            f"{path}: pooled {pooled} != federated {fed}"
        )
    else:
        assert pooled == fed, f"{path}: pooled {pooled!r} != federated {fed!r}"


@pytest.fixture(scope="module")
def pooled_run(fed_study: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from toolkit.study.runner import run_study

    return run_study(fed_study, out=tmp_path_factory.mktemp("pooled"), use_cache=False).results.to_json()


def _nodes(sites: dict[str, Path], limits: SiteLimits) -> list[SiteNode]:
    return [SiteNode(p, name=name, limits=limits) for name, p in sites.items()]


@pytest.fixture(scope="module")
def exact_run(fed_study: Path, site_registries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    nodes = _nodes(site_registries, SiteLimits(allow_exact=True))
    return run_federated(
        fed_study,
        InProcessTransport(nodes),
        out=tmp_path_factory.mktemp("exact"),
        options=RunOptions(exact=True),
    )


@pytest.mark.parametrize("name", ["km_sex", "km_strat", "lr_sex"])
def test_exact_kaplan_meier_and_logrank_equal_pooled(pooled_run, exact_run, name: str) -> None:  # type: ignore[no-untyped-def]
    assert_same(pooled_run["analyses"][name], exact_run.results.to_json()["analyses"][name])


@pytest.mark.parametrize("name", ["cox_efron", "cox_breslow"])
def test_exact_cox_equals_pooled_for_both_tie_methods(pooled_run, exact_run, name: str) -> None:  # type: ignore[no-untyped-def]
    pooled, fed = pooled_run["analyses"][name], exact_run.results.to_json()["analyses"][name]
    assert fed["ties"] == ("breslow" if name == "cox_breslow" else "efron")
    assert_same(pooled, fed)
    assert fed["concordance"] is None and set(FEDERATED_ONLY_NOTES) <= set(fed["warnings"])


def test_exact_logistic_equals_pooled_and_statsmodels(
    pooled_run, exact_run, fed_study: Path, pooled_registry: Path
) -> None:  # type: ignore[no-untyped-def]
    import statsmodels.api as sm

    from toolkit.federated.site import study_data
    from toolkit.study.spec import load_study

    fed = exact_run.results.to_json()["analyses"]["logit_1y"]
    assert_same(pooled_run["analyses"]["logit_1y"], fed)
    spec, _ = load_study(fed_study)
    frame = study_data(spec.model_dump(mode="json"), pooled_registry).frame
    d = frame.dropna(subset=["label_365d", "age", "sex", "lvef", "copd"])
    x = np.column_stack([np.ones(len(d)), d["age"], (d["sex"] == "M").astype(float), d["lvef"], d["copd"]])
    ref = sm.Logit(d["label_365d"].astype(float).to_numpy(), x).fit(
        disp=0, method="newton", tol=1e-14, maxiter=100
    )
    coef = np.array([t["coef"] for t in fed["coefficients"]])
    se = np.array([t["se"] for t in fed["coefficients"]])
    np.testing.assert_allclose(coef, ref.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(se, ref.bse, rtol=1e-8)
    assert math.isclose(fed["loglik"], ref.llf, rel_tol=1e-10)


def test_exact_table1_equals_pooled(pooled_run, exact_run) -> None:  # type: ignore[no-untyped-def]
    pooled, fed = pooled_run["analyses"]["t1"], exact_run.results.to_json()["analyses"]["t1"]
    assert [r["label"] for r in fed["rows"]] == [r["label"] for r in pooled["rows"]]
    assert any("median [IQR]" in r["label"] for r in fed["rows"])  # a skewed variable: exact quantiles
    assert_same(pooled, fed)


def test_cohort_attrition_and_schema_equal_pooled(pooled_run, exact_run) -> None:  # type: ignore[no-untyped-def]
    fed = exact_run.results.to_json()
    for key in ("n", "events", "horizons", "name"):
        assert fed["cohort"][key] == pooled_run["cohort"][key], key
    # attrition: equal wherever released; a site suppresses its own small removals (1..k-1), so
    # the federated flow may hide a cell the pooled flow shows, never the reverse
    hidden = 0
    for f_row, p_row in zip(fed["cohort"]["attrition"], pooled_run["cohort"]["attrition"], strict=True):
        for k in ("step", "kind", "n", "removed", "events"):
            assert f_row[k] is None or f_row[k] == p_row[k], (f_row, p_row)
            hidden += f_row[k] is None and p_row[k] is not None
    cells = 5 * len(fed["cohort"]["attrition"])
    assert hidden < cells / 4 and fed["cohort"]["attrition"][-1] == pooled_run["cohort"]["attrition"][-1]
    assert set(pooled_run) <= set(fed) and set(fed) - set(pooled_run) == {"federated"}
    f = fed["federated"]
    assert f["mode"] == "exact" and f["sites"] == ["SITE01", "SITE02", "SITE03"]
    assert f["rounds"] >= 4 and f["bytes_sent"] > 0 and f["bytes_received"] > f["bytes_sent"]
    assert (
        exact_run.out / "results.json"
    ).exists() and "Cox proportional hazards" in exact_run.report_path.read_text()


# --- binned mode: exact on the shared bins ----------------------------------------------------
@pytest.fixture(scope="module")
def binned_run(fed_study: Path, site_registries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run_federated(
        fed_study,
        InProcessTransport(_nodes(site_registries, SiteLimits())),
        out=tmp_path_factory.mktemp("binned"),
    )


@pytest.mark.parametrize("name", ["km_sex", "km_strat", "cox_efron", "cox_breslow"])
def test_binned_equals_pooled_analysis_on_the_shared_bins(
    binned_run, fed_study: Path, pooled_registry: Path, name: str
) -> None:  # type: ignore[no-untyped-def]
    from toolkit.federated.site import study_data
    from toolkit.study.kinds import run_analysis
    from toolkit.study.publish import clean as _clean
    from toolkit.study.spec import load_study

    spec, _ = load_study(fed_study)
    frame = study_data(spec.model_dump(mode="json"), pooled_registry).frame
    base = binned_run.results.to_json()["federated"]["time_base_days"]
    edges = np.asarray(binned_run.results.to_json()["federated"]["time_bins"][name])
    # real bins, far coarser than the times (km_strat has 8 small groups per site: one bin may be all)
    assert (1 if name == "km_strat" else 3) <= len(edges) < frame["time"].nunique() / 20
    idx = np.ceil(frame["time"].to_numpy() / base)
    pos = np.minimum(np.searchsorted(np.rint(edges / base), idx, side="left"), len(edges) - 1)
    binned = frame.assign(time=edges[pos])
    a = next(a for a in spec.analyses if a.name == name)
    policy = DisclosurePolicy(spec.disclosure.min_cell)
    ref = _clean(policy.scrub(run_analysis(a, binned, policy)[0], COUNT_KEYS))
    assert_same(ref, binned_run.results.to_json()["analyses"][name])


def test_binned_logistic_and_attrition_are_exact(pooled_run, binned_run) -> None:  # type: ignore[no-untyped-def]
    # logistic regression and the cohort flow never depend on the bins
    assert_same(pooled_run["analyses"]["logit_1y"], binned_run.results.to_json()["analyses"]["logit_1y"])
    assert binned_run.results.to_json()["cohort"]["n"] == pooled_run["cohort"]["n"]
    assert binned_run.results.to_json()["federated"]["mode"] == "binned"
