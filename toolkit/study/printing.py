"""The report printed to PDF through headless Chromium (``regent study report OUT --pdf``).

Chromium lays the report out with its print stylesheet (A4, page numbers, each major part on a
new page, table headers repeated): the PDF is what a reader gets from the browser's Print.  The
browser is Debian's ``chromium`` (what CI installs), or the one ``REGENT_CHROMIUM`` names; it is
started with no network access beyond the file itself and a throw-away profile.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from toolkit.errors import ToolkitError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class PrintError(ToolkitError, RuntimeError):
    """The report could not be printed (no browser, or the browser failed)."""


def chromium() -> str:
    """The browser to print with: ``REGENT_CHROMIUM``, else the first of :data:`BROWSERS` on PATH."""
    named = os.environ.get("REGENT_CHROMIUM")
    if named:
        if not Path(named).is_file():
            raise PrintError(f"REGENT_CHROMIUM={named}: no such file")
        return named
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise PrintError(
        "printing the report needs Chromium: install it (Debian/Ubuntu: apt-get install chromium) "
        "or set REGENT_CHROMIUM to a Chromium or Chrome executable"
    )


def print_pdf(html: Path, pdf: Path, *, timeout: float = 180) -> int:
    """Print ``html`` to ``pdf`` (written whole or not at all); returns the number of pages."""
    html = Path(html)
    if not html.is_file():
        raise PrintError(f"{html}: no report to print (run `regent study run` first)")
    pdf = Path(pdf)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    tmp = pdf.with_name(f".{pdf.name}.tmp")
    with tempfile.TemporaryDirectory(prefix="regent-chromium-") as profile:
        cmd = [
            chromium(),
            "--headless",
            "--no-sandbox",  # as root in CI and containers; the page is our own file
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",  # the stylesheet's @page boxes number the pages
            f"--print-to-pdf={tmp}",
            html.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise PrintError(f"{html}: Chromium did not finish printing within {timeout:g} s") from None
    if done.returncode != 0 or not tmp.is_file() or tmp.read_bytes()[:5] != b"%PDF-":
        tmp.unlink(missing_ok=True)
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise PrintError(f"{html}: Chromium could not print it (exit {done.returncode}: {last[0][:200]})")
    tmp.replace(pdf)
    return pdf_pages(pdf.read_bytes())


_PAGES = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", re.S)


def pdf_pages(data: bytes) -> int:
    """Pages of a PDF: the ``/Count`` of its page tree's root (the largest ``/Pages`` node)."""
    counts = [int(a or b) for a, b in _PAGES.findall(data)]
    if not counts:
        raise PrintError("not a PDF with a page tree")
    return max(counts)
