"""report.html in a real headless browser (Debian's chromium, installed by the test command's set-up): the page
renders offline with its tables and embedded figures; the screenshot is kept in results/test-artifacts/."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from entmin.bench.report import write_report
from entmin.bench.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]


def _browser():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            raise AssertionError("chromium missing: `bash scripts/setup.sh --browser` installs it")
        pytest.skip("no chromium")
    return path


def test_report_html_renders_in_a_headless_browser(tmp_path, fmnist_test):
    browser = _browser()
    shutil.copy(ROOT / "tests/data/golden_v1.sqlite", tmp_path / "s.sqlite")
    write_report(ResultStore(tmp_path / "s.sqlite", readonly=True), tmp_path / "out")
    page = tmp_path / "out" / "report.html"
    shot = ROOT / "results" / "test-artifacts" / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file(), out.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2400, 1200)
    ink = (img.sum(2) < 600).mean()           # text, table rules, plots: not a blank page
    colour = (img.max(2) - img.min(2) > 60).mean()  # the embedded figures are coloured; the text is not
    assert ink > 0.01 and colour > 0.001, (ink, colour)
