"""The ConText-style assertion algorithm on hand-written sentences (not the generator's templates)."""

from __future__ import annotations

import pytest

from toolkit.features.context import sections, sentences
from toolkit.features.notes import extract, load_lexicon

LEX = load_lexicon("cardiology")


def assertions(text: str) -> list[tuple[str, str]]:
    return [(m.concept, m.assertion) for m in extract(text, LEX)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Patient denies orthopnea.", [("orthopnea", "negated")]),
        ("No fever, chest pain, palpitations or syncope.",
         [("chest_pain", "negated"), ("palpitations", "negated"), ("syncope", "negated")]),
        # a termination term ends the negation's scope
        ("Denies chest pain but endorses palpitations.", [("chest_pain", "negated"), ("palpitations", "present")]),
        ("No edema; reports dyspnea on exertion.", [("dyspnea", "present")]),
        # backward triggers
        ("Myocardial infarction was ruled out.", [("myocardial_infarction", "negated")]),
        ("Cardiogenic shock is suspected.", [("cardiogenic_shock", "possible")]),
        # uncertainty, history, family
        ("Findings concerning for pulmonary edema.", [("pulmonary_edema", "possible")]),
        ("Cannot rule out atrial fibrillation.", [("atrial_fibrillation", "possible")]),
        ("Remote history of CABG.", [("cabg", "historical")]),
        ("Heart failure admission 2019, cardiogenic shock resolved.", [("cardiogenic_shock", "historical")]),
        ("His sister had sudden cardiac death at 40.", [("cardiac_arrest", "family")]),
        ("Diabetes in his maternal uncle.", [("diabetes", "family")]),
        # priority: a negated historical mention is negated
        ("No prior myocardial infarction.", [("myocardial_infarction", "negated")]),
        # pseudo-triggers are not negations
        ("No change in his chronic kidney disease.", [("ckd", "present")]),
        # acronyms match in upper case only; words anywhere in case
        ("MI in 2015. Lives in Miami, mi casa.", [("myocardial_infarction", "present")]),
        ("SHORTNESS OF BREATH at rest.", [("dyspnea", "present")]),
        # the longest term wins: 'pulmonary edema' is not 'edema', 'sudden cardiac arrest' one mention
        ("Sudden cardiac arrest, then pulmonary edema.", [("cardiac_arrest", "present"), ("pulmonary_edema", "present")]),
        ("", []),
    ],
)  # fmt: skip
def test_assertion_of_each_mention(text: str, expected: list[tuple[str, str]]) -> None:
    assert assertions(text) == expected


def test_a_negation_does_not_cross_a_sentence_boundary() -> None:
    assert assertions("Denies chest pain. Orthopnea for two weeks.") == [
        ("chest_pain", "negated"),
        ("orthopnea", "present"),
    ]


def test_family_history_section_makes_mentions_about_family() -> None:
    text = "HPI:\nReports angina.\n\nFAMILY HISTORY:\nMI at 60 and diabetes.\nSOCIAL HISTORY:\nCOPD."
    assert assertions(text) == [
        ("chest_pain", "present"),
        ("myocardial_infarction", "family"),
        ("diabetes", "family"),
        ("copd", "present"),
    ]
    names = [s[0] for s in sections(text)]
    assert names == ["hpi", "family_history", "social_history"]


def test_sentences_do_not_split_after_abbreviations_or_decimals() -> None:
    text = "Seen by Dr. Holt at St. Aurelia. Lactate 5.1 mmol/L today! Next"
    got = [text[a:b].strip() for a, b in sentences(text, 0, len(text))]
    assert got == ["Seen by Dr. Holt at St. Aurelia.", "Lactate 5.1 mmol/L today!", "Next"]


def test_spans_point_at_the_matched_term() -> None:
    text = "HPI: Denies orthopnea."
    (m,) = extract(text, LEX)
    assert text[m.start : m.end] == "orthopnea" and m.section == "hpi"
