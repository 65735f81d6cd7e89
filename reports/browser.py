"""Headless Chromium (Debian's ``chromium``): print the HTML report to PDF, take screenshots.

Chromium runs with no network use and a throw-away profile; nothing leaves the machine.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--no-pdf-header-footer"]


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> str:
    """Run Chromium with a throw-away profile; returns what it printed on stdout."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("headless Chromium not found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], check=True, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout).stdout


def print_pdf(html: Path, pdf: Path, timeout: float = 120) -> Path:
    _run([f"--print-to-pdf={pdf.resolve()}", html.resolve().as_uri()], timeout)
    if not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError("Chromium produced no PDF")
    return pdf


def dump_dom(html: Path, width: int = 794, height: int = 1123, timeout: float = 120) -> str:
    """The page's DOM after it loaded (and ran its scripts) in a window ``width`` × ``height`` CSS pixels
    (default: A4 at 96 dpi)."""
    return _run(["--dump-dom", f"--window-size={width},{height}", html.resolve().as_uri()], timeout)


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 1800, scale: float = 1.0,
               timeout: float = 120) -> Path:
    """A PNG of the page's first ``width`` × ``height`` CSS pixels, at ``scale`` device pixels per CSS pixel."""
    _run([f"--screenshot={png.resolve()}", f"--window-size={width},{height}", f"--force-device-scale-factor={scale}",
          html.resolve().as_uri()], timeout)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError("Chromium produced no screenshot")
    return png
