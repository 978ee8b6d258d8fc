"""``regent notes evaluate`` and ``regent images evaluate``: score the extractors against annotations
(the ``notes`` group itself is :mod:`toolkit.cli.notes`).

The synthetic registry's generator writes the annotation tables beside the registry
(``<name>.note_annotations.parquet``, ``<name>.image_annotations.parquet``); a hospital passes its
own annotated sample with ``--annotations`` (CSV or Parquet; columns in docs/features.md).  Only
annotated notes and images are read.  Output: counts and scores, never text or pixel values.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from toolkit.errors import SpecError

images_app = typer.Typer(help="Imaging features: evaluate the measurements.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)


def _annotations(registry: Path, given: Path | None, suffix: str, need: set[str]) -> pd.DataFrame:
    stem = registry.with_suffix("")
    path = given or stem.with_name(stem.name + suffix)
    if not path.is_file():
        raise SpecError(f"{path}: annotation table not found (pass --annotations FILE)")
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: not a readable CSV or Parquet table ({type(exc).__name__})") from None
    missing = need - set(frame.columns)
    if missing:
        raise SpecError(f"{path}: missing column(s) {sorted(missing)}; got {sorted(frame.columns)}")
    return frame


def _ids_sql(ids: pd.Series) -> str:
    return ", ".join(str(int(i)) for i in sorted(set(ids.dropna().astype(int))))


def notes_evaluate(
    registry: Path,
    annotations: Annotated[Path | None, typer.Option(help="Annotated mentions (CSV/Parquet)")] = None,
    lexicon: Annotated[str, typer.Option(help="Shipped lexicon name or YAML file")] = "cardiology",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Precision, recall and F1 of concept x status extraction against an annotation table."""
    from toolkit.features.notes import evaluate_mentions, extract_notes, load_lexicon
    from toolkit.registry.store import Registry

    truth = _annotations(registry, annotations, ".note_annotations.parquet", {"note_id", "concept"})
    lex = load_lexicon(lexicon, base=Path.cwd())
    with Registry(registry) as reg:
        ids = _ids_sql(truth["note_id"])
        notes = reg.sql(f"SELECT note_id, text FROM notes WHERE note_id IN ({ids or 'NULL'})")
    mentions, quality = extract_notes(notes, lex)
    scores = evaluate_mentions(mentions[mentions["concept"].isin(set(truth["concept"]))], truth)
    report = {
        "notes": len(notes),
        "quality": quality["issue"].value_counts().to_dict(),
        "scores": scores.to_dict("records"),
    }
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=float) + "\n")
        return
    out.print(f"{len(notes)} annotated notes; data quality: {report['quality'] or 'no issues'}")
    out.print(f"{'concept':<24}{'status':<20}{'tp':>7}{'fp':>6}{'fn':>6}{'prec':>7}{'recall':>7}{'F1':>7}")
    for r in scores.itertuples(index=False):
        out.print(
            f"{r.concept:<24}{r.status:<20}{r.tp:>7}{r.fp:>6}{r.fn:>6}"
            f"{r.precision:>7.3f}{r.recall:>7.3f}{r.f1:>7.3f}"
        )


@images_app.command("evaluate")
def images_evaluate(
    registry: Path,
    annotations: Annotated[Path | None, typer.Option(help="Annotated images (CSV/Parquet)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Mean absolute error of stenosis and LVEF measurements, and per-file problems counted."""
    from toolkit.features.imaging import evaluate_measurements, measure_images
    from toolkit.registry.store import Registry

    truth = _annotations(registry, annotations, ".image_annotations.parquet", {"image_id"})
    with Registry(registry) as reg:
        ids = _ids_sql(truth["image_id"])
        images = reg.sql(
            f"SELECT image_id, person_id, time, modality, uri FROM images WHERE image_id IN ({ids or 'NULL'})"
        )
    values, quality = measure_images(images, registry.resolve().parent)
    scores = evaluate_measurements(values, truth)
    report = {
        "images": len(images),
        "quality": quality["issue"].value_counts().to_dict(),
        "scores": scores.to_dict("records"),
    }
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=float) + "\n")
        return
    out.print(f"{len(images)} annotated images; problems: {report['quality'] or 'none'}")
    for r in scores.itertuples(index=False):
        out.print(
            f"{r.measure:<10} measured {r.measured}/{r.annotated} ({r.coverage:.1%}): "
            f"MAE {r.mae:.2f} points, bias {r.bias:+.2f}, 95th percentile |error| {r.p95_abs_error:.2f}"
        )
