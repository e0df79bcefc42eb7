"""`tunesmith review judge`: a judge model reviews the same blind pairs through any OpenAI-compatible
``/v1/chat/completions`` endpoint (the user's own, or `tunesmith serve` of a stronger model).

Judge models favour a position (often the first answer shown). Each pair is therefore asked in both orders, the
second time with the answers swapped. The verdict is read one of two ways (``verdict_by``):

- ``reply``: the judge explains and ends with a ``VERDICT: X`` line. A verdict that holds in both orders is stored;
  one that flips with the order is what position bias looks like, and is stored as a tie (the two answers are as
  good as the judge can tell). A reply without a readable verdict leaves the item unjudged.
- ``logprobs``: the judge is asked for one letter, and its verdict is read from the probabilities of its first
  token (``logprobs`` / ``top_logprobs`` of the OpenAI API), as judges too small to follow a reply format are
  scored: p(A) and p(B) are the summed probabilities of the top tokens that are the letter (whitespace and case
  aside). A constant preference for a position adds the same amount to both orders' log-odds with opposite signs
  in the item's own sides, so the mean of the two orders' log-odds cancels it (`weigh`); an item whose mean is
  within `TIE_ODDS` either way is a tie. An order whose top tokens hold neither letter leaves the item unjudged;
  an endpoint that returns no log-probabilities is an error.

Unjudged items are counted; running the command again asks only for the items without a judgment, so an
interrupted or partly unreadable run is finished by running it again.

The judge's verdicts are stored as a reviewer of its own (``judge:<model>``, kind ``judge``): statistics report
them apart from the people, with their agreement. A judge without a model, by closeness to the reference answer,
is `tunesmith.review.judge_reference`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, get_args

import httpx

from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.review.endpoint import ChatEndpoint, EndpointError, ask_chat, ask_first_token, chat_completions_url
from tunesmith.review.names import NAME_HINT, reviewer_name_error
from tunesmith.review.store import Item, ReviewConflict, ReviewStore

__all__ = ["JUDGE_INSTRUCTIONS", "LETTER_INSTRUCTIONS", "TIE_ODDS", "VERDICT_BY", "Decision", "JudgeEndpoint",
           "VerdictBy", "ask", "chat_completions_url", "combine", "judge_review", "letter_probabilities",
           "parse_verdict", "register_judge", "store_verdict", "weigh"]

VerdictBy = Literal["reply", "logprobs"]
VERDICT_BY: tuple[str, ...] = get_args(VerdictBy)
MAX_TOKENS = 512
TOP_LOGPROBS = 20
"""The most top tokens the OpenAI API returns (and `tunesmith serve`)."""
TIE_ODDS = 1.2
"""With ``verdict_by="logprobs"``, an item is a tie unless the judge's odds for one answer, averaged over both
orders (in log-odds), are at least this many to one. Below 1.2:1 (about 55% against 45%) the judge barely prefers
either answer, and counting such near coin-flips as wins would make the win rate mostly noise. The value is a
convention, not a measured threshold: ``--tie-odds`` sets another."""
_VERDICT = re.compile(r"verdict\s*[:=]\s*\**\s*(a|b|tie|both[ _]bad)\b", re.IGNORECASE)
_SWAPPED = {"a": "b", "b": "a", "tie": "tie", "both_bad": "both_bad"}
_LEAST_PROBABILITY = 1e-9
"""Where a letter missing from the top tokens is taken when the least listed token has no probability to speak of
(the OpenAI API reports -9999 for those)."""

_CRITERIA = """You compare two answers to the same request and decide which is better.
Judge on these criteria: {criteria}.
Ignore the order in which the answers are shown and their length; judge only what they say.
"""
JUDGE_INSTRUCTIONS = _CRITERIA + """Explain briefly, then end with one line that is exactly one of:
VERDICT: A
VERDICT: B
VERDICT: TIE
VERDICT: BOTH_BAD
(A if answer A is better, B if answer B is better, TIE if they are equally good, BOTH_BAD if neither is
acceptable.)"""
LETTER_INSTRUCTIONS = _CRITERIA + "Reply with one letter: A if answer A is better, B if answer B is better."
_LETTER_QUESTION = "Which answer is better? Reply with the letter A or B only."

JudgeEndpoint = ChatEndpoint
"""The judge's endpoint: its chat completions URL, model name, optional API key and timeout."""


@dataclass(frozen=True)
class Decision:
    """One item's stored verdict (in its own sides: A is the item's first model), its comment, and whether the two
    orders preferred the same answer."""

    verdict: str
    comment: str
    consistent: bool


def judge_review(run_root, endpoint: JudgeEndpoint, reviewer: str | None = None,
                 transport: httpx.BaseTransport | None = None, verdict_by: VerdictBy = "reply",
                 tie_odds: float = TIE_ODDS) -> dict:
    """Have the judge model judge every item of the run's review it has not judged yet; returns the counts of this
    call: ``judged``, ``consistent``, ``inconsistent`` (the two orders preferred different answers: stored as ties
    by ``reply``, decided by the mean log-odds by ``logprobs``), ``unreadable`` (left unjudged) and ``remaining``.
    ``transport`` replaces the network (tests)."""
    name = reviewer or f"judge:{endpoint.model}"
    if problem := reviewer_name_error(name, person=False):
        raise ConfigError("--reviewer", problem, NAME_HINT)
    if verdict_by not in VERDICT_BY:
        raise ConfigError("--verdict-by", f"is {verdict_by!r}; it must be one of: {', '.join(VERDICT_BY)}")
    if not (math.isfinite(tie_odds) and tie_odds >= 1):
        raise ConfigError("--tie-odds", f"is {tie_odds:g}; it must be a number of at least 1 (1 leaves no ties)")
    counts = {"judged": 0, "consistent": 0, "inconsistent": 0, "unreadable": 0}
    with ReviewStore.open(run_root) as store, httpx.Client(timeout=endpoint.timeout_s, transport=transport) as client:
        # Both orders are asked, so the stored sides need no coin flip: A is the item's first model.
        register_judge(store, name)
        done = {judgment.item_id for judgment in store.judgments() if judgment.reviewer == name}
        for item in store.items():
            if item.item_id in done:
                continue
            if verdict_by == "reply":
                decision = _by_reply(client, endpoint, item, store.rubric, store.show_reference)
            else:
                decision = _by_logprobs(client, endpoint, item, store.rubric, store.show_reference, tie_odds)
            if decision is None:
                counts["unreadable"] += 1
                continue
            if not store_verdict(store, name, item.item_id, decision):
                continue
            counts["judged"] += 1
            counts["consistent" if decision.consistent else "inconsistent"] += 1
        judged, total = store.progress(name)
    return {"reviewer": name, **counts, "remaining": total - judged}


# ---- verdicts from the judge's reply --------------------------------------------------------------------------------


def _by_reply(client: httpx.Client, endpoint: JudgeEndpoint, item: Item, rubric: list[str],
              show_reference: bool) -> Decision | None:
    forward = ask(client, endpoint, item, rubric, show_reference, swapped=False)
    backward = ask(client, endpoint, item, rubric, show_reference, swapped=True)
    if forward is None or backward is None:
        return None
    verdict, comment = combine(forward, _SWAPPED[backward])
    return Decision(verdict, comment, forward == _SWAPPED[backward])


def register_judge(store: ReviewStore, name: str) -> None:
    """Make ``name`` a judge of the review with every item in its queue, A being each item's first model (a judge
    is shown both orders, or none); nothing when it is one already, also when another judge process of the same
    name added it a moment ago."""
    if name in store.judges:
        return
    if name in store.reviewers:
        raise TunesmithError(f"{name!r} is a human reviewer of this review", "give the judge another --reviewer")
    try:
        store.add_reviewer(name, "judge", [(item.item_id, item.first, item.second) for item in store.items()])
    except ReviewConflict:
        if name not in store.judges:
            raise


def store_verdict(store: ReviewStore, name: str, item_id: int, decision: Decision) -> bool:
    """Store the judge's ``decision`` on the item; False when the item was judged meanwhile by another process of
    the same judge (two runs of the command at once): its verdict stands, and this one is not counted."""
    try:
        store.judge(name, item_id, decision.verdict, decision.comment)
    except ReviewConflict:
        return False
    return True


def combine(forward: str, backward: str) -> tuple[str, str]:
    """The stored verdict and its comment from the verdicts of both orders (both in the forward order's sides)."""
    if forward == backward:
        return forward, f"both orders: {forward}"
    return "tie", f"order A,B said {forward}, order B,A said {backward}: inconsistent, stored as a tie"


def ask(client: httpx.Client, endpoint: JudgeEndpoint, item: Item, rubric: list[str], show_reference: bool,
        swapped: bool) -> str | None:
    """The judge's verdict on ``item`` (``a``, ``b``, ``tie`` or ``both_bad`` for the sides as shown), with the
    answers swapped when ``swapped``; None when its reply names no verdict."""
    messages = [{"role": "system", "content": JUDGE_INSTRUCTIONS.format(criteria=_criteria(rubric))},
                {"role": "user", "content": _shown(item, show_reference, swapped)}]
    return parse_verdict(ask_chat(client, endpoint, messages, MAX_TOKENS, "judge endpoint",
                                  "--endpoint, --model and --api-key",
                                  timeout_hint="check that it is up; the items judged so far are kept"))


def parse_verdict(reply: str) -> str | None:
    """The last ``VERDICT: X`` line of a judge's reply as a stored verdict; None when there is none."""
    found = _VERDICT.findall(reply)
    return found[-1].lower().replace(" ", "_") if found else None


# ---- verdicts from the judge's token probabilities ------------------------------------------------------------------


def _by_logprobs(client: httpx.Client, endpoint: JudgeEndpoint, item: Item, rubric: list[str],
                 show_reference: bool, tie_odds: float) -> Decision | None:
    forward = _letters(client, endpoint, item, rubric, show_reference, swapped=False)
    backward = _letters(client, endpoint, item, rubric, show_reference, swapped=True)
    if forward is None or backward is None:
        return None
    return weigh(forward, backward, tie_odds)


def _letters(client: httpx.Client, endpoint: JudgeEndpoint, item: Item, rubric: list[str], show_reference: bool,
             swapped: bool) -> tuple[float, float] | None:
    """p(A) and p(B) of the judge's one-letter answer on ``item`` as shown (swapped when ``swapped``)."""
    messages = [{"role": "system", "content": LETTER_INSTRUCTIONS.format(criteria=_criteria(rubric))},
                {"role": "user", "content": f"{_shown(item, show_reference, swapped)}\n\n{_LETTER_QUESTION}"}]
    top = ask_first_token(client, endpoint, messages, TOP_LOGPROBS, "judge endpoint",
                          "--endpoint, --model and --api-key (or --verdict-by reply, if it refuses logprobs)",
                          timeout_hint="check that it is up; the items judged so far are kept")
    if top is None:
        raise EndpointError(f"judge endpoint {endpoint.url} does not return logprobs (its answer has no "
                            "choices[0].logprobs.content)", "use --verdict-by reply")
    return letter_probabilities(top)


def letter_probabilities(top: list[tuple[str, float]]) -> tuple[float, float] | None:
    """p(A) and p(B) from a first token's ``(token, log-probability)`` list: the summed probabilities of the tokens
    that are the letter once whitespace is stripped, either case. None when neither letter is listed. A letter
    missing beside the other is less likely than every listed token: it is taken at the least listed probability,
    an upper bound, so the odds are finite and, if anything, understated."""
    # A broken endpoint's NaN says nothing, and no log-probability is above 0.
    top = [(token, min(logprob, 0.0)) for token, logprob in top if not math.isnan(logprob)]
    sums = {"a": 0.0, "b": 0.0}
    for token, logprob in top:
        letter = token.strip().lower()
        if letter in sums:
            sums[letter] += math.exp(logprob)
    if not sums["a"] and not sums["b"]:
        return None
    least = max(min(math.exp(logprob) for _, logprob in top), _LEAST_PROBABILITY)
    return sums["a"] or least, sums["b"] or least


def weigh(forward: tuple[float, float], backward: tuple[float, float], tie_odds: float = TIE_ODDS) -> Decision:
    """The verdict from p(A), p(B) of both orders, each as shown (``backward`` showed the item's second answer as
    A): the mean of the two orders' log-odds for the item's first answer, beyond ``log(tie_odds)`` either way, or a
    tie. A judge's constant lean towards a position adds +x to one order's log-odds and -x to the other's."""
    shown_first = math.log(forward[0] / forward[1])
    shown_second = math.log(backward[1] / backward[0])
    mean = (shown_first + shown_second) / 2
    margin = math.log(tie_odds)
    verdict = "a" if mean > margin else "b" if mean < -margin else "tie"
    comment = (f"p(A), p(B) shown A,B: {forward[0]:.3g}, {forward[1]:.3g}; shown B,A: {backward[0]:.3g}, "
               f"{backward[1]:.3g}; mean log-odds of A over B {mean:+.3f}: {verdict}"
               + (f" (within ±{margin:.3f})" if verdict == "tie" else ""))
    return Decision(verdict, comment, shown_first * shown_second > 0)


# ---- what the judge is shown --------------------------------------------------------------------------------------


def _criteria(rubric: list[str]) -> str:
    return ", ".join(rubric) if rubric else "overall quality"


def _shown(item: Item, show_reference: bool, swapped: bool) -> str:
    """The request and both answers (swapped when ``swapped``). The judge sees what the people see: the reference
    only when the review shows it to them."""
    first, second = item.answers[item.first], item.answers[item.second]
    shown_a, shown_b = (second, first) if swapped else (first, second)
    return "\n\n".join(part for part in [
        f"System prompt the assistant had:\n{item.system}" if item.system else "",
        f"Request:\n{item.prompt}",
        f"Reference answer:\n{item.reference}" if show_reference and item.reference else "",
        f"Answer A:\n{shown_a}", f"Answer B:\n{shown_b}",
    ] if part)
