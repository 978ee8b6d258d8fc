"""The note de-identifier on hand-written nursing-style text: ALL CAPS notes, lower-case names,
names without titles, month/day dates, dates followed by punctuation, phone formats, and the
clinical words that must survive; surrogates consistent per person, shifts that keep intervals,
masks; scoring against gold spans; the shipped model on real PhysioNet records.

The notes below are written for these tests (names from no list the engine uses)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from toolkit.registry.deid.corpus import GoldSpan, Note, read_gold, read_notes
from toolkit.registry.deid.engine import NoteDeidentifier, SiteTerms
from toolkit.registry.deid.evaluate import score
from toolkit.registry.deid.notes import deidentify_notes
from toolkit.registry.deid.replace import shift_date_text
from toolkit.registry.deid.spans import Span

DATA = Path(__file__).resolve().parents[1] / "data" / "deid_physionet"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "deid_physionet"
KEY = b"\x07" * 32


@pytest.fixture(scope="module")
def engine() -> NoteDeidentifier:
    return NoteDeidentifier()


def _found(engine: NoteDeidentifier, text: str) -> list[str]:
    return [s.text for s in engine.find(text)]


def _covered(engine: NoteDeidentifier, text: str, value: str) -> bool:
    spans = engine.find(text)
    start = text.index(value)
    return all(
        any(s.start <= i < s.end for s in spans)
        for i in range(start, start + len(value))
        if text[i].isalnum()
    )


def _untouched(engine: NoteDeidentifier, text: str, value: str) -> bool:
    spans = engine.find(text)
    start = text.index(value)
    return not any(s.start < start + len(value) and start < s.end for s in spans)


ALL_CAPS = (
    "PT IS A 71 YO MAN ADMITTED 3/14 WITH CHF. SEEN BY DR HOLLINGSWORTH AND DR. KOWALCZYK. "
    "DAUGHTER BERNADETTE CALLED, WILL VISIT. PT DENIES PAIN. LASIX 40 MG IV GIVEN, UO 500CC. "
    "CC: SOB. NEURO: A&OX3, MAE. SAT 96% ON 2L NC."
)


def test_all_caps_note_loses_names_and_dates_and_keeps_clinical_words(engine: NoteDeidentifier) -> None:
    for secret in ("HOLLINGSWORTH", "KOWALCZYK", "BERNADETTE", "3/14"):
        assert _covered(engine, ALL_CAPS, secret), secret
    for kept in ("PT IS", "PT DENIES PAIN", "LASIX 40 MG IV", "500CC", "CC: SOB", "MAE", "SAT 96%", "2L NC"):
        assert _untouched(engine, ALL_CAPS, kept), kept


def test_lower_case_names_and_titles_in_any_case(engine: NoteDeidentifier) -> None:
    text = "pt seen by dr hollingsworth this am. mr. pendergast aware. spoke with wife rosalind re: plan."
    for secret in ("hollingsworth", "pendergast", "rosalind"):
        assert _covered(engine, text, secret), secret
    assert _untouched(engine, text, "pt seen by")


def test_names_without_titles(engine: NoteDeidentifier) -> None:
    text = "Plan discussed with team. Spoke with Kowalczyk re: goals of care.\n\nBernadette Quigley, RN\n"
    for secret in ("Kowalczyk", "Bernadette", "Quigley"):
        assert _covered(engine, text, secret), secret
    assert _untouched(engine, text, "Plan discussed with team")


def test_month_day_dates_are_found_and_ratios_are_not(engine: NoteDeidentifier) -> None:
    text = (
        "Admitted 7/22 from OSH, LBM 11/4, cath on 10/15. On PSV 10/5, 40%. D5 1/2 NS at 75. "
        "BP 88/46. c/o CP 5/10. Shift 1900-0700, abg sent @ 2000. K 3.8, INR 7.40."
    )
    for date in ("7/22", "11/4", "10/15"):
        assert _covered(engine, text, date), date
    for kept in ("PSV 10/5", "1/2 NS", "BP 88/46", "CP 5/10", "1900-0700", "@ 2000", "K 3.8", "INR 7.40"):
        assert _untouched(engine, text, kept), kept


def test_dates_followed_by_punctuation(engine: NoteDeidentifier) -> None:
    text = (
        "MI x2 (2/21, 4/21). Admitted 8/20/02. Seen 03/04/2021; CABG '92, MI 1992. Last seen March 3rd, 2021."
    )
    for date in ("2/21", "4/21", "8/20/02", "03/04/2021", "92", "1992", "March 3rd, 2021"):
        assert _covered(engine, text, date), date


@pytest.mark.parametrize(
    "phone",
    ["410-322-1419", "(301) 555-0199", "301 944-5032", "301.555.0123", "+44 20 7946 0958"],
)
def test_phone_formats(engine: NoteDeidentifier, phone: str) -> None:
    text = f"Daughter's cell {phone}, call after 5."
    assert _covered(engine, text, phone)


def test_pager_numbers_after_a_cue(engine: NoteDeidentifier) -> None:
    text = "Pager #54321. Beeper number 55037 for consents."
    assert _covered(engine, text, "54321") and _covered(engine, text, "55037")


def test_site_terms_are_always_removed(engine: NoteDeidentifier) -> None:
    terms = SiteTerms.from_lines(["LOCATION\tnorthgate", "# comment", "pembury"])
    site = NoteDeidentifier(engine.model, site_terms=terms)
    spans = site.find("TRANSFERRED TO NORTHGATE4 FROM THE ED. PEMBURY AWARE.")
    assert {s.text for s in spans} >= {"NORTHGATE4", "PEMBURY"}  # a ward number glued on goes too
    assert {s.kind for s in spans if s.text == "PEMBURY"} == {"NAME"}


def test_surrogates_are_consistent_per_person_and_keep_intervals(engine: NoteDeidentifier) -> None:
    notes = [
        Note("a", "Seen by Dr. Hollingsworth on 7/22. Daughter Bernadette called.", "p1"),
        Note("b", "dr hollingsworth aware. Next visit 7/25.", "p1"),
        Note("c", "Seen by Dr. Hollingsworth on 7/22.", "p2"),
    ]
    out = {c.note_id: c for c in deidentify_notes(notes, mode="surrogate", key=KEY, engine=engine)}
    for c in out.values():
        assert "ollingsworth" not in c.text.lower() and "Bernadette" not in c.text
    fake_a = re.search(r"Dr\. (\w+)", out["a"].text)
    fake_b = re.search(r"dr (\w+) aware", out["b"].text)
    assert fake_a and fake_b and fake_a.group(1).lower() == fake_b.group(1)  # same name, case kept
    assert fake_b.group(1).islower()
    d1 = re.search(r"on (\d+/\d+)\.", out["a"].text)
    d2 = re.search(r"visit (\d+/\d+)\.", out["b"].text)
    assert d1 and d2
    import datetime as dt

    def day(s: str) -> dt.date:
        m, d = s.split("/")
        return dt.date(2000, int(m), int(d))

    assert (day(d2.group(1)) - day(d1.group(1))).days == 3  # the interval survives
    assert d1.group(1) != "7/22"
    other = re.search(r"Dr\. (\w+)", out["c"].text)
    assert other is not None  # another person: keyed separately (may differ)
    assert out["a"].spans and all(notes[0].text[s.start : s.end] == s.text for s in out["a"].spans)


def test_mask_mode_types_and_readability(engine: NoteDeidentifier) -> None:
    text = "Seen by Dr. Hollingsworth on 7/22. Cell 410-322-1419. PT DENIES PAIN."
    (clean,) = deidentify_notes([Note("x", text)], mode="mask", engine=engine)
    assert clean.text == "Seen by Dr. [NAME] on [DATE]. Cell [PHONE]. PT DENIES PAIN."


def test_shifted_dates_keep_their_format() -> None:
    assert shift_date_text("7/22", 10) == "8/1"
    assert shift_date_text("8/20/02", 12) == "9/1/02"
    assert shift_date_text("10-15-2019", -15) == "9-30-2019"
    assert shift_date_text("2021-03-02", 1) == "2021-03-03"
    assert shift_date_text("July 29th", 3) == "August 1st"
    assert shift_date_text("MARCH OF 1993", 31) == "APRIL OF 1993"
    assert shift_date_text("03.04.2021", 1) == "04.04.2021"  # day.month.year
    assert shift_date_text("the 11th", 3) is None  # no month: masked instead


def test_scoring_counts_caught_partial_missed_precision_and_altered_words() -> None:
    text = "Dr Ann Lee saw pt on 7/22 at GH today"
    notes = [Note("n", text)]
    gold = [
        GoldSpan("n", 3, 6, "HCPName"),  # Ann
        GoldSpan("n", 7, 10, "HCPName"),  # Lee
        GoldSpan("n", 21, 25, "Date"),  # 7/22
        GoldSpan("n", 29, 31, "Location"),  # GH
    ]
    found = {
        "n": [
            Span(3, 10, "NAME", "Ann Lee"),  # both names, one span
            Span(21, 23, "DATE", "7/"),  # partial
            Span(14, 16, "NAME", "pt"),  # a false find
        ]
    }
    ev = score(notes, gold, found)
    assert ev.categories["HCPName"].caught == 2 and ev.categories["Date"].partial == 1
    assert ev.categories["Location"].caught == 0 and ev.recall == 0.5
    assert ev.precision == pytest.approx(2 / 3)
    # words outside gold: Dr saw pt on at today -> 6, one altered (pt)
    assert (ev.other_words, ev.other_words_altered) == (6, 1)


def test_physionet_records_are_read_with_gold_offsets() -> None:
    notes = read_notes(DATA / "sample.text")
    gold = read_gold(DATA / "sample.phrase")
    by = {n.note_id: n for n in notes}
    assert len(notes) >= 3 and gold
    for g, line in zip(gold, (DATA / "sample.phrase").read_text().splitlines(), strict=True):
        assert by[g.note_id].text[g.start : g.end] == line.split(maxsplit=5)[5]


def test_shipped_model_on_real_development_notes() -> None:
    """A regression guard on the first 60 persons of the development half (the shipped model
    was fitted on them, so this is not the held-out figure: see docs/privacy.md)."""
    if not (SHARED / "dev_notes.text").is_file():
        pytest.skip("the PhysioNet development half is not in ../shared/data/deid_physionet")
    from toolkit.registry.deid.evaluate import find_by_person

    notes = read_notes(SHARED / "dev_notes.text")
    persons = sorted({n.person_id for n in notes if n.person_id}, key=int)[:15]
    notes = [n for n in notes if n.person_id in persons]
    ids = {n.note_id for n in notes}
    gold = [g for g in read_gold(SHARED / "dev_phi.phrase") if g.note_id in ids]
    ev = score(notes, gold, find_by_person(NoteDeidentifier(), notes))
    assert len(gold) > 100
    assert ev.recall >= 0.9 and ev.precision >= 0.6 and ev.altered < 0.02


def test_cli_deidentify_writes_notes_and_spans_in_input_offsets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from toolkit.cli.main import app

    src = tmp_path / "notes.jsonl"
    rows = [
        {"note_id": "1", "text": "SEEN BY DR HOLLINGSWORTH 7/22. PT DENIES PAIN.", "person_id": "p"},
        {"note_id": "2", "text": "dr hollingsworth aware.", "person_id": "p"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(
        app,
        [
            "notes",
            "deidentify",
            str(src),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--spans",
            str(tmp_path / "s.jsonl"),
            "--key-file",
            str(tmp_path / "k.hex"),
        ],
    )
    assert res.exit_code == 0, res.output
    out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    spans = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [o["note_id"] for o in out] == ["1", "2"] and set(out[0]) == {"note_id", "text"}
    assert "HOLLINGSWORTH" not in out[0]["text"] and "PT DENIES PAIN." in out[0]["text"]
    texts = {r["note_id"]: r["text"] for r in rows}
    found = {texts[s["note_id"]][s["start"] : s["end"]] for s in spans}
    assert found >= {"DR HOLLINGSWORTH", "7/22", "dr hollingsworth"}  # a name's span takes in its title


def test_cli_errors_name_the_file_and_line_and_never_echo_text(tmp_path: Path) -> None:
    import subprocess
    import sys

    def regent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "toolkit.cli.main", *args], capture_output=True, text=True, timeout=120
        )

    src = tmp_path / "bad.jsonl"
    src.write_text('{"note_id": "1", "text": "Mr Hollingsworth"}\n{"note_id": "2", "txt": "Mr Pendergast"}\n')
    res = regent("notes", "deidentify", str(src), "--out", str(tmp_path / "o"), "--mode", "mask")
    assert res.returncode == 2
    assert "bad.jsonl:2" in res.stderr and "txt" in res.stderr
    assert "Hollingsworth" not in res.stderr + res.stdout and "Pendergast" not in res.stderr + res.stdout
    res = regent("notes", "deidentify", str(src), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "--key-file" in res.stderr
    assert not (tmp_path / "o").exists()
