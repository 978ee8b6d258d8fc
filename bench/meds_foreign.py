"""Write a MEDS dataset with another tool (meds-testing-helpers' generator), for bench/cohort.py --meds.

    python bench/meds_foreign.py --subjects 100000 --out /tmp/regent-bench/foreign-100k
    python bench/cohort.py --meds /tmp/regent-bench/foreign-100k

Regent only sets the generator's parameters; the rows, codes (``dynamic//17``, ``static//2``,
``MEDS_BIRTH``, ``MEDS_DEATH``), shards (``data/train/0.parquet`` ...) and metadata are written by
meds-testing-helpers (PyPI), the MEDS project's own test-data tool.  About 30 events of about four
measurements per subject (~126 rows), births for everyone, deaths for 30 % of subjects, 10 to 400
days after their data end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    from meds_testing_helpers.dataset_generator import MEDSDataDFGenerator, MEDSDatasetGenerator
    from meds_testing_helpers.rvs import (
        DatetimeGenerator,
        PositiveIntGenerator,
        PositiveTimeDeltaGenerator,
        ProportionGenerator,
    )

    days = [np.timedelta64(d, "D") for d in (1, 3, 7, 14, 30, 60)]
    data = MEDSDataDFGenerator(
        birth_datetime_per_subject=DatetimeGenerator(
            [np.datetime64(f"{y}-01-01", "us") for y in range(1930, 2000, 5)]
        ),
        start_data_datetime_per_subject=DatetimeGenerator(
            [np.datetime64(f"{y}-06-01", "us") for y in range(2008, 2016)]
        ),
        time_between_birth_and_data_per_subject=PositiveTimeDeltaGenerator(
            [np.timedelta64(y * 365, "D") for y in range(20, 80, 5)]
        ),
        time_between_data_and_death_per_subject=PositiveTimeDeltaGenerator(
            [np.timedelta64(d, "D") for d in (10, 60, 150, 300, 400, 800)]
        ),
        time_between_data_events_per_subject=PositiveTimeDeltaGenerator(days),
        num_events_per_subject=PositiveIntGenerator([10, 20, 30, 40, 50]),
        num_measurements_per_event=PositiveIntGenerator([2, 3, 4, 5, 6]),
        num_static_measurements_per_subject=PositiveIntGenerator([2]),
        frac_dynamic_code_occurrences_with_value=ProportionGenerator([0.0, 0.5, 1.0]),
        frac_static_code_occurrences_with_value=ProportionGenerator([0.0]),
        static_vocab_size=6,
        dynamic_vocab_size=200,
        frac_subjects_with_death=0.3,
        frac_subjects_with_birth=1.0,
    )
    t0 = time.perf_counter()
    dataset = MEDSDatasetGenerator(
        data_generator=data, shard_size=max(1, min(25_000, args.subjects // 10)), dataset_name="foreign"
    ).sample(args.subjects, np.random.default_rng(args.seed))
    dataset.write(args.out)
    print(f"wrote {args.out} ({args.subjects:,} subjects) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
