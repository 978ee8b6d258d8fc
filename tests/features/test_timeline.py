"""The notebook patient timeline: every kind of data on one axis, concepts highlighted."""

from __future__ import annotations

from pathlib import Path

from toolkit.features.timeline import patient_timeline
from toolkit.registry import Registry


def test_timeline_shows_events_labs_notes_and_images(hf_registry: Path) -> None:
    with Registry(hf_registry) as reg:
        pid = int(
            reg.sql("SELECT person_id FROM images WHERE modality = 'XA' ORDER BY image_id LIMIT 1").iloc[0, 0]
        )
        t = patient_timeline(reg, pid)
        n_events = reg.count("events")
    assert 0 < len(t.events) < n_events and len(t.notes) and len(t.images)
    html = t._repr_html_()
    assert html.count("<svg") == 1 and "data:image/png;base64," in html
    assert "LOINC:2160-0 (mg/dL)" in html  # a lab lane with its unit
    mentions = sum(len(m) for m in t.notes["mentions"])
    assert mentions > 0 and html.count("<mark ") == mentions
    assert 'title="dyspnea: present"' in html


def test_timeline_of_a_person_without_data(hf_registry: Path) -> None:
    with Registry(hf_registry) as reg:
        t = patient_timeline(reg, -1)
    assert "no events, notes or images" in t._repr_html_()
