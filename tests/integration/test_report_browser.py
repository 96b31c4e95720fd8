"""The HTML report in a real headless browser (Debian's chromium, installed by scripts/bootstrap.sh):
the page renders its inline SVG plots with no network, and the screenshot is neither blank nor cut."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image  # installed with mlflow (via matplotlib)

from driftwarden.contract.settings import MonitorSettings
from driftwarden.report.html import CURRENT_COLOUR, FIRED_COLOUR, REFERENCE_COLOUR, write_report

WIDTH, HEIGHT = 1280, 1400


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is missing: scripts/bootstrap.sh installs it"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--disable-extensions", f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def colour_share(pixels: np.ndarray, hex_colour: str, tolerance: int = 12) -> float:
    """Share of the screenshot's pixels within ``tolerance`` of a colour."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(pixels[..., :3].astype(int) - rgb).max(axis=-1) <= tolerance).mean())


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n_ref, n_cur = 3000, 1500
    reference = pd.DataFrame({"income": rng.normal(50, 15, n_ref), "age": rng.normal(40, 10, n_ref),
                              "region": rng.choice(["north", "south", "east", "west"], n_ref)})
    current = pd.DataFrame({"income": rng.normal(80, 15, n_cur), "age": rng.normal(40, 10, n_cur),
                            "region": rng.choice(["north", "south", "east", "west"], n_cur)})
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_parquet(tmp_path / "current.parquet")
    page = tmp_path / "report.html"
    report = write_report(tmp_path / "reference.csv", tmp_path / "current.parquet", page, MonitorSettings())
    assert [f.name for f in report.drifted] == ["income"]

    # The DOM as chromium parsed it: every feature card and both plots of each are there.
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile-dom").stdout
    assert dom.count('class="card') == 3
    assert dom.count('class="histogram"') == 3 and dom.count('class="scores"') == 3
    assert dom.count("<rect") > 3 * 2 * 10  # reference and current bars per bin

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri(),
             profile=tmp_path / "profile-shot")
    if os.environ.get("DRIFTWARDEN_SCREENSHOT"):  # to look at it: DRIFTWARDEN_SCREENSHOT=/tmp/r.png pytest ...
        shutil.copy(shot, os.environ["DRIFTWARDEN_SCREENSHOT"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as image:
        assert image.size == (WIDTH, HEIGHT)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, bars and badges, not a flat fill
    # The plots were drawn: bars of both series, and the red of the drifted feature's bars and badge.
    assert colour_share(pixels, REFERENCE_COLOUR) > 0.002
    assert colour_share(pixels, CURRENT_COLOUR) > 0.002
    assert colour_share(pixels, FIRED_COLOUR) > 0.0005
