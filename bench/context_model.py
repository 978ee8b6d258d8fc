"""Does a learned component beat the rules on the *historical* attribute?  Nested cross-validation.

    python bench/context_model.py --annotations ../shared/data/context_chapman/dev_annotations.tsv
    python bench/context_model.py --annotations ... --without-fold0   # while developing

A logistic regression (scikit-learn) decides *historical* from the rules' output and what the rules
cannot weigh: the cues that fired (source and phrase), the section, the sentence's shape (a bare
list item, ALL CAPS, length, a date or year), the target's words and the four words either side.
Outer folds are the evaluation's (row ``i`` in fold ``i % 5``); on each outer training part the
rules' scope caps are tuned (as ``regent notes evaluate-context --folds 5`` does) and the model's
``C`` and class weighting are chosen by an inner cross-validation over the training folds, then the
model is fitted on the whole training part and scores the fold left out.  Prints the pooled counts
for rules only and rules + model, and the figures per fold.  ``--without-fold0`` drops fold 0's
rows entirely (the folds read while developing the rules; fold 0 is the honest check).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from toolkit.features.context import ContextRules
from toolkit.features.context_eval import Example, read_context_annotations, tune
from toolkit.features.mentions import Target, annotate

GRID = [(c, w) for c in (0.1, 0.3, 1.0, 3.0) for w in (None, "balanced")]
_WORDS = re.compile(r"[a-z]+")
_LIST_MARK = re.compile(r"\b\d{1,2}[.)]|[\W_]")


def features(ex: Example, rules: ContextRules) -> tuple[dict[str, float], bool]:
    """The model's features of one row, and the rules' historical."""
    assert ex.start is not None and ex.end is not None
    (m,) = annotate(ex.sentence, targets=[Target(ex.start, ex.end)], rules=rules)
    f = {"rule_historical": float(m.historical), f"section={m.section}": 1.0}
    for c in m.context.cues:
        if c.category == "historical":
            f[f"cue_source={c.source}"] = 1.0
            f[f"cue={c.phrase}"] = 1.0
    left, right = ex.sentence[: ex.start].lower(), ex.sentence[ex.end :].lower()
    f["bare_item"] = float(not _LIST_MARK.sub("", left + right).strip())
    f["all_caps"] = float(ex.sentence.upper() == ex.sentence)
    f[f"words/5={min(len(ex.sentence.split()) // 5, 8)}"] = 1.0
    f["date_or_year"] = float(bool(re.search(r"\*\*DATE|\b(?:19|20)\d\d\b", ex.sentence)))
    for w in _WORDS.findall(ex.target.lower()):
        f[f"target:{w}"] = 1.0
    for w in _WORDS.findall(left)[-4:]:
        f[f"left:{w}"] = 1.0
    for w in _WORDS.findall(right)[:4]:
        f[f"right:{w}"] = 1.0
    return f, m.historical


def _fit(rows: Sequence[dict[str, float]], y: np.ndarray, c: float, w: str | None):
    vec = DictVectorizer()
    model = LogisticRegression(C=c, class_weight=w, max_iter=5000).fit(vec.fit_transform(rows), y)
    return vec, model


def _f1(y: np.ndarray, p: np.ndarray) -> tuple[int, int, int, float]:
    tp, fp, fn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum())
    return tp, fp, fn, 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def _choose(rows: list[dict[str, float]], y: np.ndarray, fold: np.ndarray) -> tuple[float, str | None]:
    """The (C, class weight) with the best pooled inner-CV F1 (ties: the smaller C)."""
    best = None
    for c, w in GRID:
        pred = np.zeros(len(y), bool)
        for k in np.unique(fold):
            tr, te = fold != k, fold == k
            vec, model = _fit([rows[j] for j in np.flatnonzero(tr)], y[tr], c, w)
            pred[te] = model.predict(vec.transform([rows[j] for j in np.flatnonzero(te)]))
        score = _f1(y, pred)[3]
        if best is None or score > best[0]:
            best = (score, c, w)
    assert best is not None
    return best[1], best[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotations", type=Path, required=True)
    ap.add_argument("--without-fold0", action="store_true")
    args = ap.parse_args()
    examples = read_context_annotations(args.annotations)
    k = 5
    keep = [i for i, ex in enumerate(examples) if ex.start is not None]
    if args.without_fold0:
        keep = [i for i in keep if i % k]
    base = ContextRules.default()
    y_all = np.array([examples[i].gold["historical"] for i in keep])
    fold_all = np.array([i % k for i in keep])
    rules_pred = np.zeros(len(keep), bool)
    model_pred = np.zeros(len(keep), bool)
    print(f"{'fold':<6}{'caps':<12}{'C':>6}{'weight':>10}{'rules F1':>10}{'+model F1':>11}")
    for outer in sorted(set(fold_all.tolist())):
        train = [i for i in range(len(examples)) if i % k != outer and (i % k or not args.without_fold0)]
        rules = tune([examples[i] for i in train], base)
        rows, rule_hist = zip(*(features(examples[i], rules) for i in keep), strict=True)
        rows, rule_hist = list(rows), np.array(rule_hist)
        tr, te = fold_all != outer, fold_all == outer
        c, w = _choose([rows[j] for j in np.flatnonzero(tr)], y_all[tr], fold_all[tr])
        vec, model = _fit([rows[j] for j in np.flatnonzero(tr)], y_all[tr], c, w)
        rules_pred[te] = rule_hist[te]
        model_pred[te] = model.predict(vec.transform([rows[j] for j in np.flatnonzero(te)]))
        cap = rules.max_words.get("historical")
        print(
            f"{outer:<6}{cap!s:<12}{c:>6}{w!s:>10}"
            f"{_f1(y_all[te], rules_pred[te])[3]:>10.3f}{_f1(y_all[te], model_pred[te])[3]:>11.3f}"
        )
    for name, p in (("rules only", rules_pred), ("rules + model", model_pred)):
        tp, fp, fn, f1 = _f1(y_all, p)
        prec, rec = tp / (tp + fp), tp / (tp + fn)
        print(f"{name:<14} historical: tp {tp} fp {fp} fn {fn}  P {prec:.3f} R {rec:.3f} F1 {f1:.3f}")


if __name__ == "__main__":
    main()
