"""Regent's ConText beside medspaCy's on the same annotated sentences, in one run.

    python bench/context.py --annotations ../shared/data/context_chapman/dev_annotations.tsv

medspaCy 1.3.1 (PyPI) runs in its own venv (``.venv/bench-medspacy``, created on first use, never a
project dependency) with its bundled ConText rules: each target is given to it as the only entity
of its sentence, exactly as Regent's given-target mode gets it, and its ``is_negated``,
``is_historical``, ``is_hypothetical``, ``is_family`` flags are scored like Regent's.  Both are
scored by :func:`toolkit.features.context_eval.score`; the script prints one table per system
and the time each took, then the same for fold 0 alone (rows ``i % 5 == 0``: the fold never read
while the rules were written) -- Regent's shipped rules, Regent with the scope caps tuned on folds
1-4 (the cross-validation's fold-0 predictions) and medspaCy.  Nothing is downloaded at run time
once the venv exists.  Whether a learned model adds to the rules: ``bench/context_model.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from toolkit.features.context import ContextRules
from toolkit.features.context_eval import (
    cross_validate,
    evaluate,
    predict,
    read_context_annotations,
    score,
    tune,
)

MEDSPACY_VERSION = "1.3.1"
VENV = Path(__file__).resolve().parents[1] / ".venv" / "bench-medspacy"

# runs inside the medspaCy venv: reads [[sentence, start, end], ...] on stdin, prints flags per row
CHILD = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import medspacy
from spacy.tokens import Span
nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_context"])
rows = json.load(sys.stdin)
out = []
for sentence, start, end in rows:
    doc = nlp.make_doc(sentence)
    span = doc.char_span(start, end, label="TARGET", alignment_mode="expand")
    doc.ents = [span]
    for name, proc in nlp.pipeline:
        doc = proc(doc)
    ent = doc.ents[0]
    out.append({"negated": bool(ent._.is_negated), "historical": bool(ent._.is_historical),
                "hypothetical": bool(ent._.is_hypothetical), "family": bool(ent._.is_family),
                "other": False})
print(json.dumps(out))
"""


def ensure_medspacy() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"installing medspacy=={MEDSPACY_VERSION} into {VENV} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", f"medspacy=={MEDSPACY_VERSION}"], check=True
        )
    return python


def _print(name: str, s: object, seconds: float) -> None:
    d = s.to_dict()  # type: ignore[attr-defined]
    print(f"\n{name}: {d['scored']} scored, {d['absent']} absent, {seconds:.1f} s")
    print(f"{'attribute':<14}{'tp':>6}{'fp':>6}{'fn':>6}{'prec':>8}{'recall':>8}{'F1':>8}")
    for a in d["attributes"]:
        print(
            f"{a['attribute']:<14}{a['tp']:>6}{a['fp']:>6}{a['fn']:>6}"
            f"{a['precision']:>8.3f}{a['recall']:>8.3f}{a['f1']:>8.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotations", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    examples = read_context_annotations(args.annotations)

    t = time.perf_counter()
    ours = evaluate(examples)
    _print("Regent (shipped rules)", ours, time.perf_counter() - t)
    t = time.perf_counter()
    cv, caps = cross_validate(examples, k=args.folds)
    _print(f"Regent ({args.folds}-fold cross-validation of the scope caps)", cv, time.perf_counter() - t)
    print("caps chosen per fold:", caps)

    python = ensure_medspacy()
    located = [ex for ex in examples if ex.start is not None]
    payload = json.dumps([[ex.sentence, ex.start, ex.end] for ex in located])
    t = time.perf_counter()
    r = subprocess.run([str(python), "-c", CHILD], input=payload, capture_output=True, text=True, check=True)
    flags = iter(json.loads(r.stdout.strip().splitlines()[-1]))
    preds = [next(flags) if ex.start is not None else None for ex in examples]
    _print(
        f"medspaCy {MEDSPACY_VERSION} ConText (bundled rules)",
        score(examples, preds),
        time.perf_counter() - t,
    )

    k = args.folds
    fold0 = [ex for i, ex in enumerate(examples) if i % k == 0]
    train = [ex for i, ex in enumerate(examples) if i % k]
    t = time.perf_counter()
    _print("fold 0: Regent (shipped rules)", evaluate(fold0), time.perf_counter() - t)
    t = time.perf_counter()
    tuned = tune(train, ContextRules.default())
    _print(
        "fold 0: Regent (caps tuned on the other folds)",
        score(fold0, predict(fold0, tuned)),
        time.perf_counter() - t,
    )
    _print(
        f"fold 0: medspaCy {MEDSPACY_VERSION}",
        score(fold0, [p for i, p in enumerate(preds) if i % k == 0]),
        0.0,
    )


if __name__ == "__main__":
    main()
