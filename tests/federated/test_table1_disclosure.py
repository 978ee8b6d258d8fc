"""Issue 15, item 6: federated Table 1 follows the pooled run's disclosure rules, per site and
after merging.

Three sites of ~270 persons (a synthetic registry split by site), Table 1 by age band (sex,
diabetes, COPD, age, LVEF): each site's 85+ band is small enough that some of its cells are.

* Each site's replies, read as the coordinator reads them (group sizes adding up to the site's n,
  each group's counts adding up to its size, a numeric variable's missing and value counts adding
  up to its size), leave no withheld cell that the LP audit or the marker-aware audit gives away.
* The merged table: the scanner finds nothing in the federated results.json, and every cell both
  runs publish is equal to the pooled run's; the withheld cells carry markers and a footnote.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from toolkit.disclosure.audit import LinearTable, exposures, labelled_exposures
from toolkit.disclosure.derive import derive_results
from toolkit.federated import (
    InProcessTransport,
    RunOptions,
    SiteLimits,
    SiteNode,
    run_federated,
    split_registry,
)

from .conftest import make_study

T1 = [
    {
        "name": "t1",
        "type": "table1",
        "by": "age_band",
        "variables": ["sex", "diabetes", "copd", "age", "lvef"],
    }
]
K = 10


@pytest.fixture(scope="module")
def small_sites(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], Path]:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("small_sites")
    registry = synthesize(root / "hf.duckdb", SynthConfig(900, 3, 5, notes=False, images=False))
    sites = split_registry(registry, root / "sites")
    study = make_study(root / "study", registry, T1)
    return registry, sites, study


def _reply_system(
    sizes: dict[str, Any], replies: dict[str, Any], n: int
) -> tuple[LinearTable, set[Any], dict[Any, str]]:
    """A site's Table 1 replies as the linear system a reader of them knows."""
    values: dict[Any, int] = {("n",): n}
    hidden: set[Any] = set()
    labels: dict[Any, str] = {}
    t = LinearTable(values)

    def cell(key: Any, v: int) -> Any:
        t.add(key, max(int(v), 0))
        if v < 0:
            hidden.add(key)
            labels[key] = "withheld"
        return key

    groups = [cell(("size", str(lab)), v) for lab, v in zip(sizes["cells"], sizes["size"], strict=True)]
    t.relate(("n",), groups)
    for var, r in replies.items():
        for i, lab in enumerate(r["cells"]):
            if "levels" in r:
                row = [cell((var, str(lab), j), v) for j, v in enumerate(r["counts"][i])]
            elif bool(r["withheld"][i]):
                row = [cell((var, str(lab), "missing"), -1), cell((var, str(lab), "values"), -1)]
            else:
                row = [
                    cell((var, str(lab), "missing"), r["missing"][i]),
                    cell((var, str(lab), "values"), int(np.sum(r["counts"][i]))),
                ]
            t.relate(("size", str(lab)), row)
    return t, hidden, labels


def test_each_site_protects_its_replies_together(small_sites: tuple[Path, dict[str, Path], Path]) -> None:
    from toolkit.study.plan import plan_study

    _, sites, study = small_sites
    spec_json = plan_study(study).spec.model_dump(mode="json")
    kinds = [["sex", "cat"], ["diabetes", "cat"], ["copd", "cat"], ["age", "num"], ["lvef", "num"]]
    table = {"by": "age_band", "variables": kinds, "dtypes": {}}
    ops: dict[str, Any] = {"_sizes": {"op": "t1_sizes", "by": "age_band", "table": table}}
    for v, kind in table["variables"]:
        ops[v] = {
            "op": "cat_counts" if kind == "cat" else "value_hist",
            "column": v,
            "by": "age_band",
            "table": table,
        }
    withheld = 0
    for name, path in sites.items():
        node = SiteNode(path, name=name, limits=SiteLimits(allow_exact=True))
        hello = node.handle({"study": spec_json, "options": {"exact": True}, "ops": {"h": {"op": "hello"}}})
        n = int(hello["ops"]["h"]["n"])
        got = node.handle({"study": spec_json, "options": {"exact": True}, "ops": ops})["ops"]
        assert not any("error" in r or "refused" in r for r in got.values()), got
        t, hidden, _ = _reply_system(got["_sizes"], {v: got[v] for v, _ in table["variables"]}, n)
        small = [v for k, v in t.values.items() if 1 <= v < K and k not in hidden]
        assert small == []
        assert exposures(t, hidden, min_cell=K) == []
        # a reply marks every withheld cell alike (-1): the reader knows only that it is withheld
        assert labelled_exposures(t, hidden, min_cell=K, labels=dict.fromkeys(hidden)) == []
        withheld += len(hidden)
    assert withheld > 0  # the sites really have small cells


def test_the_merged_table_follows_the_pooled_rules(
    small_sites: tuple[Path, dict[str, Path], Path], tmp_path: Path
) -> None:
    from toolkit.study.runner import run_study

    registry, sites, study = small_sites
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pooled = run_study(
            study, out=tmp_path / "pooled", registry=registry, use_cache=False
        ).results.to_json()
        nodes = [SiteNode(p, name=s, limits=SiteLimits(allow_exact=True)) for s, p in sites.items()]
        fed = run_federated(
            study, InProcessTransport(nodes), out=tmp_path / "fed", options=RunOptions(exact=True)
        )
    f = json.loads((tmp_path / "fed" / "results.json").read_text())
    assert list(derive_results(f, min_cell=K)) == []
    p_t1, f_t1 = pooled["analyses"]["t1"], f["analyses"]["t1"]
    assert f_t1["groups"] == p_t1["groups"] and [r["label"] for r in f_t1["rows"]] == [
        r["label"] for r in p_t1["rows"]
    ]
    assert f_t1["disclosure_note"]  # the sites' small cells are withheld, and the table says why
    both = differ = 0
    for pr, fr in zip(p_t1["rows"], f_t1["rows"], strict=True):
        for key in ("counts", "missing"):
            for g, v in (fr.get(key) or {}).items():
                if v is not None and pr[key][g] is not None:
                    both += 1
                    differ += v != pr[key][g]
        for g, text in fr["cells"].items():
            assert text != "None"
            if g in (fr.get("suppressed") or {}):
                assert text in ("<10", "withheld")
    assert both > 20 and differ == 0
    assert fed.results.analyses["t1"] is not None
