"""The joined feature matrix of a study: structured, note and imaging features on one row per cohort row.

:func:`build_features` runs each modality the study's ``features.modalities`` lists and returns
the matrix, which feature belongs to which modality (the ablation analysis compares the sets)
and the data-quality table (one row per note or image problem; counts in :meth:`quality_counts`).

>>> fused = build_features(cohort.cohort, reg, spec.features, base=study_dir)  # doctest: +SKIP
>>> fused.groups["notes"][:2]                                                   # doctest: +SKIP
['note_cabg_historical', 'note_cardiac_arrest_historical']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.cohort.spec import ConceptItem
from toolkit.features.imaging import image_features, measure_images
from toolkit.features.notes import load_lexicon, note_features
from toolkit.features.windows import FeatureSpec, feature_matrix, generated_features, window_features
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
) -> FusedFeatures:
    """Every declared modality for the cohort's rows, joined in cohort order.

    ``reg`` is an open :class:`~toolkit.registry.store.Registry`; image ``uri``s are resolved
    against the registry file's folder; a lexicon file against ``base`` (the study folder).
    """
    windows = window_features(cohort, reg.con, spec, concept_sets=concept_sets, source=source)
    static = [c for c in cohort.columns if c not in (S.PERSON_ID, S.INDEX_TIME)]
    frame = feature_matrix(cohort, windows, static)
    structured = list(spec.static) + [w.name for w in spec.windows]
    groups: dict[str, list[str]] = {"structured": structured}
    quality: list[pd.DataFrame] = []
    keys = [S.PERSON_ID, S.INDEX_TIME]
    if spec.generators:
        gen = generated_features(cohort, reg.con, spec).to_frame()
        frame = frame.merge(gen, on=keys, how="left")
        groups["structured"] = structured + [c for c in gen.columns if c not in keys]
    persons = cohort[[S.PERSON_ID]].drop_duplicates()
    reg.con.execute("SELECT 1").fetchall()  # finish any pending result before register()
    reg.con.register("_fusion_persons", persons)
    try:
        if spec.note_spec is not None:
            ns = spec.note_spec
            notes = reg.con.execute(
                "SELECT n.note_id, n.person_id, n.time, n.note_type, n.text FROM notes n "
                "SEMI JOIN _fusion_persons p ON n.person_id = p.person_id ORDER BY n.note_id"
            ).df()
            lexicon = load_lexicon(ns.lexicon, base=base)
            feats, q = note_features(cohort, notes, ns, lexicon=lexicon)
            frame = frame.merge(feats, on=keys, how="left")
            groups["notes"] = [c for c in feats.columns if c not in keys]
            quality.append(q.assign(detail=""))
        if spec.image_spec is not None:
            isp = spec.image_spec
            images = reg.con.execute(
                "SELECT i.image_id, i.person_id, i.time, i.modality, i.uri FROM images i "
                "SEMI JOIN _fusion_persons p ON i.person_id = p.person_id ORDER BY i.image_id"
            ).df()
            values, q = measure_images(
                images, Path(reg.path).parent, measurements=list(isp.measurements), texture=isp.texture
            )
            feats = image_features(cohort, values, isp)
            frame = frame.merge(feats, on=keys, how="left")
            groups["images"] = [c for c in feats.columns if c not in keys]
            quality.append(q)
    finally:
        reg.con.unregister("_fusion_persons")
    frame.attrs["feature_groups"] = groups
    parts = [q[QUALITY_COLUMNS] for q in quality if not q.empty]
    qual = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=QUALITY_COLUMNS)
    return FusedFeatures(frame, groups, qual)


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
