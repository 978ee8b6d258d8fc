"""Note de-identification speed and accuracy, Regent beside Presidio, and the DICOM profile beside
pydicom's ``deid`` recipe.

    .venv/bin/python bench/deid.py [--data ../shared/data/deid_physionet] [--no-presidio]

Prints notes/s and characters/s of Regent's de-identifier (shipped model) on the PhysioNet
development notes, and its recall/precision there (in-sample for the model: the honest figure is
``regent notes evaluate-deid --cv 5``).  Presidio (analyzer with its pattern recognizers only: its
spaCy model cannot be downloaded here) runs in its own virtual environment,
``.venv/bench-presidio``, created on first use from the package registry; if that fails the run
says so and goes on.  Last, the PS3.15 table Regent applies is compared with the recipe shipped in
the ``deid`` package (pydicom/deid), read from its wheel without installing it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.registry.deid.corpus import read_gold, read_notes  # noqa: E402
from toolkit.registry.deid.engine import NoteDeidentifier  # noqa: E402
from toolkit.registry.deid.evaluate import find_by_person, score  # noqa: E402
from toolkit.registry.deid.spans import Span  # noqa: E402

PRESIDIO_VENV = REPO / ".venv" / "bench-presidio"
PRESIDIO_RUNNER = r'''
import json, sys, time
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

class NoNlp(NlpEngine):
    """Presidio's pattern recognizers without a language model (none can be downloaded)."""
    def load(self): pass
    def is_loaded(self): return True
    def process_text(self, text, language):
        return NlpArtifacts(entities=[], tokens=[], tokens_indices=[], lemmas=[], nlp_engine=self, language=language)
    def process_batch(self, texts, language, **kw):
        for t in texts: yield t, self.process_text(t, language)
    def is_stopword(self, word, language): return False
    def is_punct(self, word, language): return False
    def get_supported_entities(self): return []
    def get_supported_languages(self): return ["en"]

registry = RecognizerRegistry()
registry.load_predefined_recognizers(languages=["en"])
for name in ("EmailRecognizer", "SpacyRecognizer"):  # e-mail fetches the public suffix list
    try: registry.remove_recognizer(name)
    except Exception: pass
engine = AnalyzerEngine(registry=registry, nlp_engine=NoNlp(), supported_languages=["en"])
notes = [json.loads(l) for l in open(sys.argv[1])]
engine.analyze(text="warm up on 7/22 at 410-322-1419", language="en")
t0 = time.perf_counter()
out = []
for n in notes:
    for r in engine.analyze(text=n["text"], language="en"):
        out.append({"note_id": n["note_id"], "start": r.start, "end": r.end, "kind": r.entity_type})
elapsed = time.perf_counter() - t0
json.dump({"elapsed": elapsed, "spans": out}, open(sys.argv[2], "w"))
'''


def _presidio(notes_jsonl: Path, out: Path) -> dict[str, object] | None:
    py = PRESIDIO_VENV / "bin" / "python"
    if not py.exists():
        print(f"presidio: creating {PRESIDIO_VENV} (analyzer and anonymizer from the package registry)")
        r = subprocess.run([sys.executable, "-m", "venv", str(PRESIDIO_VENV)], capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run(
                [str(py), "-m", "pip", "install", "-q", "presidio-analyzer", "presidio-anonymizer"],
                capture_output=True,
                text=True,
                timeout=900,
            )
        if r.returncode != 0:
            print("presidio: skipped (could not be installed here)")
            return None
    runner = out.with_suffix(".py")
    runner.write_text(PRESIDIO_RUNNER)
    r = subprocess.run([str(py), str(runner), str(notes_jsonl), str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        print(
            "presidio: skipped (failed to run; last line: "
            + (r.stderr.strip().splitlines() or ["?"])[-1]
            + ")"
        )
        return None
    return json.loads(out.read_text())


def _deid_recipe() -> list[tuple[str, str, str]] | None:
    """pydicom/deid's default recipe (``deid/data/deid.dicom``, its %header part) as
    (action, match, field) rules: match is "" (a keyword), endswith, startswith or contains."""
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", d, "deid"],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(d).glob("deid-*.whl"))
        if r.returncode != 0 or not wheels:
            return None
        with zipfile.ZipFile(wheels[0]) as z:
            text = z.read("deid/data/deid.dicom").decode()
    rules = []
    for line in text.split("%header", 1)[-1].splitlines():
        m = re.match(
            r"\s*(REMOVE|BLANK|REPLACE|KEEP|JITTER|ADD)\s+(?:(endswith|startswith|contains):)?(\S+)", line
        )
        if m:
            rules.append((m.group(1), m.group(2) or "", m.group(3)))
    return rules


def _recipe_action(rules: list[tuple[str, str, str]], keyword: str) -> str | None:
    for action, how, field in rules:
        if (
            (how == "" and keyword == field)
            or (how == "endswith" and keyword.endswith(field))
            or (how == "startswith" and keyword.startswith(field))
            or (how == "contains" and field in keyword)
        ):
            return action
    return None


_NOTABLE = (
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "StudyDescription",
    "SeriesDescription",
    "DeviceSerialNumber",
    "PatientAge",
    "PatientSex",
    "PatientWeight",
    "ImageComments",
    "RequestAttributesSequence",
    "ContentSequence",
)


def _compare_recipe() -> None:
    rules = _deid_recipe()
    if rules is None:
        print("deid recipe: skipped (the deid wheel could not be downloaded)")
        return
    from pydicom.datadict import keyword_for_tag

    from toolkit.registry.deid.dicom import profile_table

    table = profile_table()
    keywords = {t: keyword_for_tag(t) for t in table}
    covered = {t for t, k in keywords.items() if k and _recipe_action(rules, k) is not None}
    left = sorted(k for t, k in keywords.items() if k and t not in covered)
    print(
        f"DICOM: PS3.15 Basic Profile {len(table)} attributes, Regent applies all of them; the deid "
        f"recipe ({len(rules)} rules) touches {len(covered)} and leaves {len(left)} as they are, among them "
        + ", ".join(k for k in _NOTABLE if k in left)
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "deid_physionet")
    ap.add_argument("--no-presidio", action="store_true")
    args = ap.parse_args()
    notes = read_notes(args.data / "dev_notes.text")
    gold = read_gold(args.data / "dev_phi.phrase")
    chars = sum(len(n.text) for n in notes)

    engine = NoteDeidentifier()
    engine.find("warm up the lexicon and model")
    t0 = time.perf_counter()
    found = find_by_person(engine, notes)
    regent_s = time.perf_counter() - t0
    ev = score(notes, gold, found)
    print(f"{len(notes)} notes, {chars:,} characters")
    print(
        f"regent:   {len(notes) / regent_s:8.1f} notes/s {chars / regent_s / 1e3:8.1f} k chars/s  "
        f"recall {ev.recall:.3f} precision {ev.precision:.3f} altered {ev.altered:.2%} (in-sample)"
    )
    if not args.no_presidio:
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "notes.jsonl"
            src.write_text("".join(json.dumps({"note_id": n.note_id, "text": n.text}) + "\n" for n in notes))
            res = _presidio(src, Path(d) / "presidio.json")
        if res is not None:
            spans: dict[str, list[Span]] = defaultdict(list)
            for s in res["spans"]:  # type: ignore[union-attr]
                spans[s["note_id"]].append(Span(s["start"], s["end"], s["kind"], ""))
            pv = score(notes, gold, spans)
            secs = float(res["elapsed"])  # type: ignore[arg-type]
            print(
                f"presidio: {len(notes) / secs:8.1f} notes/s {chars / secs / 1e3:8.1f} k chars/s  "
                f"recall {pv.recall:.3f} precision {pv.precision:.3f} altered {pv.altered:.2%}  "
                f"(regent {secs / regent_s:.2f}x its speed)"
            )
    _compare_recipe()


if __name__ == "__main__":
    main()
