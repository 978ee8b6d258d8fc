"""The joined feature matrix of a study: structured, note and imaging features on one row per cohort row.

:func:`build_features` runs each modality the study's ``features.modalities`` lists and returns
the matrix, which feature belongs to which modality (the ablation analysis compares the sets)
and the data-quality table (one row per note or image problem; counts in :meth:`quality_counts`).

>>> fused = build_features(cohort.cohort, reg, spec.features, base=study_dir)  # doctest: +SKIP
>>> fused.groups["notes"][:2]                                                   # doctest: +SKIP
['note_cabg_historical', 'note_cardiac_arrest_historical']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.cohort.run import as_backend
from toolkit.cohort.spec import ConceptItem
from toolkit.features.imaging import image_features, measure_images
from toolkit.features.lexicon import Lexicon
from toolkit.features.notes import (
    NoteFeatureSpec,
    load_lexicon,
    mention_features,
    note_mentions,
    text_features,
)
from toolkit.features.windows import (
    FeatureSpec,
    _query,
    feature_matrix,
    generated_features,
    window_features,
)
from toolkit.registry import schema as S

#: The standard ablation: each set is a union of modalities.
STANDARD_SETS: dict[str, tuple[str, ...]] = {
    "structured": ("structured",),
    "structured+notes": ("structured", "notes"),
    "structured+images": ("structured", "images"),
    "all": ("structured", "notes", "images"),
}
QUALITY_COLUMNS = ["modality", "item_id", "issue", "detail"]


@dataclass(frozen=True)
class FusedFeatures:
    frame: pd.DataFrame
    groups: dict[str, list[str]]
    quality: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QUALITY_COLUMNS))

    def quality_counts(self) -> pd.DataFrame:
        """Counts per modality and issue (no ids): what a report or MLflow may show."""
        if self.quality.empty:
            return pd.DataFrame(columns=["modality", "issue", "count"])
        return self.quality.groupby(["modality", "issue"]).size().rename("count").reset_index()


def build_features(
    cohort: pd.DataFrame,
    reg: Any,
    spec: FeatureSpec,
    *,
    concept_sets: Mapping[str, list[ConceptItem]] | None = None,
    source: str = "features",
    base: Path | None = None,
    progress: Callable[[str], object] | None = None,
) -> FusedFeatures:
    """Every declared modality for the cohort's rows, joined in cohort order.

    ``reg`` is an open :class:`~toolkit.registry.store.Registry` or a cohort ``Backend``
    (``DuckDBBackend``, ``SparkBackend``): window features are SQL on the backend, note mentions
    are extracted where the backend runs (on Spark: on the executors), images are measured here.
    Image ``uri``s are resolved against the registry's folder; a lexicon file against ``base``
    (the study folder).  ``progress`` hears what is being done (``windows``, ``notes 3/12``,
    ``images 40/300``; counts only where the notes are read in this process).
    """
    say = progress or (lambda _m: None)
    backend = as_backend(reg)
    say("windows")
    windows = window_features(cohort, backend, spec, concept_sets=concept_sets, source=source)
    static = [c for c in cohort.columns if c not in (S.PERSON_ID, S.INDEX_TIME)]
    frame = feature_matrix(cohort, windows, static)
    structured = list(spec.static) + [w.name for w in spec.windows]
    groups: dict[str, list[str]] = {"structured": structured}
    quality: list[pd.DataFrame] = []
    keys = [S.PERSON_ID, S.INDEX_TIME]
    if spec.generators:
        gen = generated_features(cohort, backend, spec).to_frame()
        frame = frame.merge(gen, on=keys, how="left")
        groups["structured"] = structured + [c for c in gen.columns if c not in keys]
    if spec.note_spec is not None or spec.image_spec is not None:
        backend.register(_PERSONS, cohort[[S.PERSON_ID]].drop_duplicates())
    if spec.note_spec is not None:
        feats, q = _note_features(cohort, backend, spec.note_spec, base=base, say=say)
        frame = frame.merge(feats, on=keys, how="left")
        groups["notes"] = [c for c in feats.columns if c not in keys]
        quality.append(q.assign(detail=""))
    if spec.image_spec is not None:
        isp = spec.image_spec
        images = _query(
            backend,
            f"SELECT i.image_id, i.person_id, i.time, i.modality, i.uri FROM images i {_OF_COHORT.format(t='i')} ORDER BY i.image_id",
        )
        values, q = measure_images(
            images, backend.base, measurements=list(isp.measurements), texture=isp.texture, progress=say
        )
        feats = image_features(cohort, values, isp)
        frame = frame.merge(feats, on=keys, how="left")
        groups["images"] = [c for c in feats.columns if c not in keys]
        quality.append(q)
    frame.attrs["feature_groups"] = groups
    parts = [q[QUALITY_COLUMNS] for q in quality if not q.empty]
    qual = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=QUALITY_COLUMNS)
    return FusedFeatures(frame, groups, qual)


_PERSONS = "_fusion_persons"
_OF_COHORT = "WHERE {t}.person_id IN (SELECT person_id FROM " + _PERSONS + ")"
#: What the note step brings back from where notes are read: mentions, and quality rows (issue set).
NOTE_ROWS: dict[str, str] = {
    "note_id": "BIGINT",
    S.PERSON_ID: "BIGINT",
    S.TIME: "TIMESTAMP",
    "concept": "VARCHAR",
    "status": "VARCHAR",
    "issue": "VARCHAR",
}


def note_rows(batch: pd.DataFrame, *, spec: NoteFeatureSpec, lexicon: Lexicon) -> pd.DataFrame:
    """One batch of notes -> its mentions and its quality rows as :data:`NOTE_ROWS` (runs on the
    engine's workers: a Spark executor, or the DuckDB process batch by batch)."""
    mentions, quality = note_mentions(batch, spec, lexicon=lexicon)
    issues = pd.DataFrame({"note_id": quality["item_id"].astype("int64"), "issue": quality["issue"]})
    rows = pd.concat([mentions.assign(issue=None), issues], ignore_index=True)
    return rows.reindex(columns=list(NOTE_ROWS))


def _note_features(
    cohort: pd.DataFrame,
    backend: Any,
    ns: NoteFeatureSpec,
    *,
    base: Path | None,
    say: Callable[[str], object] = lambda _m: None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    lexicon = load_lexicon(ns.lexicon, base=base)
    sql = (
        f"SELECT n.note_id, n.person_id, n.time, n.note_type, n.text FROM notes n {_OF_COHORT.format(t='n')}"
    )
    fn: Callable[[pd.DataFrame], pd.DataFrame] = functools.partial(note_rows, spec=ns, lexicon=lexicon)
    say("notes")
    if backend.dialect == "duckdb":  # batches run here, so they can be counted (not on Spark executors)
        total = int(
            _query(backend, f"SELECT COUNT(*) AS n FROM notes n {_OF_COHORT.format(t='n')}")["n"].iloc[0]
        )
        fn = _counted(fn, total, say)
    rows = backend.map_rows(_dialect(backend, sql), fn, NOTE_ROWS)
    is_issue = rows["issue"].notna().to_numpy()
    mentions = rows.loc[~is_issue, ["note_id", S.PERSON_ID, S.TIME, "concept", "status"]]
    quality = pd.DataFrame(
        {"modality": "notes", "item_id": rows.loc[is_issue, "note_id"], "issue": rows.loc[is_issue, "issue"]}
    ).sort_values(["item_id", "issue"], kind="stable", ignore_index=True)
    feats = mention_features(cohort, mentions, ns)
    if ns.tfidf is not None or ns.embeddings:  # the text of the cohort's notes, on the driver
        feats = text_features(feats, _query(backend, sql + " ORDER BY n.note_id"), ns)
    return feats, quality


def _counted(
    fn: Callable[[pd.DataFrame], pd.DataFrame], total: int, say: Callable[[str], object]
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``fn`` that reports ``notes <done>/<total>`` after each batch."""
    done = [0]

    def counted(batch: pd.DataFrame) -> pd.DataFrame:
        out = fn(batch)
        done[0] += len(batch)
        say(f"notes {min(done[0], total)}/{total}")
        return out

    return counted


def _dialect(backend: Any, sql: str) -> str:
    if backend.dialect == "duckdb":
        return sql
    from toolkit.cohort.compile import _transpile

    return _transpile(sql, backend.dialect, pretty=False)


def ablation_sets(
    groups: dict[str, list[str]], sets: dict[str, tuple[str, ...]] | None = None
) -> dict[str, list[str]]:
    """Feature names of each ablation set; sets needing a modality the study lacks are left out."""
    out: dict[str, list[str]] = {}
    for name, mods in (sets or STANDARD_SETS).items():
        if all(m in groups for m in mods):
            out[name] = [f for m in mods for f in groups[m]]
    return out


def feature_groups(frame: pd.DataFrame, structured: list[str] | None = None) -> dict[str, list[str]]:
    """The modality groups :func:`build_features` recorded on the frame, or, for a frame without
    them, groups by name prefix (``note_``/``tfidf_``/``emb_`` notes, ``img_`` images)."""
    recorded = frame.attrs.get("feature_groups")
    if recorded:
        groups = {k: list(v) for k, v in recorded.items()}
    else:
        groups = {
            "notes": [c for c in frame.columns if c.startswith(("note_", "tfidf_", "emb_"))],
            "images": [c for c in frame.columns if c.startswith("img_")],
        }
        groups = {k: v for k, v in groups.items() if v}
        groups["structured"] = []
    if structured is not None:
        groups["structured"] = list(structured)
    return groups
