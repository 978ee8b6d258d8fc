"""``regent notes annotate`` (given targets or a lexicon) and ``regent notes evaluate-context``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.features.test_multimodal_cli import regent
from toolkit.errors import SpecError
from toolkit.features.context_eval import cross_validate, evaluate, read_context_annotations

# Real-style rows in the ConText evaluation format (written for this test, not copied from the set)
ROWS = [
    ("1", "", "chest pain", "Denies CHEST PAIN or palpitations.", "Negated", "Recent", "Patient"),
    ("3", "", "atrial fibrillation", "History of ATRIAL FIBRILLATION.", "Affirmed", "Historical", "Patient"),
    ("5", "", "fever", "Return if FEVER develops.", "Affirmed", "Not particular", "Patient"),
    ("7", "", "colon cancer", "Mother had COLON CANCER.", "Affirmed", "Recent", "Family member"),
    ("9", "", "edema", "Trace EDEMA at the ankles.", "Affirmed", "Historical", "Patient"),  # a miss
    ("11", "", "dyspnea", "No DYSPNEA on exertion.", "Affirmed", "Recent", "Patient"),  # a false negation
    (
        "13",
        "",
        "rash",
        "Itching without any sign.",
        "Affirmed",
        "Recent",
        "Patient",
    ),  # absent from the sentence
]


def _write(path: Path, rows: list[tuple[str, ...]]) -> Path:
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_evaluate_context_counts_each_attribute(tmp_path: Path) -> None:
    path = _write(tmp_path / "ctx.tsv", ROWS)
    s = evaluate(read_context_annotations(path))
    assert (s.rows, s.scored, s.absent, s.not_found) == (7, 6, 1, 0)
    by = s.by_name()
    assert (by["negated"].tp, by["negated"].fp, by["negated"].fn) == (1, 1, 0)
    assert (by["historical"].tp, by["historical"].fp, by["historical"].fn) == (1, 0, 1)
    assert (by["hypothetical"].tp, by["family"].tp) == (1, 1)
    assert by["historical"].f1 == pytest.approx(2 / 3)
    cv, caps = cross_validate(read_context_annotations(path), k=2)
    assert cv.scored == 6 and len(caps) == 2
    r = regent("notes", "evaluate-context", "--annotations", str(path), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["absent"] == 1 and report["attributes"][0]["attribute"] == "negated"
    assert "DYSPNEA" not in r.stdout and "Denies" not in r.stdout  # scores only, never text


def test_bad_context_files_are_named(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.tsv", [ROWS[0][:6]])
    with pytest.raises(SpecError, match=r"bad.tsv: line 1: expected 7 tab-separated fields; got 6"):
        read_context_annotations(bad)
    typo = _write(tmp_path / "typo.tsv", [(*ROWS[0][:4], "Negative", "Recent", "Patient")])
    with pytest.raises(
        SpecError, match=r"typo.tsv: line 1: negation: expected one of \['affirmed', 'negated'\]"
    ):
        read_context_annotations(typo)


def test_annotate_given_targets_and_lexicon(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "text": "PMH: No history of AF.\nNECK: SUPPLE.", "targets": [{"start": 19, "end": 21},
                                                                            {"start": 29, "end": 35}]},
        {"id": "b", "text": "Return if chest pain recurs. Mother had an MI."},
    ]  # fmt: skip
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = regent("notes", "annotate", str(src), "--out", str(tmp_path / "out.jsonl"), "--lexicon", "cardiology")
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(g["id"], g["text"], g["concept"]) for g in got] == [
        ("a", "AF", None),
        ("a", "SUPPLE", None),
        ("b", "chest pain", "chest_pain"),
        ("b", "MI", "myocardial_infarction"),
    ]
    assert (got[0]["negated"], got[0]["historical"], got[0]["section"]) == (True, True, "pmh")
    assert got[2]["hypothetical"] and got[3]["experiencer"] == "family"
    assert set(got[0]) == {"id", "start", "end", "text", "concept", "negated", "historical", "hypothetical",
                           "uncertain", "experiencer", "section"}  # fmt: skip
    src.write_text(
        json.dumps({"id": "c", "text": "secret words", "targets": [{"start": 3, "end": 40}]}) + "\n"
    )
    r = regent("notes", "annotate", str(src), "--out", str(tmp_path / "o2.jsonl"))
    assert r.returncode == 2 and "line 1: targets[0]: expected 0 <= start < end <= 12" in r.stderr
    assert "secret" not in r.stderr
    src.write_text(json.dumps({"id": "d", "text": "no targets here"}) + "\n")
    r = regent("notes", "annotate", str(src), "--out", str(tmp_path / "o3.jsonl"))
    assert r.returncode == 2 and "no 'targets' and no --lexicon" in r.stderr
