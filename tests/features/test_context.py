"""ConText attributes on hand-written, real-style sentences (not the generator's phrasings)."""

from __future__ import annotations

import re

import pytest

from toolkit.errors import SpecError
from toolkit.features.context import ContextRules
from toolkit.features.lexicon import load_lexicon
from toolkit.features.mentions import Target, annotate, extract
from toolkit.features.sections import sections, sentences
from toolkit.registry.synth.phrasings import PHRASINGS

LEX = load_lexicon("cardiology")


def labels(text: str) -> list[tuple[str | None, str]]:
    return [(m.concept, m.label()) for m in extract(text, LEX)]


def target(text: str) -> dict[str, object]:
    """The attributes of the CAPITALISED phrase in ``text`` (as the ConText set writes targets)."""
    runs = re.finditer(r"[A-Z][A-Z0-9 ,/'-]*[A-Z0-9]", text)
    *_, m = (m for m in runs if not text[m.end() :].startswith(":"))  # the last run that is no header
    (got,) = annotate(text, targets=[Target(m.start(), m.end())])
    return {"neg": got.negated, "hist": got.historical, "hyp": got.hypothetical, "exp": got.experiencer}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Patient denies orthopnea.", [("orthopnea", "negated")]),
        ("No fever, chest pain, palpitations or syncope.",
         [("chest_pain", "negated"), ("palpitations", "negated"), ("syncope", "negated")]),
        # a termination term ends the negation's scope
        ("Denies chest pain but endorses palpitations.", [("chest_pain", "negated"), ("palpitations", "present")]),
        ("No edema; reports dyspnea on exertion.", [("dyspnea", "present")]),
        ("Myocardial infarction was ruled out.", [("myocardial_infarction", "negated")]),
        ("Cardiogenic shock is suspected.", [("cardiogenic_shock", "uncertain")]),
        ("Cannot rule out atrial fibrillation.", [("atrial_fibrillation", "uncertain")]),
        ("Remote history of CABG.", [("cabg", "historical")]),
        ("His sister had sudden cardiac death at 40.", [("cardiac_arrest", "family")]),
        ("Diabetes in his maternal uncle.", [("diabetes", "family")]),
        # independent attributes: negated *and* historical
        ("No prior myocardial infarction.", [("myocardial_infarction", "negated_historical")]),
        ("No change in his chronic kidney disease.", [("ckd", "present")]),
        ("MI in 2015. Lives in Miami, mi casa.", [("myocardial_infarction", "present")]),
        ("SHORTNESS OF BREATH at rest.", [("dyspnea", "present")]),
        ("Sudden cardiac arrest, then pulmonary edema.", [("cardiac_arrest", "present"), ("pulmonary_edema", "present")]),
        ("", []),
    ],
)  # fmt: skip
def test_attributes_of_each_mention(text: str, expected: list[tuple[str, str]]) -> None:
    assert labels(text) == expected


# --- the defects measured on the ConText set, each pinned by a real-style sentence ---------------
def test_hypothetical_triggers_if_return_if_should_in_case_of() -> None:
    assert target("Return to the Emergency Department if he develops NAUSEA or fevers.")["hyp"]
    assert target("She should call if she experiences any WORSENING PAIN.")["hyp"]
    assert target("In case of CHEST PAIN take one tablet under the tongue.")["hyp"]
    assert not target("She was ALERT and oriented times three.")[
        "hyp"
    ]  # "alert" is not "alert the physician"


def test_history_sections_default_to_historical_and_explicit_terms_end_it() -> None:
    assert target("PAST MEDICAL HISTORY: Hypertension, ATRIAL FIBRILLATION, GERD.")["hist"]
    assert target("SOCIAL HISTORY: Denies any tobacco, ALCOHOL or drug abuse.") == {
        "neg": True, "hist": True, "hyp": False, "exp": "patient"
    }  # fmt: skip
    assert not target("PAST MEDICAL HISTORY: CAD, now presents with ACUTE DYSPNEA.")["hist"]


def test_history_scope_ends_at_presents() -> None:
    text = "A 60-year-old male with a past history of DIABETES who presents with CHEST PRESSURE."
    (first, second) = annotate(text, targets=[Target(42, 50), Target(69, 83)])
    assert text[42:50] == "DIABETES" and text[69:83] == "CHEST PRESSURE"
    assert first.historical and not second.historical


def test_a_day_history_of_is_recent() -> None:
    assert not target("He presents with a one-day history of CHEST PRESSURE radiating to the arm.")["hist"]
    assert not target("She reports a 3-day history of FEVER.")["hist"]
    assert target("She has a history of FEVER with each flare.")["hist"]


def test_backward_in_the_past_fires() -> None:
    assert target("He has had a previous diagnosis of ANXIETY in the past.")["hist"]
    assert target("HIATAL HERNIA in the past.")["hist"]


def test_triggers_match_across_repeated_spaces() -> None:
    assert target("The indication is family  history of COLON POLYPS.")["exp"] == "family"
    assert labels("No   history of  atrial  fibrillation.") == [("atrial_fibrillation", "negated_historical")]


def test_no_further_and_no_longer_negate_and_no_change_blocks_only_its_phrase() -> None:
    assert target("No further episodes of SYNCOPE since discharge.")["neg"]
    assert target("He no longer has PALPITATIONS.")["neg"]
    assert not target("No change in ELEVATION OF RIGHT HEMIDIAPHRAGM.")["neg"]
    assert target("In general, no change in vision, diplopia or CHANGE IN HEARING.")["neg"]


def test_a_mention_carries_several_attributes_and_the_cues_that_set_them() -> None:
    text = "PMH: No history of atrial fibrillation."
    (m,) = extract(text, LEX)
    assert (m.negated, m.historical, m.hypothetical, m.experiencer) == (True, True, False, "patient")
    cats = {(c.category, c.source) for c in m.context.cues}
    assert {("negated", "trigger"), ("historical", "trigger"), ("historical", "section")} <= cats
    neg = next(c for c in m.context.cues if c.category == "negated")
    assert text[neg.start : neg.end] == "No history of" and neg.scope_start <= m.start < neg.scope_end


def test_a_capitalised_finding_before_a_colon_is_not_a_header() -> None:
    text = "NECK: SUPPLE. LUNGS: clear.\nVITALS:\nBP 120/80."
    names = [s[0] for s in sections(text)]
    assert names == ["header", "vitals"]  # NECK and LUNGS stay in the text; VITALS stands alone
    lex = load_lexicon({"supple_neck": ["supple"]})
    assert [m.concept for m in extract(text, lex)] == ["supple_neck"]


def test_sections_map_to_canonical_names_with_defaults() -> None:
    text = (
        "HPI: Reports angina.\nFAMILY HISTORY: MI at 60.\nSocial history: COPD.\n"
        "Allergies: none.\nDISCHARGE INSTRUCTIONS:\nCall if chest pain recurs."
    )
    got = [(m.concept, m.section, m.label()) for m in extract(text, LEX)]
    assert got == [
        ("chest_pain", "hpi", "present"),
        ("myocardial_infarction", "family_history", "historical_family"),
        ("copd", "social_history", "historical"),
        ("chest_pain", "instructions", "hypothetical"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Seen by Dr. Holt at St. Aurelia. Lactate 5.1 mmol/L today! Next",
         ["Seen by Dr. Holt at St. Aurelia.", "Lactate 5.1 mmol/L today!", "Next"]),
        ("Positive for C. diff toxin. Started metronidazole 500 mg p.o. t.i.d. for 14 days.",
         ["Positive for C. diff toxin.", "Started metronidazole 500 mg p.o. t.i.d. for 14 days."]),
        ("s/p CABG. Takes 2.5 mg apixaban b.i.d. now.", ["s/p CABG.", "Takes 2.5 mg apixaban b.i.d. now."]),
        ("PROBLEMS: 1. CHF. 2. AF.", ["PROBLEMS: 1. CHF.", "2. AF."]),
        ("- No chest pain\n- Orthopnea\nwrapped line\ncontinues.", ["- No chest pain", "- Orthopnea\nwrapped line\ncontinues."]),
    ],
)  # fmt: skip
def test_sentences_survive_clinical_abbreviations(text: str, expected: list[str]) -> None:
    assert [text[a:b].strip() for a, b in sentences(text, 0, len(text))] == expected


def test_a_list_item_does_not_negate_the_next() -> None:
    assert labels("PMH:\n- No prior cardiac arrest\n- CABG 2015") == [
        ("cardiac_arrest", "negated_historical"),
        ("cabg", "historical"),
    ]


def test_given_targets_are_assessed_exactly_even_in_a_header() -> None:
    text = "CHEST PAIN: none reported. Return if dyspnea worsens."
    got = annotate(text, targets=[Target(0, 10, "chest_pain"), Target(37, 44)])
    assert [(m.concept, m.start, m.end) for m in got] == [("chest_pain", 0, 10), (None, 37, 44)]
    assert got[1].hypothetical and not got[1].negated
    with pytest.raises(SpecError, match=r"targets\[0\]: expected 0 <= start < end <= 53"):
        annotate(text, targets=[Target(40, 99)])
    with pytest.raises(SpecError, match="exactly one of targets"):
        annotate(text)


def test_rules_from_a_mapping_are_checked() -> None:
    rules = ContextRules.from_mapping({"negated": {"forward": ["nope"]}})
    (m,) = annotate("Nope CHF.", targets=[Target(5, 8)], rules=rules)
    assert m.negated
    with pytest.raises(SpecError, match=r"negated: unknown key\(s\) \['forwards'\]"):
        ContextRules.from_mapping({"negated": {"forwards": ["nope"]}})
    with pytest.raises(SpecError, match="unknown key"):
        ContextRules.from_mapping({"negation": {}})


def test_generator_phrasings_are_not_the_extractors_triggers() -> None:
    """The synthetic notes must not replay the extractor's vocabulary (issue 14)."""
    triggers = ContextRules.default().trigger_phrases()
    for status, phrases in PHRASINGS.items():
        for p in phrases:
            cue = " ".join(p.replace("{x}", " ").lower().split())
            assert cue not in triggers, (status, p)


def test_a_chronic_condition_alone_outside_any_section_is_historical() -> None:
    """A bare list item cut from its problem list (the ConText set's "HYPERTENSION.") is history;
    the same item under a known header, a non-chronic one, or one with more words is not."""
    assert target("HYPERTENSION.")["hist"]
    assert target("2) CORONARY ARTERY DISEASE")["hist"]
    assert target("TYPE 2 DIABETES.")["hist"]
    assert not target("PNEUMONIA.")["hist"]
    assert not target("03) MILD PULMONARY HYPERTENSION.")["hist"]  # not the chronic condition
    assert not target("2) ST DEPRESSION.")["hist"]
    assert not target("Worsening HYPERTENSION.")["hist"]
    assert not target("HYPERTENSION 401.9")["hist"]
    text = "ASSESSMENT:\nHYPERTENSION."
    (m,) = annotate(text, targets=[Target(12, 24)])
    assert m.section == "assessment_plan" and not m.historical
    (m,) = annotate("HYPERTENSION.", targets=[Target(0, 12)])
    assert [(c.source, c.phrase) for c in m.context.cues] == [("list_item", "hypertension")]


def test_a_history_named_by_the_target_itself_is_historical() -> None:
    assert target("PSYCHIATRIC HISTORY.")["hist"]


def test_previously_noted_is_a_finding_that_persists_not_history() -> None:
    assert not target("The scan shows SEPTATED CYSTIC LESIONS, as previously noted on CT.")["hist"]
    assert target("He had a STROKE previously.")["hist"]


def test_recent_ends_a_history_scope() -> None:
    text = "Past medical history significant for ESRD and recent diagnosis of PE, discharged after AV FISTULA placement."
    esrd, fistula = text.index("ESRD"), text.index("AV FISTULA")
    first, second = annotate(text, targets=[Target(esrd, esrd + 4), Target(fistula, fistula + 10)])
    assert first.historical and not second.historical
