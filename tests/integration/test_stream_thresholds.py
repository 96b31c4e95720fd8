"""The calibrated thresholds as the stream publishes them: drift events read back from the real broker say which
cut-off decided (the noise cut-off or the effect floor) and at which false-alarm rate.

Driven in-process on the real Redis and broker with the harness of ``test_stream_batches.py``.
"""

from __future__ import annotations

import pytest
from stream_inputs import pred, quantiles
from test_stream_batches import Feed, read_topic, tuned

from detectors.monitor import ModelMonitor
from driftwarden.contract.events import DriftEvent, decode
from driftwarden.contract.settings import Settings

pytestmark = pytest.mark.services


def test_published_drift_events_carry_the_threshold_that_decided_and_the_rate(settings: Settings) -> None:
    # A Wasserstein floor above its noise cut-off, so that both kinds of decision are published.
    s = tuned(settings, {"reference_size": 1000, "window_size": 500, "false_alarm_rate": 0.002,
                         "warning_rate": 0.02, "wasserstein_floor": 0.4})
    feed = Feed(s)
    m = "calibrated"
    feed.process(feed.predictions([pred(m, i, float(i), x=x, prediction=i % 2)
                                   for i, x in enumerate(quantiles(1000))]))  # the reference
    report = feed.process(feed.predictions([pred(m, 1000 + i, 1000.0 + i, x=x, prediction=i % 2)
                                            for i, x in enumerate(quantiles(500, 0.6))]))
    assert {(e.kind, e.feature, e.severity) for e in report.drift_events} == {("data_drift", "x", "critical")}

    published = [decode(DriftEvent, v) for v in read_topic(s, s.kafka.topics.drift_events,
                                                           len(report.drift_events))]
    assert sorted(published, key=lambda e: e.drift_id) == sorted(report.drift_events, key=lambda e: e.drift_id)
    assert {e.signal for e in published} == {"psi", "js", "wasserstein"}
    status = ModelMonitor.from_bytes(feed.state(m).monitor).status()["scores"]["features"]["x"]
    for event in published:
        d = event.details
        assert event.threshold == max(d["noise_threshold"], d["effect_floor"]), event.signal
        assert d["decided_by"] == ("noise" if d["noise_threshold"] >= d["effect_floor"] else "effect_floor")
        assert d["false_alarm_rate"] == 0.002
        assert d["family_size"] == 6  # x and the 0/1 prediction, three statistics each
        assert d["test_alpha"] == pytest.approx(0.002 / 6)
        assert event.score >= event.threshold
        assert d["p_value"] <= d["test_alpha"]  # beyond the noise cut-off, whichever decided
        assert event.threshold == status[f"{event.signal}_threshold"]  # what the status reports beside the score
    by_signal = {e.signal: e for e in published}
    assert by_signal["wasserstein"].details["decided_by"] == "effect_floor"
    assert by_signal["wasserstein"].threshold == 0.4
    assert by_signal["psi"].details["decided_by"] == "noise"
