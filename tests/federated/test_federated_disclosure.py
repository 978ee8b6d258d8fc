"""In binned mode (the default) no federated reply carries a count between 1 and k-1.

Every reply of every site in every round is captured and checked field by field: event and value
counts per bin, Table 1 sizes and level counts, missing counts, sample sizes, attrition and
data-quality counts are 0, at least k, or suppressed (-1 / null).  Censorings per bin are the one
documented exception (docs/privacy.md) and are checked to exist, not to be large.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolkit.federated import InProcessTransport, SiteLimits, SiteNode, run_federated
from toolkit.federated.wire import decode

K = 10


class Recording:
    def __init__(self, node: SiteNode) -> None:
        self.node, self.name, self.replies = node, node.name, []  # type: ignore[var-annotated]

    def handle_bytes(self, payload: bytes) -> bytes:
        out = self.node.handle_bytes(payload)
        self.replies.append((decode(payload)["ops"], decode(out)["ops"]))
        return out


def _ok(values: Any) -> bool:
    a = np.asarray(values, float)
    return bool(np.all((a == -1) | (a == 0) | (a >= K)))


def test_binned_replies_hold_no_small_counts(
    fed_study: Path, site_registries: dict[str, Path], tmp_path: Path
) -> None:
    nodes = [Recording(SiteNode(p, name=s, limits=SiteLimits())) for s, p in site_registries.items()]
    run_federated(fed_study, InProcessTransport(nodes), out=tmp_path / "out")  # type: ignore[arg-type]
    checked: dict[str, int] = {}
    for node in nodes:
        for ops, answers in node.replies:
            for key, answer in answers.items():
                op = ops[key]["op"]
                checked[op] = checked.get(op, 0) + 1
                if op == "hello":
                    assert answer["n"] >= K and answer["events"] >= K
                    for row in answer["attrition"]:
                        assert all(
                            row[c] is None or row[c] == 0 or row[c] >= K for c in ("n", "removed", "events")
                        )
                    assert _ok([q["count"] for q in answer["data_quality"]] or [0])
                elif op == "surv_hist":
                    codes = answer["codes"]
                    events = answer["counts"][:, codes >= 1, :]
                    assert _ok(events), f"{node.name}: an event count between 1 and {K - 1}"
                    assert answer["counts"][:, codes == 0, :].sum() > 0  # censorings are released
                elif op == "value_hist":
                    assert _ok(answer["counts"]) and _ok(answer["missing"])
                elif op in ("cat_counts", "t1_sizes"):
                    assert _ok(answer.get("counts", answer.get("size")))
                elif op in ("cox_summary", "logistic_summary"):
                    assert answer["n"] >= K and answer["events"] >= K and _ok([answer["dropped"]])
                elif op == "cox_stats":
                    for s in answer["strata"]:
                        assert _ok(s["d"])
    assert {
        "hello",
        "surv_hist",
        "value_hist",
        "cat_counts",
        "t1_sizes",
        "cox_stats",
        "logistic_stats",
    } <= set(checked)
