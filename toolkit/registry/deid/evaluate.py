"""Scoring found identifiers against gold spans, and cross-validation by person.

* a gold identifier is **caught** when every letter and digit of it lies inside found spans,
  **partial** when some do, **missed** otherwise; recall = caught / gold, per gold category;
* **precision** = found spans that overlap a gold identifier / found spans (a span covering
  ``Sacred Heart Memorial`` is one true find even where the gold marks three words);
  word-level precision is reported beside it;
* **altered** = share of words (letters/digits runs) outside every gold identifier that a
  found span touches: the damage done to the clinical text.

Cross-validation splits *persons* into folds (sorted ids dealt round-robin), fits the
classifier on the other folds (its threshold chosen by an inner cross-validation on those
folds alone) and finds identifiers in the held-out fold's notes; nothing learned ever sees the
notes it is scored on.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from toolkit.registry.deid.corpus import GoldSpan, Note
from toolkit.registry.deid.engine import NoteDeidentifier, SiteTerms
from toolkit.registry.deid.features import Token, tokenize, word_features
from toolkit.registry.deid.lexicon import Lexicon, load_lexicon
from toolkit.registry.deid.model import LABELS, Thresholds, TokenModel, fit_model
from toolkit.registry.deid.spans import Span

#: PhysioNet categories -> the label the classifier learns (others come from patterns)
CLASSIFIER_LABEL = {
    "HCPName": 1,
    "PTName": 1,
    "PTNameInitial": 1,
    "RelativeProxyName": 1,
    "Location": 2,
}
_ALNUM = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class CategoryScore:
    gold: int
    caught: int
    partial: int

    @property
    def recall(self) -> float:
        return self.caught / self.gold if self.gold else float("nan")


@dataclass(frozen=True)
class DeidEvaluation:
    categories: dict[str, CategoryScore]
    found: int
    found_true: int
    words_found: int
    words_found_true: int
    other_words: int
    other_words_altered: int
    notes: int
    folds: int = 0
    found_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def recall(self) -> float:
        g = sum(c.gold for c in self.categories.values())
        return sum(c.caught for c in self.categories.values()) / g if g else float("nan")

    @property
    def precision(self) -> float:
        return self.found_true / self.found if self.found else float("nan")

    @property
    def word_precision(self) -> float:
        return self.words_found_true / self.words_found if self.words_found else float("nan")

    @property
    def altered(self) -> float:
        return self.other_words_altered / self.other_words if self.other_words else 0.0

    def to_text(self) -> str:
        lines = [
            f"notes: {self.notes}"
            + (f" (cross-validated by person, {self.folds} folds)" if self.folds else ""),
            f"{'category':<20}{'gold':>6}{'caught':>8}{'partial':>9}{'recall':>8}",
        ]
        for name, c in sorted(self.categories.items()):
            lines.append(f"{name:<20}{c.gold:>6}{c.caught:>8}{c.partial:>9}{c.recall:>8.3f}")
        g = sum(c.gold for c in self.categories.values())
        caught = sum(c.caught for c in self.categories.values())
        partial = sum(c.partial for c in self.categories.values())
        lines += [
            f"{'all':<20}{g:>6}{caught:>8}{partial:>9}{self.recall:>8.3f}",
            f"precision: {self.precision:.3f} of {self.found} spans found "
            f"(word-level {self.word_precision:.3f})",
            f"non-identifier words altered: {self.altered:.2%} ({self.other_words_altered} of {self.other_words})",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "notes": self.notes,
            "folds": self.folds,
            "recall": self.recall,
            "precision": self.precision,
            "word_precision": self.word_precision,
            "non_identifier_words_altered": self.altered,
            "categories": {k: {**v.__dict__, "recall": v.recall} for k, v in self.categories.items()},
            "found_by_kind": self.found_by_kind,
        }


def score(
    notes: Sequence[Note], gold: Sequence[GoldSpan], found: dict[str, list[Span]], *, folds: int = 0
) -> DeidEvaluation:
    """Score ``found`` (note id -> spans) against ``gold``."""
    gold_by: dict[str, list[GoldSpan]] = defaultdict(list)
    for g in gold:
        gold_by[g.note_id].append(g)
    cats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    n_found = n_true = w_found = w_true = other = altered = 0
    kinds: Counter[str] = Counter()
    for note in notes:
        text = note.text
        spans = found.get(note.note_id, [])
        mask = np.zeros(len(text) + 1, dtype=bool)
        for s in spans:
            mask[s.start : s.end] = True
        gmask = np.zeros(len(text) + 1, dtype=bool)
        for g in gold_by.get(note.note_id, []):
            gmask[g.start : g.end] = True
            chars = [m.span() for m in _ALNUM.finditer(text, g.start, g.end)]
            total = sum(b - a for a, b in chars)
            hit = sum(int(mask[a:b].sum()) for a, b in chars)
            c = cats[g.kind]
            c[0] += 1
            if total and hit == total:
                c[1] += 1
            elif hit:
                c[2] += 1
        for s in spans:
            n_found += 1
            kinds[s.kind] += 1
            n_true += bool(gmask[s.start : s.end].any())
        for m in _ALNUM.finditer(text):
            a, b = m.span()
            in_gold, in_found = bool(gmask[a:b].any()), bool(mask[a:b].any())
            if in_found:
                w_found += 1
                w_true += in_gold
            if not in_gold:
                other += 1
                altered += in_found
    return DeidEvaluation(
        {k: CategoryScore(*v) for k, v in cats.items()},
        n_found,
        n_true,
        w_found,
        w_true,
        other,
        altered,
        len(notes),
        folds,
        dict(kinds),
    )


# --- training tables and cross-validation -------------------------------------------------
@dataclass(frozen=True)
class WordTable:
    rows: np.ndarray
    labels: np.ndarray
    persons: np.ndarray  # index of the person, per row


Prepared = dict[str, tuple[list[Token], np.ndarray]]


def prepare_notes(notes: Sequence[Note], lexicon: Lexicon | None = None) -> Prepared:
    """Words and feature rows of every note, by note id."""
    lex = lexicon or load_lexicon()
    out: Prepared = {}
    for note in notes:
        toks = tokenize(note.text)
        out[note.note_id] = (toks, word_features(note.text, toks, lex))
    return out


def word_table(
    notes: Sequence[Note],
    gold: Sequence[GoldSpan],
    lexicon: Lexicon | None = None,
    *,
    prepared: Prepared | None = None,
) -> WordTable:
    """Feature rows and labels of every word of ``notes``."""
    prepared = prepared if prepared is not None else prepare_notes(notes, lexicon)
    gold_by: dict[str, list[GoldSpan]] = defaultdict(list)
    for g in gold:
        gold_by[g.note_id].append(g)
    person_index = {p: i for i, p in enumerate(sorted({_person(n) for n in notes}))}
    rows, labels, persons = [], [], []
    for note in notes:
        toks, feats = prepared[note.note_id]
        lab = np.zeros(len(toks), dtype=np.int32)
        starts = np.array([t.start for t in toks])
        ends = np.array([t.end for t in toks])
        for g in gold_by.get(note.note_id, []):
            label = CLASSIFIER_LABEL.get(g.kind, 0)
            if label and len(toks):
                lab[(starts < g.end) & (ends > g.start)] = label
        words = np.array([t.is_word for t in toks], dtype=bool)
        rows.append(feats[words])
        labels.append(lab[words])
        persons.append(np.full(int(words.sum()), person_index[_person(note)]))
    return WordTable(np.vstack(rows), np.concatenate(labels), np.concatenate(persons))


def _person(note: Note) -> str:
    return note.person_id if note.person_id is not None else note.note_id


def fold_of(persons: Sequence[str], k: int) -> dict[str, int]:
    """Persons sorted (numerically where they are numbers) and dealt round-robin into k folds."""
    ordered = sorted(set(persons), key=lambda p: (0, int(p), "") if p.isdigit() else (1, 0, p))
    return {p: i % k for i, p in enumerate(ordered)}


#: gold categories whose words become site terms (local staff, relatives, patients, places)
SITE_TERM_KINDS = {"HCPName": "NAME", "PTName": "NAME", "RelativeProxyName": "NAME", "Location": "LOCATION"}


def mine_site_terms(
    notes: Sequence[Note],
    gold: Sequence[GoldSpan],
    *,
    min_persons: int = 2,
    min_share: float = 0.5,
    prepared: Prepared | None = None,
) -> SiteTerms:
    """A site's own names and places from annotated notes: words marked as a name or place
    for at least ``min_persons`` persons and in at least ``min_share`` of their occurrences
    (``GH``, a ward's name, a consultant seen by many patients)."""
    prepared = prepared if prepared is not None else prepare_notes(notes)
    gold_by: dict[str, list[GoldSpan]] = defaultdict(list)
    for g in gold:
        gold_by[g.note_id].append(g)
    total: Counter[str] = Counter()
    marked: Counter[str] = Counter()
    persons: dict[str, set[str]] = defaultdict(set)
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for note in notes:
        spans = [g for g in gold_by.get(note.note_id, []) if g.kind in SITE_TERM_KINDS]
        for t in prepared[note.note_id][0]:
            if not t.is_word:
                continue
            k = Lexicon.key(t.text)
            total[k] += 1
            hit = next((g for g in spans if g.start < t.end and t.start < g.end), None)
            if hit is not None:
                marked[k] += 1
                persons[k].add(_person(note))
                kinds[k][SITE_TERM_KINDS[hit.kind]] += 1
    return SiteTerms(
        {
            k: kinds[k].most_common(1)[0][0]
            for k in marked
            if len(k) > 1 and len(persons[k]) >= min_persons and marked[k] / total[k] >= min_share
        }
    )


#: thresholds tried when the model's thresholds are chosen (name, place)
MARK_GRID = (0.005, 0.01, 0.02, 0.03, 0.05)
#: the span precision the chosen thresholds must reach on held-out training notes
TARGET_PRECISION = 0.75


def fit_with_inner_cv(
    notes: Sequence[Note],
    gold: Sequence[GoldSpan],
    *,
    prepared: Prepared,
    inner_folds: int = 3,
    site_terms: SiteTerms | None = None,
    seed: int = 0,
) -> TokenModel:
    """Fit on all of ``notes``; choose the thresholds by an inner cross-validation by person on
    the same notes: the pair (name, place) with the best recall among those whose precision
    reaches :data:`TARGET_PRECISION` (the most precise pair if none does)."""
    table = word_table(notes, gold, prepared=prepared)
    persons = [_person(n) for n in notes]
    fold = fold_of(persons, inner_folds)
    probs: dict[str, np.ndarray] = {}
    for k in range(inner_folds):
        train = [n for n in notes if fold[_person(n)] != k]
        ids = {n.note_id for n in train}
        inner = word_table(train, [g for g in gold if g.note_id in ids], prepared=prepared)
        m = fit_model(inner.rows, inner.labels, seed=seed)
        for n in notes:
            if fold[_person(n)] == k:
                words = [t.is_word for t in prepared[n.note_id][0]]
                p = np.zeros((len(words), len(LABELS)), dtype=np.float32)
                p[:, 0] = 1.0
                p[np.array(words, dtype=bool)] = m.predict(
                    prepared[n.note_id][1][np.array(words, dtype=bool)]
                )
                probs[n.note_id] = p
    best: tuple[tuple[float, float], Thresholds] | None = None
    for mark in MARK_GRID:
        for mark_place in MARK_GRID:
            th = Thresholds(mark=mark, mark_place=mark_place)
            engine = NoteDeidentifier(TokenModel(None, th), site_terms=site_terms)
            found = _spans_with(engine, notes, prepared, probs)
            ev = score(notes, gold, found)
            key = (
                float(ev.precision >= TARGET_PRECISION),
                ev.recall if ev.precision >= TARGET_PRECISION else ev.precision,
            )
            if best is None or key > best[0]:
                best = (key, th)
    assert best is not None
    return fit_model(table.rows, table.labels, thresholds=best[1], seed=seed)


def _by_person(notes: Sequence[Note]) -> list[list[Note]]:
    """The notes grouped by person (first appearance order), each person's notes in file order."""
    groups: dict[str, list[Note]] = defaultdict(list)
    for n in notes:
        groups[_person(n)].append(n)
    return list(groups.values())


def _spans_with(
    engine: NoteDeidentifier, notes: Sequence[Note], prepared: Prepared, probs: dict[str, np.ndarray]
) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {}
    for group in _by_person(notes):
        spans = engine.spans_from(
            [n.text for n in group],
            [prepared[n.note_id][0] for n in group],
            [probs[n.note_id] for n in group],
        )
        out.update({n.note_id: s for n, s in zip(group, spans, strict=True)})
    return out


def cross_validate(
    notes: Sequence[Note],
    gold: Sequence[GoldSpan],
    *,
    folds: int = 5,
    progress: Callable[[str], None] = lambda _: None,
    site_terms: bool = True,
) -> tuple[DeidEvaluation, dict[str, list[Span]]]:
    """Cross-validated scores by person: every note is scored by a model (and, with
    ``site_terms``, a list of site terms) fitted without its person."""
    lex = load_lexicon()
    persons = [_person(n) for n in notes]
    fold = fold_of(persons, folds)
    progress(f"reading {len(notes)} notes")
    prepared = prepare_notes(notes, lex)
    found: dict[str, list[Span]] = {}
    gold_notes = {n.note_id for n in notes}
    for k in range(folds):
        train_notes = [n for n in notes if fold[_person(n)] != k]
        test_notes = [n for n in notes if fold[_person(n)] == k]
        train_ids = {n.note_id for n in train_notes}
        progress(f"fold {k + 1}/{folds}: fitting on {len(train_notes)} notes")
        train_gold = [g for g in gold if g.note_id in train_ids]
        terms = mine_site_terms(train_notes, train_gold, prepared=prepared) if site_terms else None
        model = fit_with_inner_cv(train_notes, train_gold, prepared=prepared, site_terms=terms)
        engine = NoteDeidentifier(model, lexicon=lex, site_terms=terms)
        th = model.thresholds
        progress(
            f"fold {k + 1}/{folds}: scoring {len(test_notes)} notes (thresholds {th.mark}, {th.mark_place})"
        )
        found.update(find_by_person(engine, test_notes, prepared=prepared))
    assert set(found) <= gold_notes
    return score(notes, gold, found, folds=folds), found


def find_by_person(
    engine: NoteDeidentifier, notes: Sequence[Note], *, prepared: Prepared | None = None
) -> dict[str, list[Span]]:
    """Spans per note id, each person's notes read together."""
    out: dict[str, list[Span]] = {}
    for group in _by_person(notes):
        pre = [prepared[n.note_id] for n in group] if prepared is not None else None
        for n, spans in zip(group, engine.find_many([n.text for n in group], prepared=pre), strict=True):
            out[n.note_id] = spans
    return out


__all__ = ["LABELS", "DeidEvaluation", "cross_validate", "find_by_person", "fit_with_inner_cv", "score"]
