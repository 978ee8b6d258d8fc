"""Outcomes of served predictions, read from a hand-built registry and checked by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from tests.cohort.builders import make_registry
from toolkit.cohort import spec as C
from toolkit.monitor.calls import MonitorError, patient_pseudonym
from toolkit.monitor.outcomes import OutcomeDefinition, follow_up, read_link, registry_as_of
from toolkit.registry.store import Registry

DEATH = C.Outcome(
    name="death",
    codes=["DEATH"],
    censor=C.Censoring(events=C.CodeFilter(concept="transplant")),
    competing=[C.Competing(name="cv", codes=["OTHER"])],
    horizons=["365d"],
)
DEFINITION = OutcomeDefinition("hf", DEATH, {"transplant": ["SNOMED:32413006"]}, 365.0)


def _person(pid: int, start: str, end: str) -> dict:
    return {"person_id": pid, "birth_date": "1950-01-01", "sex": "F", "site_id": "S1", "obs": (start, end)}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    persons = [_person(i, "2020-01-01", end) for i, end in enumerate(
        ["2023-01-01", "2021-03-01", "2022-06-01", "2021-05-01", "2021-09-01", "2019-12-31"], start=1
    )]  # fmt: skip
    events = [
        (2, "2021-03-01", "DEATH"),  # dies 59 days after the call
        (3, "2021-02-01", "SNOMED:32413006"),  # transplant: censored after 31 days
        (3, "2021-04-01", "DEATH"),  # after the censoring: not counted
        (4, "2020-12-01", "DEATH"),  # before the call: a data mismatch
        (5, "2021-02-15", "OTHER"),  # a competing event first
        (5, "2021-03-15", "DEATH"),
    ]
    return make_registry(tmp_path_factory.mktemp("outcomes") / "r.duckdb", persons, events)


def test_follow_up_from_the_call_as_the_study_followed_its_cohort(registry: Path) -> None:
    origins = pd.DataFrame(
        {"person_id": [1, 2, 3, 4, 5, 6], "origin": [dt.datetime(2021, 1, 1, tzinfo=dt.UTC)] * 6}
    )
    with Registry(registry) as reg:
        fu = follow_up(reg, origins, DEFINITION, as_of=dt.datetime(2022, 1, 1, tzinfo=dt.UTC))
    assert list(fu["link"]) == ["ok", "ok", "ok", "outcome_before_call", "ok", "not_followed"]
    assert list(fu["event"][:3]) == [0, 1, 0] and fu["event"][4] == 2
    # person 1 is followed to the as-of date; 2 dies on day 59; 3 is censored at the transplant
    assert fu["time"][:3].tolist() == pytest.approx([365.0, 59.0, 31.0])
    assert fu["time"][4] == pytest.approx(45.0)


def test_the_as_of_date_is_the_registry_s_cutoff_or_its_last_observation(registry: Path) -> None:
    with Registry(registry) as reg:
        assert registry_as_of(reg) == dt.datetime(2023, 1, 1, tzinfo=dt.UTC)


def test_the_link_file_is_pseudonymised_and_its_errors_name_the_line_not_the_value(tmp_path: Path) -> None:
    key = b"k" * 32
    good = tmp_path / "link.csv"
    good.write_text("patient_id,person_id\nmrn-1,1\n\nmrn-2,2\n")
    assert read_link(good, key=key) == {
        patient_pseudonym("mrn-1", key): "1",
        patient_pseudonym("mrn-2", key): "2",
    }
    cases = {
        "id,person\nmrn-1,1\n": "line 1: expected the header",
        "patient_id,person_id\nmrn-1\n": "line 2: expected two non-empty fields",
        "patient_id,person_id\nmrn-secret,1\nmrn-secret,2\n": "line 3: this patient_id is linked to two",
        "patient_id,person_id\n": "the link file has no rows",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(MonitorError, match=message) as err:
            read_link(bad, key=key)
        assert "mrn-secret" not in str(err.value) and str(bad) in str(err.value)
    with pytest.raises(MonitorError, match="not readable"):
        read_link(tmp_path / "none.csv", key=None)
