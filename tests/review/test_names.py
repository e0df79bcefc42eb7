"""What a reviewer may be called: a person's name is part of a page's address, a judge's is not."""

from __future__ import annotations

import pytest

from tunesmith.review.names import MAX_REVIEWER_LENGTH, reviewer_name_error, reviewer_name_problem


@pytest.mark.parametrize("name", ["ann", "Ann B.", "o'neil", "zoë", "a" * MAX_REVIEWER_LENGTH, "qa:ann", "#1 ?%"])
def test_usable_names(name):
    assert reviewer_name_problem(name) is None


@pytest.mark.parametrize(("name", "problem"), [
    ("", "is empty"), ("  ", "is empty"), (None, "is empty"),
    ("a" * (MAX_REVIEWER_LENGTH + 1), f"has {MAX_REVIEWER_LENGTH + 1} characters, at most 64 are allowed"),
    ("a\x00", "holds control characters (a tab, a newline, a NUL)"), ("a\u202eb", "holds control characters"),
    (" ann", "starts or ends with spaces"), ("qa/ann", "holds a slash"), ("qa\\ann", "holds a slash"),
    (".", "is a path step"), ("..", "is a path step"),
])
def test_unusable_names_say_why(name, problem):
    assert reviewer_name_problem(name).startswith(problem)


def test_a_judge_may_have_a_slash_but_no_control_character():
    assert reviewer_name_problem("judge:Qwen/Qwen2.5-0.5B-Instruct", person=False) is None
    assert reviewer_name_problem("..", person=False) is None
    assert reviewer_name_error("judge:\x07", person=False) == ("reviewer name 'judge:\\x07' holds control characters "
                                                               "(a tab, a newline, a NUL)")
