"""The drift checks of a window against the run's reference: healthy windows pass (and the whole monitor's
false-alarm rate, measured over many seeded windows, stays at monitor.false_alarm_rate), each kind of shift is
flagged by its own check, and a check that cannot be measured says why."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from tunesmith.config import MonitorConfig
from tunesmith.monitor.checks import DRIFT_CHECKS, drift_breaches, most_novel, window_drift

SETTINGS = MonitorConfig()


def test_a_healthy_window_breaches_nothing(make_reference, live_stream):
    drift = window_drift(live_stream(1, 50), make_reference(), "", SETTINGS)
    assert drift["judged"] and drift["checks"] == list(DRIFT_CHECKS)
    assert drift["level"] == pytest.approx(0.01 / 4)  # the false-alarm rate split over the four checks
    assert drift_breaches(drift) == []
    assert drift["novelty"]["reference_share"] == pytest.approx(0.05, abs=0.001)
    assert drift["confidence"]["kind"] == "label_probability"


@pytest.mark.parametrize("rate, windows", [(0.01, 300), (0.1, 300)])
def test_the_false_alarm_rate_of_healthy_windows_of_50_is_at_most_the_setting(make_reference, live_stream, rate,
                                                                              windows):
    """Each window of 50 requests and its reference are drawn from one distribution (a fresh reference of 1,000
    rows each time: the reference is a sample too); any drift breach of a window is a false alarm."""
    settings = MonitorConfig(false_alarm_rate=rate)
    alarms = sum(bool(drift_breaches(window_drift(live_stream(seed, 50), make_reference(seed=10_000 + seed), "",
                                                  settings)))
                 for seed in range(windows))
    # At most what a true rate of `rate` gives 999 times in 1000.
    assert binomtest(alarms, windows, rate, alternative="greater").pvalue > 0.001, f"{alarms} of {windows}"


@pytest.mark.parametrize("shift, check", [("novel", "novelty"), ("long", "prompt_length"), ("one_label", "labels"),
                                          ("unsure", "confidence")])
def test_each_shift_is_flagged_by_its_own_check(make_reference, live_stream, shift, check):
    drift = window_drift(live_stream(2, 50, shift), make_reference(), "", SETTINGS)
    breaches = drift_breaches(drift)
    assert [breach["check"] for breach in breaches] == [check]
    breach = breaches[0]
    assert breach["p_value"] <= breach["threshold"] == drift["level"]
    assert breach["setting"] == "monitor.false_alarm_rate"
    assert breach["value"] == drift[check]["share" if check in ("novelty", "confidence") else
                                           "ks_statistic" if check == "prompt_length" else "statistic"]


def test_below_min_requests_drift_is_measured_but_not_judged(make_reference, live_stream):
    drift = window_drift(live_stream(3, 10, "one_label"), make_reference(), "", SETTINGS)
    assert not drift["judged"] and drift["not_judged"] == "10 answered requests, fewer than monitor.min_requests (30)"
    assert drift["labels"]["p_value"] < 0.01 and drift_breaches(drift) == []
    judged = window_drift(live_stream(3, 10, "one_label"), make_reference(), "", MonitorConfig(min_requests=5))
    assert [breach["check"] for breach in drift_breaches(judged)] == ["labels"]


def test_a_null_false_alarm_rate_shows_drift_without_judging_it(make_reference, live_stream):
    drift = window_drift(live_stream(4, 50, "novel"), make_reference(), "", MonitorConfig(false_alarm_rate=None))
    assert drift["not_judged"] == "monitor.false_alarm_rate is null" and drift["level"] is None
    assert drift["novelty"]["breach_at"] is None and drift_breaches(drift) == []


def test_without_a_reference_drift_says_why(live_stream):
    assert window_drift(live_stream(5, 50), None, "the run has no reference", SETTINGS) == {
        "skipped": "the run has no reference"}


def test_an_old_log_without_novelty_or_confidence_skips_novelty_and_reads_the_probability(make_reference,
                                                                                          live_stream):
    old = [{key: value for key, value in record.items() if key not in ("novelty", "confidence")}
           for record in live_stream(6, 50)]
    drift = window_drift(old, make_reference(), "", SETTINGS)
    assert "no request record has `novelty`" in drift["novelty"]["skipped"]
    assert drift["checks"] == ["prompt_length", "labels", "confidence"] and drift["level"] == pytest.approx(0.01 / 3)
    assert drift["confidence"]["live"] == 50  # a classification's probability stands in for confidence
    unscored = [{key: value for key, value in record.items() if key != "probability"} for record in old]
    assert "no request record has `confidence`" in window_drift(unscored, make_reference(), "",
                                                                SETTINGS)["confidence"]["skipped"]


def test_a_generation_run_judges_length_novelty_and_sequence_confidence(make_reference, live_stream):
    reference = make_reference(task="generation", labels=None, predicted_labels=None, confidence_kind="sequence")
    chats = [{key: value for key, value in record.items() if key not in ("text", "label", "probability")}
             for record in live_stream(7, 50, "unsure")]
    drift = window_drift(chats, reference, "", SETTINGS)
    assert drift["labels"] == {"skipped": "the run is not a classification run"}
    assert drift["checks"] == ["novelty", "prompt_length", "confidence"]
    assert [breach["check"] for breach in drift_breaches(drift)] == ["confidence"]


def test_a_reference_without_novelty_says_why(make_reference, live_stream):
    reference = make_reference(novelty=None, novelty_skipped="the rag extra is not installed (pip install "
                                                             "'tunesmith[rag]')")
    drift = window_drift(live_stream(8, 50), reference, "", SETTINGS)
    assert drift["novelty"]["skipped"] == ("the reference has no novelty scores: the rag extra is not installed "
                                           "(pip install 'tunesmith[rag]')")


def test_the_most_novel_requests_are_listed_not_the_first(make_reference, live_stream, request_record):
    records = live_stream(9, 40) + [request_record(100, text="Classify this message.\n\nune recette de crêpes",
                                                   novelty=0.99),
                                    request_record(101, messages=[{"role": "user", "content": "x" * 500}],
                                                   novelty=0.98)]
    listed = most_novel(records, make_reference())
    assert [entry["id"] for entry in listed[:2]] == ["req-100", "req-101"] and len(listed) == 5
    assert [entry["novelty"] for entry in listed] == sorted((entry["novelty"] for entry in listed), reverse=True)
    assert listed[0]["input"] == "Classify this message. une recette de crêpes"  # a classify text as it came
    assert listed[1]["input"].endswith("…") and len(listed[1]["input"]) == 160
    assert listed[0]["time"] == request_record(100)["time"]
    without_content = most_novel([request_record(1, novelty=0.5)], None)
    assert without_content == [{"id": "req-1", "time": request_record(1)["time"], "novelty": 0.5, "input": None}]
