"""Imaging features: measurement accuracy against the generator's truth, safe reading, aggregation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.features.imaging import (
    DicomImage,
    ImageFeatureSpec,
    ImageReadError,
    evaluate_measurements,
    image_features,
    measure_images,
    measure_lvef,
    measure_stenosis,
    read_dicom,
    texture_features,
)
from toolkit.registry import Registry
from toolkit.registry.synth.images import render_echo, render_vessel


@pytest.fixture(scope="module")
def measured(hf_registry: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with Registry(hf_registry) as reg:
        images = reg.sql("SELECT image_id, person_id, time, modality, uri FROM images")
    values, quality = measure_images(images, hf_registry.parent)
    stem = hf_registry.with_suffix("")
    return values, quality, pd.read_parquet(stem.with_name(stem.name + ".image_annotations.parquet"))


def test_stenosis_and_lvef_within_5_points_of_the_truth(measured) -> None:  # type: ignore[no-untyped-def]
    """Done-criterion: stenosis MAE <= 5 percentage points against the generator's truth."""
    values, _, truth = measured
    scores = evaluate_measurements(values, truth).set_index("measure")
    assert scores.loc["stenosis", "mae"] <= 5.0 and scores.loc["lvef", "mae"] <= 5.0
    assert scores.loc["stenosis", "annotated"] > 500
    # every intact image is measured; the planted defects are the only gaps
    intact = truth[truth["defect"].isna() & truth["kind"].isin(["vessel", "echo"])]
    assert set(intact["image_id"]) <= set(values["image_id"])


def test_planted_defects_are_counted_per_file_never_raised(measured) -> None:  # type: ignore[no-untyped-def]
    _, quality, truth = measured
    issue = quality.set_index("item_id")["issue"]
    for defect, expected in (
        ("missing", "missing_file"),
        ("truncated", "truncated"),
        ("corrupt", "not_dicom"),
    ):
        ids = truth.loc[truth["defect"] == defect, "image_id"]
        assert len(ids) and (issue.loc[ids] == expected).all(), defect
    other = truth.loc[(truth["kind"] == "other") & truth["defect"].isna(), "image_id"]
    assert (issue.loc[other] == "other_modality").all()


@pytest.mark.parametrize("shape", [(64, 128), (96, 192), (48, 200)])
def test_stenosis_measurement_across_sizes_and_grades(
    shape: tuple[int, int], rng: np.random.Generator
) -> None:
    grades = rng.uniform(0, 95, 40)
    err = [measure_stenosis(render_vessel(rng, g, shape)).stenosis_pct - g for g in grades]
    assert np.mean(np.abs(err)) < 3.0 and np.max(np.abs(err)) < 8.0


def test_lvef_by_area_length(rng: np.random.Generator) -> None:
    lvef = rng.uniform(15, 70, 20)
    err = [measure_lvef(render_echo(rng, f)) - f for f in lvef]
    assert np.max(np.abs(err)) < 2.0
    with pytest.raises(ImageReadError, match="expected two frames"):
        measure_lvef(render_echo(rng, 40.0)[:1])


def test_images_without_a_vessel_are_refused_by_name(rng: np.random.Generator) -> None:
    with pytest.raises(ImageReadError) as exc:
        measure_stenosis(np.full((64, 128), 100, dtype=np.uint8))
    assert exc.value.issue == "no_vessel_found"
    with pytest.raises(ImageReadError) as exc:
        measure_stenosis(np.zeros((2, 64, 128)))
    assert exc.value.issue == "unexpected_shape"


def test_pydicom_test_files_load_or_fail_cleanly_one_by_one() -> None:
    """Every real file pydicom ships (CT, MR, RT, US, compressed, big-endian, truncated...): a
    decoded image or an ImageReadError naming the issue -- never another exception or a warning."""
    from pydicom.data import get_testdata_file, get_testdata_files

    outcomes: dict[str, str] = {}
    for path in get_testdata_files():
        if os.path.isdir(path):
            continue
        try:
            image = read_dicom(path)
        except ImageReadError as exc:
            outcomes[os.path.basename(path)] = exc.issue
        else:
            assert isinstance(image, DicomImage) and image.pixels.size > 0
            outcomes[os.path.basename(path)] = "ok"
    assert len(outcomes) > 100
    assert outcomes["CT_small.dcm"] == outcomes["MR_small.dcm"] == "ok"
    assert outcomes["MR_truncated.dcm"] == "truncated"
    assert outcomes["rtplan.dcm"] == "no_pixel_data" and outcomes["README.txt"] == "not_dicom"
    assert sum(v == "ok" for v in outcomes.values()) > 50
    ct = read_dicom(get_testdata_file("CT_small.dcm"))
    assert ct.modality == "CT" and ct.pixels.shape == (128, 128)
    assert set(texture_features(ct.pixels)) >= {"mean", "glcm_contrast", "glcm_homogeneity"}


def test_a_run_survives_a_folder_of_odd_files(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    (tmp_path / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 10)
    (tmp_path / "trunc.dcm").write_bytes(Path(get_testdata_file("MR_truncated.dcm")).read_bytes())
    t = pd.Timestamp("2020-01-01")
    images = pd.DataFrame(
        {"image_id": [1, 2, 3, 4, 5], "person_id": [1] * 5, "time": [t] * 5, "modality": ["CT", "XA", "MR", "XA", None],
         "uri": ["ct.dcm", "junk.dcm", "trunc.dcm", "gone.dcm", None]}
    )  # fmt: skip
    values, quality = measure_images(images, tmp_path, texture=True)
    assert dict(zip(quality["item_id"], quality["issue"], strict=True)) == {
        2: "not_dicom", 3: "truncated", 4: "missing_file", 5: "missing_file"
    }  # fmt: skip
    assert set(values["image_id"]) == {1} and values["measure"].str.startswith("tex_").all()


def test_latest_and_worst_per_person_in_windows() -> None:
    t0 = pd.Timestamp("2020-06-01")
    day = pd.Timedelta(days=1)
    cohort = pd.DataFrame({"person_id": [1, 2], "index_time": [t0, t0]})
    values = pd.DataFrame(
        {"image_id": [1, 2, 3, 4, 5], "person_id": [1, 1, 1, 1, 2],
         "time": [t0 - 400 * day, t0 - 100 * day, t0 - 10 * day, t0 - 10 * day, t0 + day],
         "measure": ["stenosis"] * 4 + ["lvef"], "value": [95.0, 70.0, 40.0, 60.0, 30.0]}
    )  # fmt: skip
    feats = image_features(cohort, values, ImageFeatureSpec()).set_index("person_id")
    # ties at the latest time: ordered by value, the larger is 'latest' (deterministic)
    assert feats.loc[1, "img_stenosis_latest"] == 60.0 and feats.loc[1, "img_stenosis_worst"] == 70.0
    assert feats.loc[1, "img_stenosis_measured"] == 1 and feats.loc[2, "img_stenosis_measured"] == 0
    assert np.isnan(feats.loc[2, "img_lvef_latest"])  # after index: not used
