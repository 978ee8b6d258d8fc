"""The monitor's operating characteristics on the synthetic generator (docs/monitoring.md).

Develops the test agent (tests/monitor/synthetic.py: 3,000 synthetic persons, 2014-2022, one Cox
model), then applies the monitor's decision rule to simulated months of service in 2025:

* false alarms: unshifted months; the share with any active alert;
* time to detection: six months whose shift grows from none to the documented ``--shift``
  (strength k/5 in month k); the first month with a drift alert and with a calibration alert.

    .venv/bin/python tests/_scripts/monitor_operating_characteristics.py --far-seeds 300 --ttd-seeds 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.monitor.synthetic import develop_agent
from tests.monitor.test_operating_characteristics import (
    CALLS,
    DRIFT_CHECKS,
    START,
    WINDOW,
    _first,
    _month,
    judged,
)
from toolkit.agents.load import Agent
from toolkit.monitor.report import CALIBRATION_CHECKS
from toolkit.registry.synth import heart_failure as hf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--far-seeds", type=int, default=300)
    ap.add_argument("--ttd-seeds", type=int, default=40)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        agent = Agent.load(develop_agent(Path(tmp)).bundle)
        which: Counter[str] = Counter()
        alarms = 0
        for seed in range(args.far_seeds):
            (w,) = judged(agent, [_month(agent, 5000 + seed, None)], start=START, window=WINDOW)
            hits = [f"{c.check}:{c.subject}" for c in w.checks if c.status == "alert"]
            alarms += bool(hits)
            which.update(hits)
        print(
            f"false alarms: {alarms} of {args.far_seeds} unshifted months of {CALLS} calls "
            f"({alarms / args.far_seeds:.1%}); alerting checks: {dict(which)}"
        )
        drift: Counter[int | None] = Counter()
        calib: Counter[int | None] = Counter()
        for seed in range(args.ttd_seeds):
            months = [_month(agent, 7000 + 10 * seed + k, hf.Shift(strength=k / 5)) for k in range(6)]
            windows = judged(agent, months, start=START, window=WINDOW)
            drift[_first(windows, DRIFT_CHECKS)] += 1
            calib[_first(windows, CALIBRATION_CHECKS)] += 1
        print("first alert, month k (shift strength k/5), over", args.ttd_seeds, "seeds:")
        print("  input/prediction drift:", dict(sorted(drift.items(), key=lambda kv: (kv[0] is None, kv[0]))))
        print("  calibration:           ", dict(sorted(calib.items(), key=lambda kv: (kv[0] is None, kv[0]))))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
