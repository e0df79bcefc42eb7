"""Every metric against values worked out by hand on small hand-made examples."""

from __future__ import annotations

import math

import pytest

from tunesmith.predict.metrics import (
    OTHER_LABEL,
    classification_metrics,
    exact_match,
    generation_metrics,
    parse_number,
    qa_metrics,
    regression_metrics,
    squad_exact_match,
    squad_normalize,
    token_f1,
)


def test_three_class_metrics_match_hand_computed_confusion_matrix():
    y_true = ["a", "a", "a", "b", "b", "c", "c", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c", "c", "a"]
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    # rows = true a/b/c, columns = predicted a/b/c
    assert metrics["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[2, 1, 0], [0, 1, 1], [1, 0, 2]]}
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    # precision: a 2/3 (2 of 3 predicted a), b 1/2, c 2/3; recall: a 2/3, b 1/2, c 2/3 -> F1 equals both
    assert metrics["precision"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert metrics["recall"] == pytest.approx(11 / 18)
    assert metrics["f1"] == pytest.approx(11 / 18)
    assert metrics["per_class"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert metrics["per_class"]["a"]["support"] == 3
    assert metrics["per_class"]["c"]["precision"] == pytest.approx(2 / 3)


def test_predictions_outside_the_label_set_are_wrong_and_get_an_other_column():
    metrics = classification_metrics(["a", "b", "c", "a"], ["a", "maybe", "c", "b"], ["a", "b", "c"])
    assert metrics["confusion_matrix"]["labels"] == ["a", "b", "c", OTHER_LABEL]
    assert metrics["confusion_matrix"]["matrix"] == [[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert metrics["accuracy"] == 0.5
    # precision a 1/1, b 0/1, c 1/1; recall a 1/2, b 0/1, c 1/1; F1 a 2/3, b 0, c 1 (<other> is not a class)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(5 / 9)
    assert set(metrics["per_class"]) == {"a", "b", "c"}


def test_no_other_column_when_every_prediction_is_a_label():
    metrics = classification_metrics(["x", "y"], ["y", "y"], ["x", "y"])
    assert metrics["confusion_matrix"] == {"labels": ["x", "y"], "matrix": [[0, 1], [0, 1]]}
    assert metrics["per_class"]["x"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # zero_division=0


def test_unknown_true_label_is_rejected():
    with pytest.raises(ValueError, match="not in the label set"):
        classification_metrics(["z"], ["a"], ["a", "b"])


def test_regression_metrics_by_hand_skip_unparseable_predictions():
    metrics = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, None, 2.0, 5.0])
    # remaining pairs (1, 1.5), (3, 2), (4, 5): errors 0.5, -1, 1
    assert metrics["parse_failures"] == 1
    assert metrics["mse"] == pytest.approx((0.25 + 1 + 1) / 3)
    assert metrics["mae"] == pytest.approx(2.5 / 3)
    # x = 1, 3, 4 (mean 8/3); y = 1.5, 2, 5 (mean 17/6): sxy = 87/18, sxx = 42/9, syy = 258/36
    assert metrics["pearson"] == pytest.approx((87 / 18) / math.sqrt(42 / 9 * 258 / 36))


def test_pearson_is_none_for_constant_predictions_and_all_none_when_nothing_parses():
    constant = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert constant["pearson"] is None
    assert constant["mse"] == pytest.approx(2 / 3)
    assert regression_metrics([1.0, 2.0], [None, None]) == {
        "mse": None, "mae": None, "pearson": None, "parse_failures": 2,
    }


def test_bleu_is_100_for_identical_and_0_for_disjoint_sentences():
    same = generation_metrics(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same["bleu"] == pytest.approx(100.0)
    assert same["rouge_l"] == pytest.approx(1.0)
    assert same["exact_match"] == 1.0
    disjoint = generation_metrics(["the cat sat on the mat"], ["dogs run quickly home now"])
    assert disjoint["bleu"] == pytest.approx(0.0, abs=1e-9)
    assert disjoint["rouge_l"] == 0.0


def test_rouge_l_of_known_pairs():
    # LCS "the cat on mat" = 4 of 6 tokens on both sides: P = R = F = 2/3
    assert generation_metrics(["the cat sat on the mat"], ["the cat lay on a mat"])["rouge_l"] == pytest.approx(2 / 3)
    # stemming: cats -> cat, sitting -> sit; LCS "the cat sit" = 3 of 4 tokens
    assert generation_metrics(["the cats are sitting"], ["the cat is sitting"])["rouge_l"] == pytest.approx(0.75)
    # the mean over rows
    both = generation_metrics(["the cat sat on the mat", "a b"], ["the cat lay on a mat", "a b"])
    assert both["rouge_l"] == pytest.approx((2 / 3 + 1) / 2)


def test_exact_match_normalizes_case_and_whitespace():
    assert exact_match(["Paris"], "  paris \n")
    assert exact_match(["New  York"], "new york")
    assert not exact_match(["Paris"], "Paris.")
    metrics = generation_metrics(["Paris", "Berlin", "Rome"], ["PARIS", "berlin  ", "Madrid"])
    assert metrics["exact_match"] == pytest.approx(2 / 3)


def test_multiple_references_take_the_best_one():
    metrics = generation_metrics([["a dog runs", "the cat sat on the mat"]], ["the cat sat on the mat"])
    assert metrics == {"bleu": pytest.approx(100.0), "rouge_l": pytest.approx(1.0), "exact_match": 1.0}
    # rows with fewer references than others are allowed
    mixed = generation_metrics([["one two three four"], ["x y", "five six seven eight"]],
                               ["one two three four", "five six seven eight"])
    assert mixed["bleu"] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.8", 3.8), ("Score: 3.8/5", 3.8), ("-2 points", -2.0), ("about .5", 0.5), ("4.", 4.0),
        ("1e3 votes", 1000.0), ("+7", 7.0), ("no number", None), ("", None), ("1e999", None),
    ],
)
def test_parse_number_reads_the_first_number(text, expected):
    assert parse_number(text) == expected


def test_squad_normalization_exact_match_and_token_f1_by_hand():
    assert squad_normalize("The  Panthers' defense!") == "panthers defense"
    assert squad_exact_match(["Denver Broncos"], "the Denver Broncos.")
    assert not squad_exact_match(["Denver Broncos"], "Broncos")
    # prediction "broncos of denver" vs "denver broncos": 2 common tokens, precision 2/3, recall 2/2
    assert token_f1(["Denver Broncos"], "Broncos of Denver") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert token_f1(["308", "three hundred eight"], "three hundred") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert token_f1(["a"], "the") == 1.0  # both normalize to nothing
    assert token_f1(["Paris"], "") == 0.0
    scores = qa_metrics(["Paris", ["308", "three hundred eight"]], ["paris.", "308 points"])
    assert scores["squad_em"] == 0.5 and scores["squad_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert qa_metrics([], []) == {"squad_em": None, "squad_f1": None}
