"""De-identification: planted identifiers in synthetic notes and DICOM headers are found (recall
>= 0.98; precision reported), ids are keyed pseudonyms or surrogates with a separate link table,
dates move by a per-person shift that keeps intervals, ages over 89 are top-coded, geography is
coarsened, and the k-anonymity / l-diversity report is right on a hand-made registry."""

from __future__ import annotations

import datetime as dt
import stat
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.errors import DeidentificationError
from toolkit.registry.deid import DeidConfig, deidentify_registry, find_identifiers, scrub_text
from toolkit.registry.deid.keys import date_shift_days, load_or_create_key, pseudonym
from toolkit.registry.store import Attribute, Registry, RegistryData, write_registry


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    return synthesize(tmp_path_factory.mktemp("deid") / "hf.duckdb", SynthConfig(160, 3, 17))


@pytest.fixture(scope="module")
def deidentified(planted: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("deid-out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the synthetic files' own long values
        deidentify_registry(planted, root / "deid.duckdb", key_file=root / "key.hex")
    return root / "deid.duckdb", root / "key.hex"


def _phi(registry: Path) -> pd.DataFrame:
    return pd.read_parquet(registry.with_name(registry.stem + ".phi.parquet"))


def test_planted_note_identifiers_are_found_with_recall_at_least_98_percent(planted: Path) -> None:
    phi = _phi(planted)
    phi = phi[phi["source"] == "note"]
    with Registry(planted) as reg:
        notes = reg.sql("SELECT note_id, text FROM notes").set_index("note_id")["text"]
    spans = {nid: find_identifiers(str(notes[nid])) for nid in phi["note_id"].unique()}
    hit = [any(s.start <= r.start and s.end >= r.end for s in spans[r.note_id]) for r in phi.itertuples()]
    recall = float(np.mean(hit))
    found = [(nid, s) for nid, ss in spans.items() for s in ss]
    by_note = phi.groupby("note_id")
    true_pos = sum(
        any(s.start < r.end and r.start < s.end for r in by_note.get_group(nid).itertuples())
        for nid, s in found
    )
    precision = true_pos / len(found)
    print(f"note identifiers: recall {recall:.4f} over {len(phi)} planted, precision {precision:.4f}")
    assert len(phi) > 500 and set(phi["type"]) >= {"NAME", "MRN", "PHONE", "DATE", "ADDRESS", "EMAIL"}
    assert recall >= 0.98
    assert precision >= 0.9


def test_deidentified_notes_and_dicom_headers_no_longer_hold_planted_values(
    deidentified: tuple[Path, Path], planted: Path
) -> None:
    import pydicom

    out, key_file = deidentified
    key = load_or_create_key(key_file)
    phi = _phi(planted)
    with Registry(out) as reg:
        notes = reg.sql("SELECT note_id, text FROM notes").set_index("note_id")["text"]
        images = reg.sql("SELECT image_id, uri FROM images").set_index("image_id")["uri"]
    literal = phi[(phi["source"] == "note") & (phi["type"] != "DATE")]
    gone = [str(r.value) not in str(notes[r.note_id]) for r in literal.itertuples()]
    assert np.mean(gone) >= 0.98, f"note identifiers still present: {1 - np.mean(gone):.3%}"
    img = phi[phi["source"] == "image"]
    removed = []
    for r in img.itertuples():
        uri = images.get(r.image_id)
        if uri is None:
            removed.append(True)  # a missing or unreadable file is dropped, never copied
            continue
        ds = pydicom.dcmread(out.parent / uri)
        text = " ".join(str(el.value) for el in ds.iterall() if el.VR not in ("OB", "OW", "SQ"))
        removed.append(str(r.value) not in text)
    assert len(img) > 100 and np.mean(removed) >= 0.98
    ds = pydicom.dcmread(out.parent / images.dropna().iloc[0])
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName).startswith("ANON^")
    del key


def test_pseudonyms_shifts_intervals_and_top_coding(deidentified: tuple[Path, Path], planted: Path) -> None:
    out, key_file = deidentified
    key = load_or_create_key(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with Registry(planted) as a, Registry(out) as b:
        src_p, dst_p = a.sql("SELECT * FROM person"), b.sql("SELECT * FROM person")
        src_e = a.sql("SELECT person_id, time FROM events ORDER BY person_id, time")
        dst_e = b.sql("SELECT person_id, time FROM events")
        dst_obs = b.sql("SELECT person_id, max(end_time) AS last FROM observation_period GROUP BY person_id")
    assert not set(src_p["person_id"]) & set(dst_p["person_id"])
    mapping = {int(i): pseudonym(key, int(i)) for i in src_p["person_id"]}
    assert set(mapping.values()) == set(dst_p["person_id"])
    for pid in src_p["person_id"].head(20):
        shift = pd.Timedelta(days=date_shift_days(key, int(pid)))
        assert shift != pd.Timedelta(0)
        before = src_e.loc[src_e["person_id"] == pid, "time"].sort_values().reset_index(drop=True)
        after = (
            dst_e.loc[dst_e["person_id"] == mapping[int(pid)], "time"].sort_values().reset_index(drop=True)
        )
        pd.testing.assert_series_equal(after, before + shift, check_names=False, check_dtype=False)
    age = (
        pd.to_datetime(dst_obs.set_index("person_id")["last"])
        - pd.to_datetime(dst_p.set_index("person_id")["birth_date"])
    ).dt.days / 365.25
    assert age.max() <= 90.01
    src_age = pd.to_datetime(src_p["birth_date"]).dt.year.min()
    assert src_age < 1935  # the source has persons over 89 to top-code


def test_geography_direct_identifiers_and_anonymity_report_on_a_hand_made_registry(tmp_path: Path) -> None:
    person = pd.DataFrame(
        {
            "person_id": [1, 2, 3, 4, 5, 6],
            "birth_date": [dt.date(1950, 1, 1)] * 3 + [dt.date(1960, 6, 1)] * 3,
            "sex": ["F", "F", "F", "M", "M", "F"],
            "site_id": ["A"] * 6,
            "postcode": ["SW1A 1AA", "SW1A 2BB", "SW1B 3CC", "E1 6AN", "E1 7AA", "E2 0AA"],
            "name": ["x"] * 6,
            "diagnosis": ["a", "b", "a", "a", "a", "c"],
        }
    )
    obs = pd.DataFrame(
        {
            "person_id": person["person_id"],
            "start_time": pd.Timestamp("2020-01-01"),
            "end_time": pd.Timestamp("2021-01-01"),
        }
    )
    events = pd.DataFrame({"person_id": [1], "time": [pd.Timestamp("2020-05-01")], "code": ["ICD10:I50.9"]})
    attrs = (
        Attribute("postcode", "string"),
        Attribute("name", "string"),
        Attribute("diagnosis", "category", ("a", "b", "c")),
    )
    write_registry(tmp_path / "src.duckdb", RegistryData(person, obs, events, attributes=attrs))
    cfg = DeidConfig.model_validate(
        {
            "geography": {"postcode": 3},
            "drop": ["name"],
            "quasi_identifiers": ["sex", "postcode"],
            "sensitive": ["diagnosis"],
            "k": 2,
            "l": 2,
            "ids": "surrogate",
        }
    )
    report = deidentify_registry(
        tmp_path / "src.duckdb",
        tmp_path / "out" / "d.duckdb",
        key_file=tmp_path / "k.hex",
        config=cfg,
        link_table=tmp_path / "secure" / "link.parquet",
    )
    with Registry(tmp_path / "out" / "d.duckdb") as reg:
        p = reg.sql("SELECT * FROM person")
    assert "name" not in p.columns and sorted(p["postcode"]) == ["E1", "E1", "E2", "SW1", "SW1", "SW1"]
    # classes: (F,SW1) x3, (M,E1) x2, (F,E2) x1 -> smallest 1, one class below k=2
    assert report.k_anonymity == {
        "quasi_identifiers": ["sex", "postcode"],
        "target_k": 2,
        "k": 1,
        "classes": 3,
        "classes_below_k": 1,
        "persons_below_k": 1,
    }
    # diagnosis per class: {a,b}, {a}, {c} -> l = 1, two classes below l=2
    assert report.l_diversity["diagnosis"] == {"target_l": 2, "l": 1, "classes_below_l": 2}
    link = pd.read_parquet(tmp_path / "secure" / "link.parquet")
    assert sorted(link["person_id"]) == [1, 2, 3, 4, 5, 6] and set(link["surrogate_id"]) == set(
        p["person_id"]
    )
    assert not list((tmp_path / "out").glob("*link*"))


def test_bad_settings_fail_naming_the_key_and_write_nothing(planted: Path, tmp_path: Path) -> None:
    with pytest.raises(DeidentificationError, match="geography/drop: person has no attribute 'postcode'"):
        deidentify_registry(
            planted,
            tmp_path / "o.duckdb",
            key_file=tmp_path / "k",
            config=DeidConfig.model_validate({"geography": {"postcode": 3}}),
        )
    with pytest.raises(DeidentificationError, match="surrogate ids need --link-table"):
        deidentify_registry(
            planted,
            tmp_path / "o.duckdb",
            key_file=tmp_path / "k",
            config=DeidConfig.model_validate({"ids": "surrogate"}),
        )
    (tmp_path / "bad.hex").write_text("not hex")
    with pytest.raises(DeidentificationError, match="not a key file"):
        deidentify_registry(planted, tmp_path / "o.duckdb", key_file=tmp_path / "bad.hex")
    assert not (tmp_path / "o.duckdb").exists()


def test_scrubber_on_hand_written_text() -> None:
    text = (
        "Seen by Dr. Anna-Lena Ødegaard on 03/04/2021. Pt: Mrs. Renée O'Brien, MRN A1234567, "
        "tel +44 20 7946 0958, mail r.obrien@example.org, lives at 12 Baker Street, London NW1 6XE. "
        "Admitted St. Mary's Hospital 2 March 2021. LVEF 35%, NT-proBNP 2400 pg/mL, 3 pillows."
    )
    clean, spans = scrub_text(text, shift_days=10)
    for secret in ("Ødegaard", "O'Brien", "A1234567", "7946", "r.obrien", "Baker Street", "St. Mary"):
        assert secret not in clean, secret
    assert "12 March 2021" in clean  # 2 March 2021 shifted by 10 days, in its own format
    for kept in ("LVEF 35%", "NT-proBNP 2400 pg/mL", "3 pillows"):
        assert kept in clean, kept
    assert {s.kind for s in spans} >= {"NAME", "MRN", "PHONE", "EMAIL", "ADDRESS", "DATE", "INSTITUTION"}
