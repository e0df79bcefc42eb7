"""Report sections: which example predictions are shown; the evaluation says where the base scores came from."""

from __future__ import annotations

from tunesmith.document import Code, Document, Image, Table, render_text
from tunesmith.report.sections import RELIABILITY_FILE, data_section, evaluation_section, pick_examples


def test_pick_examples_fills_from_the_other_kind_then_from_unscored_rows():
    fixed = [{"id": i, "tuned_correct": True, "base_correct": False} for i in range(3)]
    mistakes = [{"id": 10 + i, "tuned_correct": False, "base_correct": True} for i in range(2)]
    unscored = [{"id": 20 + i, "tuned_correct": None} for i in range(3)]
    both_right = {"id": 30, "tuned_correct": True, "base_correct": True}
    rows = [unscored[0], fixed[0], mistakes[0], both_right, fixed[1], unscored[1], mistakes[1], fixed[2], unscored[2]]

    def ids(count):
        return [row["id"] for row in pick_examples(rows, count)]

    assert ids(4) == [0, 1, 10, 11]  # half fixed, half mistakes
    assert ids(3) == [0, 1, 10]  # the odd one goes to the fixed rows
    assert ids(6) == [0, 1, 2, 10, 11, 20]  # only 2 mistakes: fixed rows fill in, then others in file order
    assert ids(0) == []
    assert [row["id"] for row in pick_examples(unscored, 2)] == [20, 21]


def test_evaluation_says_when_the_base_scores_came_from_the_cache():
    eval_data = {"task": "classification", "num_examples": 2, "base": {"accuracy": 0.5}, "tuned": {"accuracy": 1.0},
                 "delta": {"accuracy": 0.5}, "base_from_cache": False,
                 "base_cache": {"key": "ab" * 16, "computed_at": "2026-11-30T05:09:00+00:00"}}
    computed = render_text(Document("r", sections=[evaluation_section(eval_data)]))
    assert "evaluation cache" not in computed
    reused = render_text(Document("r", sections=[evaluation_section({**eval_data, "base_from_cache": True})]))
    assert ("Base model scores reused from the evaluation cache: computed 2026-11-30T05:09:00+00:00 on the same "
            f"weights, test rows and settings (key {'ab' * 16}).") in " ".join(reused.split())


def test_evaluation_shows_the_baselines_and_the_verdict_against_the_best():
    eval_data = {"task": "classification", "num_examples": 2, "labels": ["ham", "spam"],
                 "base": {"accuracy": 0.5, "per_class": {"spam": {"f1": 0.1, "support": 1}}},
                 "tuned": {"accuracy": 0.9, "per_class": {"spam": {"f1": 0.8, "precision": 0.9, "recall": 0.7,
                                                                   "support": 1}}},
                 "baselines": {"tfidf_logreg": {"accuracy": 0.95, "per_class": {"spam": {"f1": 0.85}},
                                                "train_seconds": 0.5}}}
    text = " ".join(render_text(Document("r", sections=[evaluation_section(eval_data)])).split())
    assert ("The tuned model does not beat TF-IDF + logistic regression, the best baseline: accuracy 0.9000 vs "
            "0.9500 (-0.0500).") in text
    assert "tfidf_logreg F1" in text and "0.8500" in text  # the per-class table has the baseline's F1


def calibration_of(temperature: float, ece_before: float, ece_after: float) -> dict:
    bins = [{"low": i / 10, "high": (i + 1) / 10, "count": 0, "confidence": None, "accuracy": None} for i in range(10)]
    bins[9] = {"low": 0.9, "high": 1.0, "count": 40, "confidence": 0.97, "accuracy": 0.9}
    figures = {"rows": 40, "ece_interval": [0.01, 0.09], "brier": 0.12, "bins": bins}
    return {"temperature": temperature, "validation_rows": 20, "test_rows": 40,
            "before": {**figures, "ece": ece_before}, "after": {**figures, "ece": ece_after}}


def test_evaluation_shows_calibration_before_and_after_with_the_reliability_diagram():
    eval_data = {"task": "classification", "num_examples": 40, "tuned": {"accuracy": 0.9},
                 "calibration": calibration_of(2.5, 0.07, 0.02)}
    section = evaluation_section(eval_data)
    text = " ".join(render_text(Document("r", sections=[section])).split())
    assert "ECE (95% interval)" in text and "0.0700 (0.0100–0.0900)" in text and "Brier score" in text
    assert "on 40 test rows, temperature 2.5000 fitted on 20 validation rows" in text
    assert "Temperature 2.5 softened the probabilities" in text
    assert "lowered the ECE on the test rows, 0.0700 → 0.0200" in text
    images = [block for block in section.blocks if getattr(block, "file_name", None) == RELIABILITY_FILE]
    assert len(images) == 1 and images[0].png.startswith(b"\x89PNG")


def test_calibration_says_what_the_temperature_did_and_why_there_is_none():
    def text_of(calibration):
        section = evaluation_section({"task": "classification", "num_examples": 1, "calibration": calibration})
        return " ".join(render_text(Document("r", sections=[section])).split())

    assert "sharpened the probabilities" in text_of(calibration_of(0.5, 0.05, 0.06))
    assert "did not lower the ECE" in text_of(calibration_of(0.5, 0.05, 0.06))
    assert "nearly as they were" in text_of(calibration_of(1.01, 0.02, 0.02))
    assert "Confidence calibration: none (no validation rows)." in text_of({"skipped": "no validation rows"})
    assert "Confidence calibration" not in text_of(None)


def test_the_data_section_opens_with_the_findings_and_can_leave_out_its_figure():
    summary = {"format": "classification", "max_length": 64,
               "splits": {"train": {"rows": 8, "length_histogram": {"edges": [1.0, 2.0, 3.0], "counts": [5, 3]}}},
               "sample": {"location": "t.jsonl:1", "text": "<|im_start|>user\nhi<|im_end|>\n"},
               "findings": [{"kind": "leakage", "split": "train/test", "count": 3, "message": "3 rows of test also in "
                                                                                          "train"}]}
    blocks = data_section(summary, None).blocks
    assert isinstance(blocks[0], Table) and blocks[0].caption == "Data check findings"
    assert blocks[0].rows == [["leakage", "train/test", "3", "3 rows of test also in train"]]
    assert any(isinstance(block, Image) for block in blocks)
    assert not any(isinstance(block, Image) for block in data_section(summary, None, figures=False).blocks)
    assert Code("<|im_start|>user\nhi<|im_end|>\n") in blocks  # the sample as text, never JSON-escaped
