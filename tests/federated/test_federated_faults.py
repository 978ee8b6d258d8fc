"""Faults and refusals: the coordinator stops cleanly, naming the site and the round, and writes
nothing; sites below their minimums refuse with a reason; the arithmetic pieces match the
pooled code; shared bins never hold 1..m-1 events of any group at any site."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.analysis.survival.cox import cox_stats, newton_raphson, newton_steps
from toolkit.errors import FederatedError, SiteRefusal
from toolkit.federated import InProcessTransport, RunOptions, SiteLimits, SiteNode, run_federated
from toolkit.federated.assemble import pooled_cox_stats
from toolkit.federated.bins import assign, base_index, propose_cuts, shared_cuts
from toolkit.federated.wire import decode, encode

from .conftest import make_study

ANALYSES = [
    {"name": "km", "type": "kaplan_meier", "by": "sex", "times": [365]},
    {"name": "cox", "type": "cox", "covariates": ["age", "lvef"]},
]


class Faulty:
    """A site node that behaves until ``round_no``, then crashes or answers garbage."""

    def __init__(self, node: SiteNode, round_no: int, how: str) -> None:
        self.node, self.name, self.at, self.how, self.seen = node, node.name, round_no, how, 0

    def handle_bytes(self, payload: bytes) -> bytes:
        self.seen += 1
        if self.seen < self.at:
            return self.node.handle_bytes(payload)
        if self.how == "crash":
            raise ConnectionResetError("site went away")
        if self.how == "hang":
            time.sleep(4.0)  # longer than the transport waits
            return self.node.handle_bytes(payload)
        if self.how == "bytes":
            return b"\x00\xffnot a message"
        return encode(_truncate(decode(self.node.handle_bytes(payload))))  # well-formed, nonsense content


def _truncate(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.ravel()[:1]
    if isinstance(value, dict):
        return {k: _truncate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_truncate(v) for v in value]
    return value


@pytest.fixture(scope="module")
def study(pooled_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_study(tmp_path_factory.mktemp("faults"), pooled_registry, ANALYSES)


def _nodes(sites: dict[str, Path], **limits: Any) -> list[SiteNode]:
    return [SiteNode(p, name=s, limits=SiteLimits(**limits)) for s, p in sites.items()]


@pytest.mark.parametrize(
    ("how", "round_no", "message"),
    [
        ("crash", 3, r"round 3: site SITE02 dropped out"),
        ("hang", 2, r"round 2: site SITE02 did not answer within 2 s"),
        ("bytes", 2, r"round 2: site SITE02 answered garbage \(not a valid message\)"),
        ("shape", 4, r"round 4: site SITE02 answered garbage"),
    ],
)
def test_a_site_that_drops_out_or_answers_garbage_stops_the_run(
    study: Path, site_registries: dict[str, Path], tmp_path: Path, how: str, round_no: int, message: str
) -> None:
    nodes: list[Any] = _nodes(site_registries)
    if how == "hang":  # the cohort is computed before the clock matters
        from toolkit.study.spec import load_study

        spec_json = load_study(study)[0].model_dump(mode="json")
        for n in nodes:
            n.data(spec_json)
    nodes[1] = Faulty(nodes[1], round_no, how)
    out = tmp_path / "out"
    with pytest.raises(FederatedError, match=message) as err:
        run_federated(study, InProcessTransport(nodes, timeout_s=2 if how == "hang" else 300), out=out)
    assert err.value.site == "SITE02" and err.value.round_no == round_no
    assert not out.exists()  # nothing partial


def test_a_site_below_its_minimums_refuses_with_its_reason(
    study: Path, site_registries: dict[str, Path], tmp_path: Path
) -> None:
    nodes = _nodes(site_registries)
    nodes[2] = SiteNode(site_registries["SITE03"], name="SITE03", limits=SiteLimits(min_persons=100_000))
    with pytest.raises(
        SiteRefusal, match=r"round 1: site SITE03 refused hello .*fewer than 100000 persons"
    ) as err:
        run_federated(study, InProcessTransport(nodes), out=tmp_path / "out")
    assert err.value.site == "SITE03" and not (tmp_path / "out").exists()


def test_parameters_to_n_cap_refuses_a_model_with_too_many_parameters(
    study: Path, site_registries: dict[str, Path], tmp_path: Path
) -> None:
    nodes = _nodes(site_registries, persons_per_parameter=400)  # ~600 persons per site, 2 parameters
    with pytest.raises(
        SiteRefusal, match=r"site SITE0\d refused cox_summary \(cox\): .*persons_per_parameter"
    ):
        run_federated(study, InProcessTransport(nodes), out=tmp_path / "out")


def test_exact_counts_need_every_site_to_allow_them(
    study: Path, site_registries: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(SiteRefusal, match=r"round 1: site SITE01 refused hello .*allow_exact"):
        run_federated(
            study,
            InProcessTransport(_nodes(site_registries)),
            out=tmp_path / "o",
            options=RunOptions(exact=True),
        )


def test_wire_round_trip_keeps_arrays_and_numbers_exact(rng: np.random.Generator) -> None:
    msg = {"a": rng.normal(size=(3, 4)), "i": np.arange(5), "x": 0.1, "n": None, "s": ["é", 1]}
    back = decode(encode(msg))
    np.testing.assert_array_equal(back["a"], msg["a"])
    np.testing.assert_array_equal(back["i"], msg["i"])
    assert back["x"] == 0.1 and back["n"] is None and back["s"] == ["é", 1]
    with pytest.raises(ValueError):
        decode(b'{"__nd__": ["object", [1], ""]}')


# --- arithmetic ------------------------------------------------------------------------------
def _site_pieces(
    x: np.ndarray, t: np.ndarray, d: np.ndarray, s: np.ndarray, beta: np.ndarray
) -> dict[str, Any]:
    """What a site sends for Cox (exact mode), computed as site.py does."""
    out = []
    r = np.exp(x @ beta)
    for label in np.unique(s):
        m = s == label
        times, pos = np.unique(t[m], return_inverse=True)
        T, p = len(times), x.shape[1]
        xm, rm, dm = x[m], r[m], d[m]
        outer = np.einsum("i,ij,ik->ijk", rm, xm, xm)
        ev = dm > 0
        piece = {"stratum": str(label), "time": times, "d": np.bincount(pos, weights=dm, minlength=T)}
        piece["a0"] = np.bincount(pos, weights=rm, minlength=T)
        piece["e0"] = np.bincount(pos[ev], weights=rm[ev], minlength=T)
        for key, w in (("a1", np.ones(len(rm), bool)), ("e1", ev)):
            piece[key] = np.zeros((T, p))
            np.add.at(piece[key], pos[w], (rm[:, None] * xm)[w])
        for key, w in (("a2", np.ones(len(rm), bool)), ("e2", ev)):
            piece[key] = np.zeros((T, p, p))
            np.add.at(piece[key], pos[w], outer[w])
        iu = np.triu_indices(p)  # sites send the upper triangles
        piece["a2"], piece["e2"] = piece["a2"][:, iu[0], iu[1]], piece["e2"][:, iu[0], iu[1]]
        piece["ex"] = xm[ev].sum(axis=0)
        piece["eeta"] = float((xm[ev] @ beta).sum())
        out.append(piece)
    return {"strata": out}


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_pooled_risk_sets_from_site_pieces_equal_pooled_cox_stats(
    rng: np.random.Generator, ties: str
) -> None:
    n, p = 400, 3
    x = rng.normal(size=(n, p))
    t = rng.integers(1, 60, n).astype(float)  # many ties across sites
    d = (rng.random(n) < 0.6).astype(float)
    strata = rng.integers(0, 2, n)
    site = rng.integers(0, 3, n)
    beta = rng.normal(scale=0.3, size=p)
    pieces = [
        _site_pieces(x[site == k], t[site == k], d[site == k], strata[site == k], beta) for k in range(3)
    ]
    got = pooled_cox_stats(pieces, p, ties)  # type: ignore[arg-type]
    ref = cox_stats(x, t, d, strata, beta, ties=ties)  # type: ignore[arg-type]
    assert got.loglik == pytest.approx(ref.loglik, rel=1e-12)
    np.testing.assert_allclose(got.score, ref.score, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got.information, ref.information, rtol=1e-10)
    # summing per-site partial likelihoods would be a different (site-stratified) model
    by_site = sum(
        cox_stats(x[site == k], t[site == k], d[site == k], strata[site == k], beta, ties=ties).loglik
        for k in range(3)
    )  # type: ignore[arg-type]
    assert abs(by_site - ref.loglik) > 1.0


def test_newton_steps_take_the_pooled_fits_steps(rng: np.random.Generator) -> None:
    x = rng.normal(size=(300, 2))
    t = rng.exponential(1 / np.exp(x @ np.array([0.5, -0.3])))
    d = (rng.random(300) < 0.7).astype(float)

    def fn(b: np.ndarray):  # type: ignore[no-untyped-def]
        return cox_stats(x, t, d, None, b)

    beta, stats, iters = newton_raphson(fn, 2)
    gen = newton_steps(2)
    b = next(gen)
    while True:
        try:
            b = gen.send(fn(b))
        except StopIteration as stop:
            fb, fstats, fiters = stop.value
            break
    np.testing.assert_array_equal(fb, beta)
    assert fiters == iters and fstats.loglik == stats.loglik


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 200), st.integers(0, 2), st.booleans()), min_size=0, max_size=150),
        min_size=2,
        max_size=4,
    ),
    st.integers(2, 6),
)
def test_shared_bins_hold_zero_or_at_least_m_events_per_group_at_every_site(
    sites: list[list[tuple[int, int, bool]]], m: int
) -> None:
    proposals, rows = [], []
    for data in sites:
        idx = np.array([r[0] for r in data], np.int64)
        cell = np.array([r[1] for r in data], np.int64)
        ev = np.array([r[2] for r in data], bool)
        totals = np.bincount(cell[ev], minlength=3) if len(data) else np.zeros(3)
        if np.any((totals > 0) & (totals < m)):
            with pytest.raises(SiteRefusal):
                propose_cuts(idx, cell, 3, m, what="test", counted=ev)
            return
        proposals.append(propose_cuts(idx, cell, 3, m, what="test", counted=ev))
        rows.append((idx, cell, ev))
    cuts = shared_cuts(proposals)
    if not any(len(r[0]) and r[2].any() for r in rows):
        return
    for idx, cell, ev in rows:
        if not len(idx):
            continue
        pos = assign(idx, cuts)
        counts = np.zeros((3, len(cuts)), int)
        np.add.at(counts, (cell[ev], pos[ev]), 1)
        assert np.all((counts == 0) | (counts >= m))
        assert np.all(idx[ev] <= cuts[pos[ev]])  # every event lies in its bin (ceil to the right edge)


def test_base_index_puts_an_edge_in_the_bin_it_closes() -> None:
    np.testing.assert_array_equal(base_index(np.array([0.5, 1.0, 1.01, 30.0]), 1.0), [1, 1, 2, 30])


def test_multiple_imputation_is_refused_naming_the_analysis(
    pooled_registry: Path, site_registries: dict[str, Path], tmp_path: Path
) -> None:
    """Each site could impute from its own rows only: the run stops before writing anything."""
    mi = make_study(tmp_path / "mi", pooled_registry, ANALYSES, missing={"method": "multiple_imputation"})
    out = tmp_path / "out"
    with pytest.raises(FederatedError, match=r"analysis 'cox': multiple imputation is not available"):
        run_federated(mi, InProcessTransport(_nodes(site_registries)), out=out)
    assert not out.exists()
