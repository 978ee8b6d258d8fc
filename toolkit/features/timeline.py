"""One person's registry on one time axis, for notebooks: events, labs, notes and image thumbnails.

>>> with Registry("data/hf.duckdb") as reg:          # doctest: +SKIP
...     patient_timeline(reg, 42)                      # renders in JupyterLab

Lanes: coded events by namespace (diagnoses, drugs, visits, procedures, death), one sparkline per
lab, the notes (each a marker; below the axis its text with every concept highlighted in the colour
of its assertion), and the images (thumbnails; a red mark where a file could not be read, with the
issue).  The HTML is self-contained (inline SVG and PNG); nothing is logged or written.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.features.imaging import ImageReadError, read_dicom
from toolkit.features.lexicon import Lexicon, load_lexicon
from toolkit.features.mentions import extract
from toolkit.features.notes import normalise

#: A mention is coloured by the first attribute of its status ("negated_historical": negated).
STATUS_COLOURS = {
    "present": "#c6efce",
    "negated": "#f4cccc",
    "uncertain": "#fff2cc",
    "hypothetical": "#fce5cd",
    "historical": "#d9d2e9",
    "family": "#cfe2f3",
    "other": "#d0e0e3",
}
WIDTH, LEFT, LANE = 960, 150, 26


@dataclass(frozen=True)
class Timeline:
    person_id: int
    events: pd.DataFrame
    notes: pd.DataFrame  # note_id, time, note_type, text, mentions (list of (start, end, concept, status))
    images: pd.DataFrame  # image_id, time, modality, thumbnail (PNG bytes or None), issue

    def _repr_html_(self) -> str:
        return render_html(self)


def patient_timeline(reg: Any, person_id: int, *, lexicon: Lexicon | str = "cardiology") -> Timeline:
    """Collect one person's events, notes (with extracted mentions) and images from an open registry."""
    pid = int(person_id)
    lex = load_lexicon(lexicon) if isinstance(lexicon, str) else lexicon
    events = reg.sql(
        "SELECT time, code, numeric_value, unit FROM events WHERE person_id = ? ORDER BY time, code", [pid]
    )
    notes = reg.sql(
        "SELECT note_id, time, note_type, text FROM notes WHERE person_id = ? ORDER BY time, note_id", [pid]
    )
    texts, mentions = [], []
    for raw in notes["text"]:
        text, _ = normalise(raw, max_chars=20_000)
        texts.append(text)
        mentions.append([(m.start, m.end, m.concept, m.label()) for m in extract(text, lex)])
    notes = notes.assign(text=texts, mentions=mentions)
    images = reg.sql(
        "SELECT image_id, time, modality, uri FROM images WHERE person_id = ? ORDER BY time", [pid]
    )
    thumbs: list[bytes | None] = []
    issues: list[str | None] = []
    for uri in images["uri"]:
        try:
            thumbs.append(_thumbnail(read_dicom(Path(reg.path).parent / str(uri)).pixels))
            issues.append(None)
        except ImageReadError as exc:
            thumbs.append(None)
            issues.append(exc.issue)
    images = images.drop(columns=["uri"]).assign(thumbnail=thumbs, issue=issues)
    return Timeline(pid, events, notes, images)


def _thumbnail(pixels: np.ndarray, height: int = 40) -> bytes:
    from PIL import Image

    img = pixels[0] if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4) else pixels
    img = img.astype(float) if img.ndim == 2 else img.astype(float).mean(axis=-1)
    lo, hi = np.percentile(img, [1, 99])
    grey = (np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)
    pic = Image.fromarray(grey)
    pic = pic.resize((max(1, round(pic.width * height / pic.height)), height))
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return buf.getvalue()


def _lanes(t: Timeline) -> list[tuple[str, pd.DataFrame]]:
    ev = t.events
    lanes: list[tuple[str, pd.DataFrame]] = []
    coded = ev[ev["numeric_value"].isna()]
    for ns, part in coded.groupby(coded["code"].str.split(":").str[0], sort=True):
        lanes.append((str(ns), part))
    labs = ev[ev["numeric_value"].notna()]
    for code, part in labs.groupby("code", sort=True):
        lanes.append(
            (f"{code} ({part['unit'].dropna().iloc[0] if part['unit'].notna().any() else ''})", part)
        )
    return lanes


def render_html(t: Timeline) -> str:
    """Self-contained HTML: an SVG time axis with one lane per kind, then the highlighted notes."""
    times = pd.concat([t.events["time"], t.notes["time"], t.images["time"]])
    if times.empty:
        return f"<p>Person {t.person_id}: no events, notes or images.</p>"
    t0, t1 = times.min(), times.max()
    span = max((t1 - t0).total_seconds(), 86400.0)

    def x(ts: pd.Timestamp) -> float:
        return LEFT + (ts - t0).total_seconds() / span * (WIDTH - LEFT - 20)

    lanes = _lanes(t)
    rows = len(lanes) + 2
    height = rows * LANE + 60
    svg = [f'<svg width="{WIDTH}" height="{height}" style="font:11px sans-serif">']
    for i, (label, part) in enumerate(lanes):
        y = 20 + i * LANE
        svg.append(f'<text x="4" y="{y + 4}">{html.escape(label[:24])}</text>')
        svg.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - 20}" y2="{y}" stroke="#eee"/>')
        if part["numeric_value"].notna().any():
            v = part["numeric_value"].to_numpy(float)
            lo, hi = np.nanmin(v), np.nanmax(v)
            pts = " ".join(
                f"{x(ts):.1f},{y + 8 - 16 * ((val - lo) / (hi - lo) if hi > lo else 0.5):.1f}"
                for ts, val in zip(part["time"], v, strict=True)
            )
            svg.append(f'<polyline points="{pts}" fill="none" stroke="#1f4e79"/>')
            for ts, val in zip(part["time"], v, strict=True):
                svg.append(
                    f'<circle cx="{x(ts):.1f}" cy="{y + 8 - 16 * ((val - lo) / (hi - lo) if hi > lo else 0.5):.1f}" r="2" fill="#1f4e79"><title>{ts:%Y-%m-%d} {val:g}</title></circle>'
                )
        else:
            for ts, code in zip(part["time"], part["code"], strict=True):
                svg.append(
                    f'<rect x="{x(ts) - 2:.1f}" y="{y - 6}" width="4" height="12" fill="#7f6000"><title>{ts:%Y-%m-%d} {html.escape(code)}</title></rect>'
                )
    y = 20 + len(lanes) * LANE
    svg.append(f'<text x="4" y="{y + 4}">notes</text>')
    for _, n in t.notes.iterrows():
        svg.append(
            f'<a href="#note-{n.note_id}"><circle cx="{x(n.time):.1f}" cy="{y}" r="5" fill="#38761d"><title>{n.time:%Y-%m-%d} {html.escape(str(n.note_type))}</title></circle></a>'
        )
    y += LANE
    svg.append(f'<text x="4" y="{y + 4}">images</text>')
    for _, im in t.images.iterrows():
        if im.thumbnail is not None:
            b64 = base64.b64encode(im.thumbnail).decode()
            svg.append(
                f'<image x="{x(im.time) - 10:.1f}" y="{y - 10}" height="40" href="data:image/png;base64,{b64}"><title>{im.time:%Y-%m-%d} {im.modality}</title></image>'
            )
        else:
            svg.append(
                f'<text x="{x(im.time):.1f}" y="{y + 4}" fill="#c00">!<title>{im.time:%Y-%m-%d} {im.modality}: {im.issue}</title></text>'
            )
    svg.append(f'<text x="{LEFT}" y="{height - 4}">{t0:%Y-%m-%d}</text>')
    svg.append(f'<text x="{WIDTH - 90}" y="{height - 4}">{t1:%Y-%m-%d}</text></svg>')
    legend = " ".join(
        f'<span style="background:{c};padding:1px 4px">{a}</span>' for a, c in STATUS_COLOURS.items()
    )
    notes = "".join(_note_html(n) for _, n in t.notes.iterrows())
    return f"<div><h4>Person {t.person_id}</h4>{''.join(svg)}<p>Status (first attribute): {legend}</p>{notes}</div>"


def _note_html(n: Any) -> str:
    text, out, pos = n.text, [], 0
    for s, e, concept, status in n.mentions:
        out.append(html.escape(text[pos:s]))
        out.append(
            f'<mark style="background:{STATUS_COLOURS[status.split("_")[0]]}" title="{concept}: {status}">'
            f"{html.escape(text[s:e])}</mark>"
        )
        pos = e
    out.append(html.escape(text[pos:]))
    return (
        f'<details id="note-{n.note_id}"><summary>{n.time:%Y-%m-%d} {html.escape(str(n.note_type))} '
        f"({len(n.mentions)} concepts)</summary><pre style='white-space:pre-wrap'>{''.join(out)}</pre></details>"
    )
