"""Cost of the predictive evaluation: Harrell's C (numpy dominance count vs the Fenwick loop),
bootstrap intervals (all replicates vectorised vs a loop over resampled rows), and one full
``point_metrics`` call (what each optimism-bootstrap refit evaluates twice).

    python bench/predict_metrics.py --n 5000 --replicates 200

Prints seconds and ratios; every baseline runs in this script on the same data.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from toolkit.analysis.predict.assess import bootstrap_intervals, point_metrics
from toolkit.analysis.predict.concordance import harrell_c
from toolkit.analysis.survival.concordance import concordance_index


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.n
    x = rng.normal(size=n)
    t_event = rng.exponential(365 / (0.4 * np.exp(x)))
    t_cens = rng.uniform(100, 1500, n)
    time_, event = np.minimum(t_event, t_cens), (t_event <= t_cens).astype(int)
    risk = 1 - np.exp(-0.4 * np.exp(x + rng.normal(0, 0.5, n)))
    h = 365.0

    fen = _best(lambda: concordance_index(time_, event, risk))
    num = _best(lambda: harrell_c(time_, event, risk))
    print(f"Harrell's C, n={n}: Fenwick loop {fen:.3f} s, numpy {num:.4f} s  ({fen / num:.0f}x)")

    W = rng.multinomial(n, np.full(n, 1 / n), size=args.replicates).astype(float)
    vec = _best(lambda: harrell_c(time_, event, risk, W), repeat=1)
    print(
        f"Harrell's C, {args.replicates} bootstrap replicates: vectorised {vec:.3f} s; "
        f"a loop of the Fenwick version would take ~{fen * args.replicates:.1f} s "
        f"({fen * args.replicates / vec:.0f}x)"
    )
    allci = _best(lambda: bootstrap_intervals(time_, event, risk, h, replicates=args.replicates), repeat=1)
    print(f"all bootstrap intervals (10 metrics, {args.replicates} replicates): {allci:.2f} s")
    pm = _best(lambda: point_metrics(time_, event, risk, h))
    print(f"point_metrics (every metric once, incl. loess calibration): {pm:.3f} s")


if __name__ == "__main__":
    main()
