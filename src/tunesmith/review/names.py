"""What a reviewer may be called: one rule, checked wherever a name enters a review (the `review:` section and
``--reviewers`` of `tunesmith review create`, ``--reviewer`` of `tunesmith review judge`, and the database writer
beneath them, `tunesmith.review.store`).

A person's name is part of their review page's address (``/review/<run>/<reviewer>``): a ``/`` would split it
into another run and reviewer, and ``.`` or ``..`` are path steps a browser resolves away (written ``%2e%2e`` too),
so such a queue could never be opened. Control characters (a NUL, a newline) and very long names break the one-line
tables and errors that show names. A judge model's name is never an address (the review pages serve people only),
so ``judge:Qwen/Qwen2.5-0.5B-Instruct`` may keep its slash.
"""

from __future__ import annotations

from tunesmith.text import preview

MAX_REVIEWER_LENGTH = 64
"""As long as an annotator's name may be (`tunesmith.label.store.MAX_ANNOTATOR_LENGTH`)."""
PATH_STEPS = (".", "..")
NAME_HINT = "use letters, digits, spaces and punctuation other than / and \\, e.g. ann or Ann B."


def reviewer_name_problem(name: object, person: bool = True) -> str | None:
    """What makes ``name`` unusable as the name of a reviewer (``person``) or a judge model, as the end of a
    sentence that starts with the name; None when it is usable."""
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if len(name) > MAX_REVIEWER_LENGTH:
        return f"has {len(name)} characters, at most {MAX_REVIEWER_LENGTH} are allowed"
    if not name.isprintable():
        return "holds control characters (a tab, a newline, a NUL)"
    if name != name.strip():
        return "starts or ends with spaces"
    if person and ("/" in name or "\\" in name):
        return "holds a slash: the name is part of the review page's address, so its queue could not be opened"
    if person and name in PATH_STEPS:
        return "is a path step: the name is part of the review page's address, so its queue could not be opened"
    return None


def reviewer_name_error(name: object, person: bool = True) -> str | None:
    """``reviewer name 'x' PROBLEM`` (the name cut short), or None when ``name`` is usable."""
    problem = reviewer_name_problem(name, person)
    return None if problem is None else f"reviewer name {preview(name)} {problem}"
