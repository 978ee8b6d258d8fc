"""One page of a printed report as a PNG, for the docs (docs/studies.md shows one).

    python tools/report_page_png.py out/hf_mortality/report.pdf 3 docs/img/report-page.png

Chromium's own PDF viewer draws the page (the same Debian chromium that printed it, driven by
playwright); the page is cropped from the viewer's background and reduced to 64 colours so
the file stays small.  Needs the dev extra (playwright) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def page_png(pdf: Path, page: int, out: Path, *, width: int = 900) -> Path:
    from playwright.sync_api import sync_playwright

    shot = out.with_suffix(".full.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        view = browser.new_page(viewport={"width": width, "height": int(width * 1.7)})
        view.goto(f"{pdf.resolve().as_uri()}#page={page}&toolbar=0&navpanes=0&view=FitH", wait_until="load")
        view.wait_for_timeout(2500)  # the viewer draws the page after load
        view.screenshot(path=str(shot))
        browser.close()
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    shot.unlink()
    viewer = img[img.shape[0] // 2, 1]  # the viewer's background beside the page
    page = np.abs(img - viewer).sum(axis=2) > 6  # a dark rule in a figure is not the viewer
    top, bottom = _longest_run(page.mean(axis=1) > 0.5)
    left, right = _longest_run(page[top:bottom].mean(axis=0) > 0.5)
    page_img = Image.fromarray(img[top:bottom, left:right].astype("uint8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    page_img.quantize(colors=64).save(out, optimize=True)
    return out


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """[start, end) of the longest run of True (the page, not the next page's top edge)."""
    best, start = (0, 0), None
    for i, v in enumerate([*mask.tolist(), False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            best = max(best, (start, i), key=lambda r: r[1] - r[0])
            start = None
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pdf", type=Path)
    ap.add_argument("page", type=int)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    print(page_png(a.pdf, a.page, a.out))


if __name__ == "__main__":
    main()
