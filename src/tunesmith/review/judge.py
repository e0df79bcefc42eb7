"""`tunesmith review judge`: a judge model reviews the same blind pairs through any OpenAI-compatible
``/v1/chat/completions`` endpoint (the user's own, or `tunesmith serve` of a stronger model).

Judge models favour a position (often the first answer shown). Each pair is therefore asked in both orders, the
second time with the answers swapped: a verdict that holds in both orders is stored; one that flips with the order
is what position bias looks like, and is stored as a tie (the two answers are as good as the judge can tell). A
reply without a readable verdict leaves the item unjudged and is counted; running the command again asks only
for the items without a judgment, so an interrupted or partly unreadable run is finished by running it again.

The judge's verdicts are stored as a reviewer of its own (``judge:<model>``, kind ``judge``): statistics report
them apart from the people, with their agreement.
"""

from __future__ import annotations

import re

import httpx

from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.review.endpoint import ChatEndpoint, ask_chat, chat_completions_url
from tunesmith.review.names import NAME_HINT, reviewer_name_error
from tunesmith.review.store import Item, ReviewStore

__all__ = ["JUDGE_INSTRUCTIONS", "JudgeEndpoint", "ask", "chat_completions_url", "combine", "judge_review",
           "parse_verdict"]

MAX_TOKENS = 512
_VERDICT = re.compile(r"verdict\s*[:=]\s*\**\s*(a|b|tie|both[ _]bad)\b", re.IGNORECASE)
_SWAPPED = {"a": "b", "b": "a", "tie": "tie", "both_bad": "both_bad"}

JUDGE_INSTRUCTIONS = """You compare two answers to the same request and decide which is better.
Judge on these criteria: {criteria}.
Ignore the order in which the answers are shown and their length; judge only what they say.
Explain briefly, then end with one line that is exactly one of:
VERDICT: A
VERDICT: B
VERDICT: TIE
VERDICT: BOTH_BAD
(A if answer A is better, B if answer B is better, TIE if they are equally good, BOTH_BAD if neither is
acceptable.)"""


JudgeEndpoint = ChatEndpoint
"""The judge's endpoint: its chat completions URL, model name, optional API key and timeout."""


def judge_review(run_root, endpoint: JudgeEndpoint, reviewer: str | None = None,
                 transport: httpx.BaseTransport | None = None) -> dict:
    """Have the judge model judge every item of the run's review it has not judged yet; returns the counts of this
    call: ``judged``, ``consistent``, ``inconsistent`` (stored as ties), ``unreadable`` (left unjudged) and
    ``remaining``. ``transport`` replaces the network (tests)."""
    name = reviewer or f"judge:{endpoint.model}"
    if problem := reviewer_name_error(name, person=False):
        raise ConfigError("--reviewer", problem, NAME_HINT)
    counts = {"judged": 0, "consistent": 0, "inconsistent": 0, "unreadable": 0}
    with ReviewStore.open(run_root) as store, httpx.Client(timeout=endpoint.timeout_s, transport=transport) as client:
        if name not in store.judges:
            if name in store.reviewers:
                raise TunesmithError(f"{name!r} is a human reviewer of this review",
                                     "give the judge another --reviewer")
            # Both orders are asked, so the stored sides need no coin flip: A is the item's first model.
            store.add_reviewer(name, "judge", [(item.item_id, item.first, item.second) for item in store.items()])
        done = {judgment.item_id for judgment in store.judgments() if judgment.reviewer == name}
        # The judge sees what the people see: the reference only when the review shows it to them.
        for item in store.items():
            if item.item_id in done:
                continue
            forward = ask(client, endpoint, item, store.rubric, store.show_reference, swapped=False)
            backward = ask(client, endpoint, item, store.rubric, store.show_reference, swapped=True)
            if forward is None or backward is None:
                counts["unreadable"] += 1
                continue
            verdict, comment = combine(forward, _SWAPPED[backward])
            store.judge(name, item.item_id, verdict, comment)
            counts["judged"] += 1
            counts["consistent" if forward == _SWAPPED[backward] else "inconsistent"] += 1
        judged, total = store.progress(name)
    return {"reviewer": name, **counts, "remaining": total - judged}


def combine(forward: str, backward: str) -> tuple[str, str]:
    """The stored verdict and its comment from the verdicts of both orders (both in the forward order's sides)."""
    if forward == backward:
        return forward, f"both orders: {forward}"
    return "tie", f"order A,B said {forward}, order B,A said {backward}: inconsistent, stored as a tie"


def ask(client: httpx.Client, endpoint: JudgeEndpoint, item: Item, rubric: list[str], show_reference: bool,
        swapped: bool) -> str | None:
    """The judge's verdict on ``item`` (``a``, ``b``, ``tie`` or ``both_bad`` for the sides as shown), with the
    answers swapped when ``swapped``; None when its reply names no verdict."""
    first, second = item.answers[item.first], item.answers[item.second]
    shown_a, shown_b = (second, first) if swapped else (first, second)
    request = "\n\n".join(part for part in [
        f"System prompt the assistant had:\n{item.system}" if item.system else "",
        f"Request:\n{item.prompt}",
        f"Reference answer:\n{item.reference}" if show_reference and item.reference else "",
        f"Answer A:\n{shown_a}", f"Answer B:\n{shown_b}",
    ] if part)
    criteria = ", ".join(rubric) if rubric else "overall quality"
    messages = [{"role": "system", "content": JUDGE_INSTRUCTIONS.format(criteria=criteria)},
                {"role": "user", "content": request}]
    return parse_verdict(ask_chat(client, endpoint, messages, MAX_TOKENS, "judge endpoint",
                                  "--endpoint, --model and --api-key",
                                  timeout_hint="check that it is up; the items judged so far are kept"))


def parse_verdict(reply: str) -> str | None:
    """The last ``VERDICT: X`` line of a judge's reply as a stored verdict; None when there is none."""
    found = _VERDICT.findall(reply)
    return found[-1].lower().replace(" ", "_") if found else None
