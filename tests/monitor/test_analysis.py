"""`tunesmith monitor`: traffic figures from the request log (every rotated file), drift against the run's
training data, breaches of the `monitor:` thresholds, the exit code and the JSON."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_familiar_traffic_breaches_nothing(tmp_path, spam_run, live_requests, write_log, capsys):
    folder = write_log(tmp_path / "logs", live_requests(spam_run, "familiar"))
    result = monitor_log(folder, spam_run.root)
    drift = result.drift
    assert drift["judged"] and drift["requests"] == 48
    assert drift["prompt_length"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert drift["prompt_length"]["ks_pvalue"] == pytest.approx(1.0)
    assert drift["labels"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert set(drift["labels"]["shares"]) == {"ham", "spam"}
    assert drift["unfamiliar"]["share"] == 0.0 and drift["unfamiliar"]["examples"] == []
    assert drift["low_confidence"]["share"] == 0.0
    assert result.breaches == [] and result.exit_code == 0
    assert main(["monitor", str(folder), "--run", str(spam_run.root)]) == 0
    out = capsys.readouterr().out
    assert "Breaches" in out and "every threshold that was judged holds" in out


def test_shifted_traffic_is_flagged(tmp_path, spam_run, live_requests, write_log, capsys):
    folder = write_log(tmp_path / "logs", live_requests(spam_run, "shifted"))
    result = monitor_log(folder, spam_run.root)
    assert {breach["name"] for breach in result.breaches} == {
        "length_psi", "length_ks_pvalue", "label_psi", "unfamiliar_share", "low_confidence_share"}
    drift = result.drift
    assert drift["unfamiliar"]["share"] == 1.0 and len(drift["unfamiliar"]["examples"]) == 5
    assert drift["low_confidence"] == {"share": 1.0, "classified": 48, "low": 48, "threshold": 0.6}
    assert drift["labels"]["shares"]["spam"]["live"] == 1.0
    assert main(["monitor", str(folder), "--run", str(spam_run.root)]) == 1
    out = capsys.readouterr().out
    assert "length_psi" in out and "monitor.max_label_psi" in out


def test_below_min_requests_drift_is_shown_but_not_judged(tmp_path, spam_run, live_requests, write_log):
    folder = write_log(tmp_path / "logs", live_requests(spam_run, "shifted", 10))
    result = monitor_log(folder, spam_run.root)
    assert not result.drift["judged"] and "fewer than monitor.min_requests (30)" in result.drift["not_judged"]
    assert result.drift["prompt_length"]["psi"] > 0.2
    assert result.breaches == []
    assert monitor_log(folder, spam_run.root, ["monitor.min_requests=5"]).exit_code == 1


def test_familiar_inputs_are_found_among_training_rows_and_random_strings_are_not(
        tmp_path, spam_run, live_requests, write_log):
    copied = live_requests(spam_run, "familiar", 20)
    strange = live_requests(spam_run, "shifted", 40)[20:]
    folder = write_log(tmp_path / "logs", copied + strange)
    unfamiliar = monitor_log(folder, spam_run.root).drift["unfamiliar"]
    assert (unfamiliar["unfamiliar"], unfamiliar["inputs"], unfamiliar["share"]) == (20, 40, 0.5)
    assert [example["id"] for example in unfamiliar["examples"]] == [f"req-{n}" for n in range(20, 25)]


def test_a_log_without_content_skips_unfamiliar_inputs(tmp_path, spam_run, live_requests, write_log):
    records = live_requests(spam_run, "familiar")
    folder = write_log(tmp_path / "logs", records, log_content=False)
    assert all("text" not in record for record in read_log(folder))
    drift = monitor_log(folder, spam_run.root).drift
    assert "--no-log-content" in drift["unfamiliar"]["skipped"]
    assert drift["labels"]["psi"] == pytest.approx(0.0, abs=1e-9) and drift["prompt_length"]["train_rows"] == 48


def test_the_run_comes_from_served_json_and_only_its_model_is_judged(tmp_path, spam_run, live_requests,
                                                                     request_record, write_log):
    records = live_requests(spam_run, "familiar")
    records += [request_record(100 + n, model="base", messages=[{"role": "user", "content": "x"}], answer="y")
                for n in range(5)]
    manifest = {"models": {"tuned": {"run": str(spam_run.root), "model": "merged"},
                           "base": {"run": None, "model": "/models/base"}}, "primary": "tuned", "shadow": None}
    result = monitor_log(write_log(tmp_path / "logs", records, manifest))
    assert result.drift["run"] == str(spam_run.root) and result.drift["model"] == "tuned"
    assert result.drift["requests"] == 48 and result.traffic["requests"] == 53


def test_without_a_run_drift_is_skipped_with_the_reason(tmp_path, request_record, write_log):
    folder = write_log(tmp_path / "logs", [request_record(n, text="hello", label="ham", probability=0.3)
                                           for n in range(40)])
    drift = monitor_log(folder).drift
    for part in ("prompt_length", "labels", "unfamiliar"):
        assert "served.json is missing; pass --run RUN" in drift[part]["skipped"]
    assert drift["low_confidence"]["share"] == 1.0  # needs no training data
    manifest = {"models": {"base": {"run": None, "model": "/models/base"}}, "primary": "base", "shadow": None}
    drift = monitor_log(write_log(tmp_path / "logs2", [request_record(0)], manifest)).drift
    assert "names no run for the primary model 'base'" in drift["labels"]["skipped"]


def test_thresholds_come_from_the_run_and_set_overrides_them(tmp_path, run_folder, spam_rows, request_record,
                                                             write_log, capsys):
    run = run_folder("lenient-run", spam_rows(40), monitor={"max_error_rate": 0.5})
    records = [request_record(n, status=503 if n % 4 == 0 else 200) for n in range(8)]
    folder = write_log(tmp_path / "logs", records)
    assert monitor_log(folder, run.root).breaches == []
    result = monitor_log(folder, run.root, ["monitor.max_error_rate=0.1"])
    assert result.breaches == [{"name": "error_rate", "value": 0.25, "threshold": 0.1,
                                "setting": "monitor.max_error_rate"}]
    assert monitor_log(folder, overrides=["monitor.max_p95_latency_s=0.05"]).breaches[-1]["name"] == "p95_latency_s"
    assert main(["monitor", str(folder), "--run", str(run.root), "--set", "train.epochs=2"]) == 2
    assert "train.epochs: is not a monitor setting" in capsys.readouterr().err
    assert main(["monitor", str(folder), "--set", "monitor.max_eror_rate=0.1"]) == 2
    assert "did you mean 'monitor.max_error_rate'?" in capsys.readouterr().err


def test_json_output(tmp_path, spam_run, live_requests, write_log, capsys):
    folder = write_log(tmp_path / "logs", live_requests(spam_run, "shifted"))
    assert main(["monitor", str(folder), "--run", str(spam_run.root), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"log_dir", "traffic", "drift", "breaches", "thresholds", "exit_code"}
    assert result["exit_code"] == 1 and result["thresholds"]["max_length_psi"] == 0.2
    assert all(set(breach) == {"name", "value", "threshold", "setting"} for breach in result["breaches"])
    assert set(result["drift"]) >= {"prompt_length", "labels", "unfamiliar", "low_confidence", "judged"}


def test_a_missing_log_folder_is_an_error(tmp_path, capsys):
    assert main(["monitor", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_training_data_that_is_gone_skips_drift_and_keeps_traffic(tmp_path, spam_run, request_record, write_log):
    Path(spam_run.config().data.path).unlink()
    folder = write_log(tmp_path / "logs", [request_record(n, status=500) for n in range(3)])
    result = monitor_log(folder, spam_run.root)
    assert "the run's training data or tokenizer cannot be loaded" in result.drift["labels"]["skipped"]
    assert result.traffic["error_rate"] == 1.0 and [b["name"] for b in result.breaches] == ["error_rate"]
