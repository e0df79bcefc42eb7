"""`tunesmith monitor`: traffic figures from the request log (every rotated file), drift against the run's
reference window by window, breaches naming their window, --window and --since, the exit code and the JSON."""

from __future__ import annotations

import json

import pytest

from tunesmith.cli import main
from tunesmith.monitor.analysis import monitor_log
from tunesmith.monitor.request_log import LOG_FILE, read_log


def test_traffic_figures(tmp_path, request_record, write_log):
    records = [
        request_record(0, text="see you", label="ham", probability=0.9, latency_s=0.1),
        request_record(1, messages=[{"role": "user", "content": "hi"}], answer="hello", latency_s=0.3, ttft_s=0.05),
        request_record(2, status=500, error="boom", latency_s=0.01, ttft_s=None),
        request_record(3, status=400, error="bad body", latency_s=0.001, ttft_s=None),
        request_record(60, model="other", messages=[{"role": "user", "content": "q"}], answer="a", latency_s=0.2),
        {"kind": "feedback", "id": "req-1", "rating": "up"},
        {"kind": "feedback", "id": "req-1", "rating": "down"},  # the latest feedback of a request wins
        {"kind": "feedback", "id": "req-0", "rating": None, "label": "spam"},
        {"kind": "feedback", "id": "req-60", "rating": None, "correction": "better"},
        {"kind": "shadow", "id": "req-0", "model": "shadow", "latency_s": 0.2, "label": "ham", "probability": 0.8},
        {"kind": "shadow", "id": "req-1", "model": "shadow", "latency_s": 0.4, "answer": " hello "},
        {"kind": "shadow", "id": "req-60", "model": "shadow", "latency_s": 0.6, "answer": "b"},
    ]
    traffic = monitor_log(write_log(tmp_path / "logs", records)).traffic
    assert traffic["requests"] == 5
    assert traffic["by_model"] == {"tuned": 4, "other": 1}
    assert traffic["by_route"] == {"/v1/chat/completions": 4, "/v1/classify": 1}
    assert traffic["span_s"] == 60.0 and traffic["requests_per_minute"] == pytest.approx(5.0)
    assert (traffic["errors"], traffic["error_rate"]) == (2, 0.4)
    assert (traffic["server_errors"], traffic["server_error_rate"]) == (1, 0.2)
    assert traffic["latency_s"]["p50"] == pytest.approx(0.2)  # answered requests only: 0.1, 0.3, 0.2
    assert traffic["ttft_s"]["p50"] == pytest.approx(0.035)
    assert (traffic["prompt_tokens"], traffic["completion_tokens"]) == (100, 5)
    assert traffic["feedback"] == {"records": 4, "requests": 3, "up": 0, "down": 1, "corrections": 1, "labels": 1}
    shadow = traffic["shadow"]
    assert shadow["models"] == ["shadow"] and shadow["answers"] == 3
    assert (shadow["labels_compared"], shadow["label_agreement"]) == (1, 1.0)
    assert (shadow["answers_compared"], shadow["answer_agreement"]) == (2, 0.5)


def test_rotated_logs_are_read_in_order_and_a_cut_off_last_line_is_skipped(tmp_path, request_record, write_log):
    folder = write_log(tmp_path / "logs", [request_record(number) for number in range(30)], max_bytes=1000)
    assert len(list(folder.glob("requests-*.jsonl"))) >= 3
    with open(folder / LOG_FILE, "a", encoding="utf-8") as handle:
        handle.write('{"kind": "request", "id": "req-cut", "ti')  # a write cut off by a crash
    assert [record["id"] for record in read_log(folder)] == [f"req-{number}" for number in range(30)]
    assert monitor_log(folder).traffic["requests"] == 30


def test_healthy_traffic_breaches_nothing(tmp_path, spam_run, live_stream, write_log, capsys):
    folder = write_log(tmp_path / "logs", live_stream(0, 120))
    result = monitor_log(folder, spam_run.root)
    assert result.breaches == [] and result.exit_code == 0
    [window] = result.windows
    assert window["requests"] == window["answered"] == 120
    drift = window["figures"]["drift"]
    assert drift["judged"] and drift["checks"] == ["novelty", "prompt_length", "labels", "confidence"]
    assert result.reference["rows"] == 1000 and result.reference["path"] == str(spam_run.reference)
    assert main(["monitor", str(folder), "--run", str(spam_run.root)]) == 0
    out = capsys.readouterr().out
    assert "Breaches" in out and "every threshold that was judged holds" in out


def test_a_shifted_window_is_flagged_by_its_check_and_named(tmp_path, spam_run, live_stream, write_log, capsys):
    records = live_stream(0, 50) + live_stream(1, 50, "novel", first=50) + live_stream(2, 50, first=100)
    folder = write_log(tmp_path / "logs", records)
    result = monitor_log(folder, spam_run.root, window="50")
    assert [w["answered"] for w in result.windows] == [50, 50, 50]
    assert [(b["check"], b["window"]) for b in result.breaches] == [("novelty", 1)]
    breach = result.breaches[0]
    assert breach["start"] == result.windows[1]["start"] == records[50]["time"]
    assert breach["p_value"] <= breach["threshold"] == pytest.approx(0.01 / 4)
    assert breach["value"] == result.windows[1]["figures"]["drift"]["novelty"]["share"] > 0.5
    assert result.exit_code == 1
    # the window's most novel requests are its own
    assert {entry["id"] for entry in result.windows[1]["most_novel"]} <= {f"req-{n}" for n in range(50, 100)}
    assert result.most_novel[0]["novelty"] == max(r["novelty"] for r in records)
    assert main(["monitor", str(folder), "--run", str(spam_run.root), "--window", "50"]) == 1
    out = capsys.readouterr().out
    assert "novelty" in out and "#2 (2026-11-30 08:00:50 UTC)" in out


def test_windows_by_time_and_since(tmp_path, spam_run, live_stream, write_log):
    healthy, long = live_stream(0, 40), live_stream(1, 40, "long", first=3600)
    folder = write_log(tmp_path / "logs", healthy + long)
    result = monitor_log(folder, spam_run.root, window="1h")
    assert [(w["start"], w["end"], w["requests"]) for w in result.windows] == [
        ("2026-11-30T08:00:00+00:00", "2026-11-30T09:00:00+00:00", 40),
        ("2026-11-30T09:00:00+00:00", "2026-11-30T10:00:00+00:00", 40)]
    assert [(b["check"], b["window"]) for b in result.breaches] == [("prompt_length", 1)]
    recent = monitor_log(folder, spam_run.root, since="30m")  # back from the last record, 09:00:39
    assert recent.traffic["requests"] == 40 and recent.since == "2026-11-30T08:30:39+00:00"
    assert [b["check"] for b in recent.breaches] == ["prompt_length"]
    early = monitor_log(folder, spam_run.root, since="2026-11-30T08:59")
    assert early.traffic["requests"] == 40 and early.windows[0]["answered"] == 40


def test_without_a_reference_drift_says_why_and_traffic_is_judged(tmp_path, run_folder, spam_rows, live_stream,
                                                                   request_record, write_log, capsys):
    run = run_folder("unevaluated", spam_rows(30))
    folder = write_log(tmp_path / "logs", live_stream(0, 40, "novel") + [request_record(99, status=500)] * 5)
    result = monitor_log(folder, run.root)
    assert result.reference == {"skipped": f"the run has no reference ({run.reference}): evaluate the run: "
                                           "`tunesmith eval RUN`"}
    assert result.windows[0]["figures"]["drift"] == result.reference
    assert [b["check"] for b in result.breaches] == ["error_rate"]
    assert main(["monitor", str(folder), "--run", str(run.root)]) == 1
    assert "evaluate the run: `tunesmith eval RUN`" in capsys.readouterr().out


def test_without_a_run_drift_is_skipped_with_the_reason(tmp_path, request_record, write_log):
    folder = write_log(tmp_path / "logs", [request_record(n, text="hello", label="ham", probability=0.3)
                                           for n in range(40)])
    assert "served.json is missing; pass --run RUN" in monitor_log(folder).reference["skipped"]
    manifest = {"models": {"base": {"run": None, "model": "/models/base"}}, "primary": "base", "shadow": None}
    result = monitor_log(write_log(tmp_path / "logs2", [request_record(0)], manifest))
    assert "names no run for the primary model 'base'" in result.windows[0]["figures"]["drift"]["skipped"]


def test_an_old_log_is_judged_on_what_it_holds(tmp_path, spam_run, live_stream, write_log):
    old = [{key: value for key, value in record.items() if key not in ("novelty", "confidence")}
           for record in live_stream(0, 40)]
    result = monitor_log(write_log(tmp_path / "logs", old), spam_run.root)
    drift = result.windows[0]["figures"]["drift"]
    assert "no request record has `novelty`" in drift["novelty"]["skipped"]
    assert drift["checks"] == ["prompt_length", "labels", "confidence"] and result.breaches == []
    assert result.most_novel == []


def test_a_log_without_content_lists_novel_requests_without_their_input(tmp_path, spam_run, live_stream, write_log):
    folder = write_log(tmp_path / "logs", live_stream(0, 40), log_content=False)
    assert all("text" not in record for record in read_log(folder))
    result = monitor_log(folder, spam_run.root)
    assert len(result.most_novel) == 5 and all(entry["input"] is None for entry in result.most_novel)
    assert result.windows[0]["figures"]["drift"]["judged"]


def test_the_run_comes_from_served_json_and_only_its_model_is_judged(tmp_path, spam_run, live_stream,
                                                                     request_record, write_log):
    records = live_stream(0, 48)
    records += [request_record(100 + n, model="base", messages=[{"role": "user", "content": "x"}], answer="y",
                               prompt_tokens=900) for n in range(5)]
    manifest = {"models": {"tuned": {"run": str(spam_run.root), "model": "merged"},
                           "base": {"run": None, "model": "/models/base"}}, "primary": "tuned", "shadow": None}
    result = monitor_log(write_log(tmp_path / "logs", records, manifest))
    assert result.run == str(spam_run.root) and result.model == "tuned"
    assert result.windows[0]["answered"] == 48 and result.traffic["requests"] == 53 and result.breaches == []


def test_thresholds_come_from_the_run_and_set_overrides_them(tmp_path, run_folder, spam_rows, request_record,
                                                             write_log, capsys):
    run = run_folder("lenient-run", spam_rows(40), monitor={"max_error_rate": 0.5})
    records = [request_record(n, status=503 if n % 4 == 0 else 200) for n in range(8)]
    folder = write_log(tmp_path / "logs", records)
    assert monitor_log(folder, run.root).breaches == []
    result = monitor_log(folder, run.root, ["monitor.max_error_rate=0.1"])
    assert result.breaches == [{"check": "error_rate", "value": 0.25, "p_value": None, "threshold": 0.1,
                                "setting": "monitor.max_error_rate", "window": 0,
                                "start": records[0]["time"], "end": records[-1]["time"]}]
    assert monitor_log(folder, overrides=["monitor.max_p95_latency_s=0.05"]).breaches[-1]["check"] == "p95_latency_s"
    assert main(["monitor", str(folder), "--run", str(run.root), "--set", "train.epochs=2"]) == 2
    assert "train.epochs: is not a monitor setting" in capsys.readouterr().err
    assert main(["monitor", str(folder), "--set", "monitor.max_eror_rate=0.1"]) == 2
    assert "did you mean 'monitor.max_error_rate'?" in capsys.readouterr().err


def test_traffic_is_judged_per_window(tmp_path, request_record, write_log):
    records = [request_record(n, status=500 if 10 <= n < 20 else 200) for n in range(30)]
    folder = write_log(tmp_path / "logs", records)
    by_time = monitor_log(folder, window="10s")
    assert [(b["check"], b["window"], b["value"]) for b in by_time.breaches] == [("error_rate", 1, 1.0)]
    # windows of 10 answered requests: the failed ones go with the window they fall in
    by_count = monitor_log(folder, window="10")
    assert [w["requests"] for w in by_count.windows] == [20, 10]
    assert [(b["check"], b["window"], b["value"]) for b in by_count.breaches] == [("error_rate", 0, 0.5)]


def test_a_run_saved_with_the_old_thresholds_still_loads_and_a_chosen_one_is_an_error(tmp_path, run_folder,
                                                                                      spam_rows, request_record,
                                                                                      write_log, capsys):
    run = run_folder("old-run", spam_rows(30), monitor={"max_label_psi": 0.2, "unfamiliar_similarity": 0.3})
    folder = write_log(tmp_path / "logs", [request_record(0)])
    assert monitor_log(folder, run.root).settings.false_alarm_rate == 0.01
    assert main(["monitor", str(folder), "--set", "monitor.max_label_psi=0.5"]) == 2
    assert "max_label_psi was removed" in capsys.readouterr().err


def test_json_output(tmp_path, spam_run, live_stream, write_log, capsys):
    folder = write_log(tmp_path / "logs", live_stream(0, 50) + live_stream(1, 50, "one_label", first=50))
    assert main(["monitor", str(folder), "--run", str(spam_run.root), "--json", "--window", "50"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"log_dir", "run", "model", "reference", "window", "since", "traffic", "most_novel",
                           "windows", "breaches", "settings", "exit_code"}
    assert result["exit_code"] == 1 and result["settings"]["false_alarm_rate"] == 0.01
    assert result["window"] == "every 50 answered requests"
    window = result["windows"][1]
    assert set(window) == {"index", "start", "end", "requests", "answered", "figures", "breaches", "most_novel"}
    assert set(window["figures"]) == {"traffic", "drift"}
    assert set(window["figures"]["drift"]) == {"judged", "not_judged", "level", "checks", "novelty",
                                                "prompt_length", "labels", "confidence"}
    assert [b["check"] for b in window["breaches"]] == ["labels"]
    assert all(set(breach) == {"check", "window", "start", "end", "value", "p_value", "threshold", "setting"}
               for breach in result["breaches"])


@pytest.mark.parametrize("arguments, message", [
    (["--window", "1w"], "--window '1w' is neither a duration nor a number of requests"),
    (["--window", "0"], "--window 0: a number of requests must be 1 or more"),
    (["--since", "yesterday"], "--since 'yesterday' is neither an ISO time nor a duration"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, request_record, write_log, capsys, arguments, message):
    folder = write_log(tmp_path / "logs", [request_record(0)])
    assert main(["monitor", str(folder), *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_missing_log_folder_is_an_error(tmp_path, capsys):
    assert main(["monitor", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
