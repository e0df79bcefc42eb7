"""Report sections: which example predictions are shown."""

from __future__ import annotations

from tunesmith.report.sections import pick_examples


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
