"""Imaging features: read DICOM safely, measure vessels and echoes, aggregate per person in windows.

Every file is read on its own: a missing, truncated, corrupt or undecodable file, or one of an
unexpected modality or shape, becomes a row of the data-quality table (image id, issue, a short
reason without header values) and never stops the run.

**Vessel stenosis (XA), by videodensitometry.**  (1) Smooth (Gaussian, sigma 1 px) and segment
the vessel as the large dark connected components (Otsu threshold; a severe stenosis may split the
lumen); together they must cover at least half the image width.  (2) Per column, the background
is the median of the pixels outside the vessel band (the vessel mask dilated by 3 px, bridged
across gaps along the interpolated centre line), so a background gradient does no harm; the
full-lumen contrast is the median over columns of (background - darkest smoothed pixel).
(3) The projected width of each column is the sum over the band of (background - pixel) /
contrast: partial-volume pixels count fractionally, so widths are sub-pixel.  (4) The centre
line (darkness-weighted centroid per column, fitted with a degree-4 polynomial) gives the local
angle; diameter = width x cos(angle).  (5) Ignoring 5 % of columns at each edge, the minimal lumen
diameter (MLD) is the vertex of a parabola fitted to the 7 columns around the narrowest one;
the reference diameter is the median diameter outside +-15 % of the width around the MLD.
Percent diameter stenosis = 100 x (1 - MLD / reference).

**LVEF (US, two frames: end-diastole, end-systole), by the area-length method.**  Per frame the
cavity is the dark component containing the image centre; its area is the sum of partial-volume
fractions between blood and myocardium intensity over the cavity dilated by 2 px; its long axis L
is 4 x sqrt(largest eigenvalue of the fraction-weighted coordinate covariance).  Volume =
8 A^2 / (3 pi L); LVEF = 100 x (EDV - ESV) / EDV.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from toolkit.cohort.spec import Window
from toolkit.errors import ToolkitError
from toolkit.registry import schema as S
from toolkit.specs import Frozen

Measurement = Literal["stenosis", "lvef"]
ImageAgg = Literal["latest", "worst", "count"]
#: Which modality each measurement reads, and which direction is worse.
MEASUREMENTS: dict[str, tuple[str, str]] = {"stenosis": ("XA", "max"), "lvef": ("US", "min")}


class ImageFeatureSpec(Frozen):
    """``features.images`` in study.yaml."""

    windows: list[Window] = Field(default_factory=lambda: [Window(start="-365d", end="0d")])
    measurements: list[Measurement] = Field(default_factory=lambda: _all_measurements())
    aggs: list[ImageAgg] = Field(default_factory=lambda: _default_aggs())
    texture: bool = Field(
        False, description="Also generic intensity and texture (GLCM) features, latest image."
    )


def _all_measurements() -> list[Measurement]:
    return ["stenosis", "lvef"]


def _default_aggs() -> list[ImageAgg]:
    return ["latest", "worst"]


class ImageReadError(ToolkitError, ValueError):
    """One image could not be read or measured; ``issue`` names the kind for the quality table."""

    def __init__(self, issue: str, message: str) -> None:
        super().__init__(message)
        self.issue = issue


@dataclass(frozen=True)
class DicomImage:
    modality: str
    pixels: np.ndarray
    warnings: tuple[str, ...] = ()


def read_dicom(path: Path | str) -> DicomImage:
    """Read one DICOM file and decode its pixels, or raise :class:`ImageReadError` naming the issue.

    Files without the DICOM preamble are retried once with ``force``; pydicom's warnings (odd VRs,
    padding) are collected, not raised.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError("missing_file", f"{path.name}: file not found")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            ds = _read_forced(path)
        except Exception as exc:
            raise ImageReadError("corrupt", f"{path.name}: unreadable DICOM ({type(exc).__name__})") from None
        if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise ImageReadError("no_pixel_data", f"{path.name}: no pixel data")
        try:
            pixels = ds.pixel_array
        except ValueError as exc:
            issue = "truncated" if "less than expected" in str(exc) or "truncat" in str(exc) else "corrupt"
            raise ImageReadError(
                issue, f"{path.name}: pixel data unreadable ({type(exc).__name__})"
            ) from None
        except (RuntimeError, NotImplementedError) as exc:
            raise ImageReadError(
                "unsupported_encoding",
                f"{path.name}: no decoder for this transfer syntax ({type(exc).__name__})",
            ) from None
        except Exception as exc:
            raise ImageReadError(
                "corrupt", f"{path.name}: pixel data unreadable ({type(exc).__name__})"
            ) from None
    return DicomImage(
        str(ds.get("Modality", "") or ""), np.asarray(pixels), tuple(str(w.category.__name__) for w in caught)
    )


def _read_forced(path: Path) -> Any:
    """A file without the DICOM preamble: accepted only if forced reading finds DICOM elements."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:
        raise ImageReadError("not_dicom", f"{path.name}: not a DICOM file ({type(exc).__name__})") from None
    if "PixelData" not in ds and "SOPClassUID" not in ds:
        raise ImageReadError("not_dicom", f"{path.name}: not a DICOM file (no DICOM preamble or elements)")
    return ds


# --- measurements ----------------------------------------------------------------------------
@dataclass(frozen=True)
class VesselMeasurement:
    stenosis_pct: float
    mld_px: float
    reference_px: float
    column: int


def measure_stenosis(pixels: np.ndarray) -> VesselMeasurement:
    """Percent diameter stenosis of the one vessel in a single-frame angiogram (see module docstring)."""
    from scipy.ndimage import binary_dilation, gaussian_filter, label, uniform_filter1d
    from skimage.filters import threshold_otsu

    if pixels.ndim != 2:
        raise ImageReadError(
            "unexpected_shape", f"expected a single-frame grey image; got shape {pixels.shape}"
        )
    img = pixels.astype(float)
    h, w = img.shape
    if h < 16 or w < 32 or np.ptp(img) == 0:
        raise ImageReadError("no_vessel_found", f"image too small or flat ({h}x{w})")
    smooth = gaussian_filter(img, 1.0)
    labels, count = label(smooth < threshold_otsu(smooth))
    if count == 0:
        raise ImageReadError("no_vessel_found", "no dark structure in the image")
    # a severe stenosis can split the lumen in two: keep every large dark piece
    areas = np.bincount(labels.ravel())[1:]
    vessel = np.isin(labels, 1 + np.nonzero(areas >= 0.2 * areas.max())[0])
    has = vessel.any(axis=0)
    if has.sum() < 0.5 * w:
        raise ImageReadError("no_vessel_found", "no dark structure spans half the image width")
    cols = np.arange(w)
    rows = np.arange(h)[:, None]
    mid = (vessel * rows).sum(axis=0) / np.maximum(vessel.sum(axis=0), 1)
    mid = np.interp(cols, cols[has], mid[has])
    half = np.median(vessel.sum(axis=0)[has]) / 2 + 3
    band = binary_dilation(vessel, iterations=3) | (np.abs(rows - mid[None, :]) <= half)
    background = _column_median(img, ~band)
    darkest = np.where(band, smooth, np.inf).min(axis=0)
    ok = np.isfinite(background) & np.isfinite(darkest)
    contrast = float(np.median((background - darkest)[ok]))
    if contrast <= 0:
        raise ImageReadError("no_vessel_found", "vessel not darker than its background")
    dark = np.where(band, (background[None, :] - img) / contrast, 0.0)
    width = dark.sum(axis=0)
    weights = np.clip(dark, 0, None)
    centre = (weights * rows).sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-9)
    edge = max(2, round(0.05 * w))
    inner = cols[edge : w - edge]
    good = inner[ok[inner]]
    coef = np.polyfit(good, centre[good], 4)
    slope = np.polyval(np.polyder(coef), cols)
    diameter = width / np.sqrt(1 + slope**2)
    d = diameter[good]
    k = int(np.argmin(uniform_filter1d(d, 3, mode="nearest")))
    lo, hi = max(0, k - 3), min(len(d), k + 4)
    mld = float(d[k])
    if hi - lo >= 5:
        a, b, c = np.polyfit(good[lo:hi] - good[k], d[lo:hi], 2)
        if a > 0:
            mld = float(np.clip(c - b * b / (4 * a), d[lo:hi].min() - 1.0, d[k]))
    far = np.abs(good - good[k]) > 0.15 * w
    reference = float(np.median(d[far])) if far.sum() >= 5 else float(np.median(d))
    if reference <= 0:
        raise ImageReadError("no_vessel_found", "reference diameter is not positive")
    pct = float(np.clip(100 * (1 - mld / reference), 0, 100))
    return VesselMeasurement(pct, mld, reference, int(good[k]))


def _column_median(img: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Median of each column over the pixels where ``use`` is true (NaN for a column with none)."""
    ordered = np.sort(np.where(use, img, np.inf), axis=0)
    k = use.sum(axis=0)
    cols = np.arange(img.shape[1])
    lo = ordered[np.maximum((k - 1) // 2, 0), cols]
    hi = ordered[np.maximum(k // 2, 0), cols]
    return np.where(k > 0, (lo + hi) / 2, np.nan)


def _cavity_volume(frame: np.ndarray) -> float:
    from scipy.ndimage import distance_transform_edt, gaussian_filter, label
    from skimage.filters import threshold_otsu

    img = frame.astype(float)
    smooth = gaussian_filter(img, 1.0)
    labels, _ = label(smooth < threshold_otsu(smooth))
    h, w = img.shape
    centre = labels[h // 2, w // 2]
    if centre == 0:
        raise ImageReadError("no_cavity_found", "no dark cavity at the image centre")
    cavity = labels == centre
    if cavity[0].any() or cavity[-1].any() or cavity[:, 0].any() or cavity[:, -1].any():
        raise ImageReadError("no_cavity_found", "the central dark region touches the image border")
    outside = distance_transform_edt(~cavity)
    ring = (outside > 2) & (outside <= 6)
    core = distance_transform_edt(cavity) > 3
    tissue, blood = float(np.median(img[ring])), float(np.median(img[core] if core.any() else img[cavity]))
    band = outside <= 2
    frac = np.where(band, np.clip((tissue - img) / (tissue - blood), 0, 1), 0.0)
    area = frac.sum()
    yy, xx = np.mgrid[0:h, 0:w]
    my, mx = (frac * yy).sum() / area, (frac * xx).sum() / area
    cov = np.cov(np.vstack([(yy - my).ravel(), (xx - mx).ravel()]), aweights=frac.ravel(), bias=True)
    length = 4 * np.sqrt(np.linalg.eigvalsh(cov).max())
    return float(8 * area**2 / (3 * np.pi * length))


def measure_lvef(pixels: np.ndarray) -> float:
    """LVEF (%) from a two-frame echo (end-diastole, end-systole) by the area-length method."""
    if pixels.ndim != 3 or pixels.shape[0] != 2:
        raise ImageReadError("unexpected_shape", f"expected two frames (ED, ES); got shape {pixels.shape}")
    v = sorted((_cavity_volume(f) for f in pixels), reverse=True)
    return float(100 * (v[0] - v[1]) / v[0])


def texture_features(pixels: np.ndarray) -> dict[str, float]:
    """Generic intensity statistics and grey-level co-occurrence texture of the first frame."""
    from skimage.feature import graycomatrix, graycoprops

    img = pixels[0] if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4) else pixels
    img = img.astype(float) if img.ndim == 2 else img.astype(float).mean(axis=-1)
    lo, hi = np.percentile(img, [1, 99])
    scaled = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)
    q = np.minimum((scaled * 32).astype(np.uint8), 31)
    glcm = graycomatrix(q, distances=[1], angles=[0, np.pi / 2], levels=32, symmetric=True, normed=True)
    out = {
        "mean": float(scaled.mean()),
        "std": float(scaled.std()),
        "p05": float(np.percentile(scaled, 5)),
        "p50": float(np.percentile(scaled, 50)),
        "p95": float(np.percentile(scaled, 95)),
    }
    for prop in ("contrast", "homogeneity", "energy", "correlation"):
        out[f"glcm_{prop}"] = float(np.nan_to_num(graycoprops(glcm, prop).mean()))
    return out


def measure_images(
    images: pd.DataFrame,
    base: Path,
    *,
    measurements: list[str] | None = None,
    texture: bool = False,
    progress: Callable[[str], object] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every image row (image_id, person_id, time, modality, uri relative to ``base``).

    Returns ``(values, quality)``: values in long form (image_id, person_id, time, measure, value);
    quality with one row per problem (modality 'images', item_id, issue, detail).  ``progress``
    hears ``images <done>/<total>`` about a hundred times.
    """
    wanted = set(measurements or MEASUREMENTS)
    values: list[tuple[Any, Any, Any, str, float]] = []
    quality: list[tuple[str, Any, str, str]] = []
    total, every = len(images), max(1, len(images) // 100)
    for i, r in enumerate(images.itertuples(index=False)):
        if progress is not None and (i % every == 0 or i == total - 1):
            progress(f"images {i + 1}/{total}")
        image_id, pid, when = r.image_id, getattr(r, S.PERSON_ID), getattr(r, S.TIME)
        if r.uri is None or (isinstance(r.uri, float) and np.isnan(r.uri)):
            quality.append(("images", image_id, "missing_file", "no uri"))
            continue
        try:
            image = read_dicom(base / str(r.uri))
            quality += [("images", image_id, "dicom_warning", w) for w in image.warnings]
            modality = image.modality or str(r.modality or "")
            done = False
            for name, (mod, _) in MEASUREMENTS.items():
                if name in wanted and modality == mod:
                    value = (
                        measure_stenosis(image.pixels).stenosis_pct
                        if name == "stenosis"
                        else measure_lvef(image.pixels)
                    )
                    values.append((image_id, pid, when, name, value))
                    done = True
            if texture:
                values += [
                    (image_id, pid, when, f"tex_{k}", v) for k, v in texture_features(image.pixels).items()
                ]
                done = True
            if not done:
                quality.append(
                    ("images", image_id, "other_modality", f"modality {modality or 'unknown'} not measured")
                )
        except ImageReadError as exc:
            quality.append(("images", image_id, exc.issue, str(exc)))
        except Exception as exc:  # a measurement bug on one odd image must not stop the run
            quality.append(("images", image_id, "measurement_failed", type(exc).__name__))
    vals = pd.DataFrame(values, columns=["image_id", S.PERSON_ID, S.TIME, "measure", "value"])
    return vals, pd.DataFrame(quality, columns=["modality", "item_id", "issue", "detail"])


def image_features(cohort: pd.DataFrame, values: pd.DataFrame, spec: ImageFeatureSpec) -> pd.DataFrame:
    """Per cohort row and window: ``img_<measure>_<agg>`` (latest; worst = max stenosis / min LVEF;
    count), plus ``img_<measure>_measured`` (0/1) so models can tell 'not imaged' from a value."""
    keys = cohort[[S.PERSON_ID, S.INDEX_TIME]].drop_duplicates().reset_index(drop=True)
    out = keys.copy()
    m = values.merge(keys, on=S.PERSON_ID)
    days = (m[S.TIME] - m[S.INDEX_TIME]).dt.total_seconds() / 86400.0
    names = list(spec.measurements) + sorted(
        {v for v in values["measure"].unique() if str(v).startswith("tex_")}
    )
    for w in spec.windows:
        inside = days <= w.end_days
        if w.start_days is not None:
            inside &= days >= w.start_days
        sel = m[inside.to_numpy()].sort_values([S.TIME, "value"], kind="stable")
        suffix = "" if len(spec.windows) == 1 else "_" + _label(w)
        g = sel.groupby([S.PERSON_ID, S.INDEX_TIME, "measure"])["value"]
        stats = pd.DataFrame({"latest": g.last(), "count": g.size(), "max": g.max(), "min": g.min()})
        present = set(stats.index.get_level_values("measure"))
        for name in names:
            part = (
                stats.xs(name, level="measure") if name in present else stats.iloc[0:0].droplevel("measure")
            )
            joined = keys.join(part, on=[S.PERSON_ID, S.INDEX_TIME])
            for agg in ["latest"] if name.startswith("tex_") else spec.aggs:
                how = MEASUREMENTS[name][1] if agg == "worst" else agg
                col = joined[how].fillna(0).astype(int) if agg == "count" else joined[how].astype(float)
                out[f"img_{name}_{agg}{suffix}"] = col.to_numpy()
            if not name.startswith("tex_"):
                out[f"img_{name}_measured{suffix}"] = (joined["count"].fillna(0) > 0).astype(int).to_numpy()
    return out


def _label(w: Window) -> str:
    start = "all" if w.start == "all" else str(w.start).replace("-", "m")
    return f"{start}_{str(w.end).replace('-', 'm')}"


def evaluate_measurements(values: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute error (and bias, coverage) per measurement against an annotation table with
    image_id and true values in ``stenosis_pct`` / ``lvef_pct`` columns."""
    out = []
    for name, col in (("stenosis", "stenosis_pct"), ("lvef", "lvef_pct")):
        if col not in truth.columns:
            continue
        t = truth[["image_id", col]].dropna()
        if t.empty:
            continue
        v = values[values["measure"] == name][["image_id", "value"]]
        j = t.merge(v, on="image_id")
        err = j["value"] - j[col]
        out.append(
            {
                "measure": name,
                "annotated": len(t),
                "measured": len(j),
                "coverage": len(j) / len(t),
                "mae": float(err.abs().mean()) if len(j) else float("nan"),
                "bias": float(err.mean()) if len(j) else float("nan"),
                "p95_abs_error": float(err.abs().quantile(0.95)) if len(j) else float("nan"),
            }
        )
    return pd.DataFrame(out)
