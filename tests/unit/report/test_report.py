"""``driftwarden report``: the numbers on the page are the detector engine's, and bad input is a clear error."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from detectors.config import MonitorConfig
from detectors.drift import field_scores
from detectors.reference import build_reference, column_histogram
from detectors.values import infer_kind
from detectors.window import fill
from driftwarden.cli import main
from driftwarden.contract.settings import MonitorSettings
from driftwarden.report.comparison import compare, reference_of
from driftwarden.report.html import write_report


def frames(n_ref: int = 3000, n_cur: int = 1500, shift: float = 2.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)

    def frame(n: int, income_shift: float) -> pd.DataFrame:
        return pd.DataFrame({
            "income": rng.normal(50 + income_shift * 15, 15, n),
            "age": rng.normal(40, 10, n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "seen_at": pd.date_range("2026-01-01", periods=n, freq="min"),
        })

    return frame(n_ref, 0.0), frame(n_cur, shift)


def page_scores(html: str) -> dict[str, dict[str, float | None]]:
    """The ``data-score`` of every statistic on every feature card of the page."""
    out: dict[str, dict[str, float | None]] = {}
    for card in html.split('<div class="card')[1:]:
        name = re.search(r'<h2 id="([^"]+)"', card).group(1)  # type: ignore[union-attr]
        out[name] = {stat: (None if raw == "None" else float(raw))
                     for stat, raw in re.findall(r'data-statistic="([^"]+)" data-score="([^"]+)"', card)}
    return out


def test_scores_on_the_page_are_the_engines_and_only_the_shifted_feature_drifts(tmp_path: Path) -> None:
    reference, current = frames()
    ref_path, cur_path, out = tmp_path / "ref.csv", tmp_path / "cur.parquet", tmp_path / "report.html"
    reference.to_csv(ref_path, index=False)
    current.to_parquet(cur_path)
    report = write_report(ref_path, cur_path, out, MonitorSettings())

    assert [f.name for f in report.drifted] == ["income"]
    assert {f.name: f.drifted for f in report.features} == {"income": True, "age": False, "region": False}
    assert report.skipped == ("seen_at",)
    # Recompute each feature's scores straight from the detector functions, outside the report's code path.
    config = MonitorConfig(window_size=len(current))
    shown = page_scores(out.read_text())
    for name in ("income", "age", "region"):
        raw_ref = pd.read_csv(ref_path)[name].tolist()
        ref_hist = column_histogram(raw_ref, infer_kind(raw_ref), config)
        cur_hist = ref_hist.like()
        fill(cur_hist, current[name].tolist())
        expected = field_scores(ref_hist, cur_hist, config)
        for statistic in ("psi", "js", "wasserstein"):
            if statistic in expected:
                assert shown[name][statistic] == expected[statistic], (name, statistic)
    assert shown["income"]["psi"] > 0.2 > shown["age"]["psi"]
    html = out.read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert html.count("<svg") == 2 * len(report.features)


def test_the_window_is_the_whole_current_file(tmp_path: Path) -> None:
    reference, current = frames()
    reference.to_csv(tmp_path / "ref.csv", index=False)
    current.to_csv(tmp_path / "cur.csv", index=False)
    settings = MonitorSettings(psi_floor=0.3, window_size=7, window_seconds=60.0)
    config = write_report(tmp_path / "ref.csv", tmp_path / "cur.csv", tmp_path / "out.html", settings).config
    assert (config.window_size, config.psi_floor, config.window_seconds) == (len(current), 0.3, None)


def test_prediction_column_gets_its_own_prediction_drift_row() -> None:
    reference, current = frames()
    reference["score"] = reference["income"] / 100
    current["score"] = current["income"] / 100
    report = compare(reference, current, MonitorConfig(window_size=len(current)), prediction="score")
    prediction = next(f for f in report.features if f.role == "prediction")
    assert prediction.name == "score"  # shown under the file's column name
    assert prediction.drifted and math.isfinite(prediction.scores["psi"])
    config = MonitorConfig(window_size=len(current))
    ref_hist = column_histogram(reference["score"].tolist(), "numeric", config)
    cur_hist = ref_hist.like()
    fill(cur_hist, current["score"].tolist())
    assert prediction.scores["psi"] == field_scores(ref_hist, cur_hist, config)["psi"]


def test_cli_writes_the_page_and_prints_the_drifted_feature(tmp_path: Path) -> None:
    reference, current = frames()
    reference.to_csv(tmp_path / "ref.csv", index=False)
    current.to_csv(tmp_path / "cur.csv", index=False)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"),
                                       "-o", str(tmp_path / "out.html"), "--ignore", "seen_at",
                                       "--fail-on-drift"])
    assert result.exit_code == 3, result.output
    assert "DRIFT income (critical)" in result.output and "DRIFT age" not in result.output
    assert (tmp_path / "out.html").stat().st_size > 5000


@pytest.mark.parametrize("case", ["missing", "unreadable", "disjoint"])
def test_cli_errors_are_clear_and_non_zero(tmp_path: Path, case: str) -> None:
    reference, _ = frames(200, 100)
    reference.to_csv(tmp_path / "ref.csv", index=False)
    if case == "missing":
        current, message = tmp_path / "absent.csv", "no such file"
    elif case == "unreadable":
        current, message = tmp_path / "broken.parquet", "cannot read"
        current.write_bytes(b"not a parquet file at all")
    else:
        current, message = tmp_path / "other.csv", "no column in common"
        current.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "ref.csv"), str(current),
                                       "-o", str(tmp_path / "out.html")])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "out.html").exists()


def test_reference_from_columns_is_build_reference_from_rows() -> None:
    reference, _ = frames(500, 10)
    reference = reference.drop(columns=["seen_at"])
    reference.loc[::7, "income"] = None
    reference.loc[::11, "region"] = None
    columns = {name: reference[name].tolist() for name in reference.columns}
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    config = MonitorConfig()
    predictions = (reference["income"] > 50).tolist()
    assert reference_of(columns, config, predictions).to_bytes() == build_reference(rows, config, predictions)


def test_a_statistic_that_does_not_decide_still_gets_its_score_bar() -> None:
    from driftwarden.report.comparison import Statistic
    from driftwarden.report.html import scores_svg

    svg = scores_svg([Statistic("ks", 0.05, math.nan, False, False)])
    assert svg.count("<rect") == 2, "the background and the score bar"
