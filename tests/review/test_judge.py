"""`review judge` against stub OpenAI-compatible endpoints whose verdicts are known: one on 127.0.0.1 that
replies with a verdict line, and an httpx mock that answers one letter with its top tokens' log-probabilities."""

from __future__ import annotations

import json
import math

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.review.judge import (
    VERDICT_BY,
    JudgeEndpoint,
    chat_completions_url,
    judge_review,
    letter_probabilities,
    parse_verdict,
)
from tunesmith.review.judge_reference import REFERENCE_METRICS
from tunesmith.review.stats import review_stats
from tunesmith.review.store import ReviewStore


def endpoint(url: str, **options) -> JudgeEndpoint:
    return JudgeEndpoint(chat_completions_url(url), "stub-7b", **options)


def test_both_orders_asked_and_position_bias_cancels(review_run, stub_judge, judge_for):
    url, stub = stub_judge
    stub.biased = {"question 0"}  # always "A": says tuned in one order and base in the other
    stub.mute = {"question 1"}
    made = judge_review(review_run, endpoint(url))
    assert made == {"reviewer": "judge:stub-7b", "judged": 3, "consistent": 2, "inconsistent": 1, "unreadable": 1,
                    "remaining": 1}
    assert len(stub.requests) == 8 and {request["model"] for request in stub.requests} == {"stub-7b"}
    for forward, backward in zip(stub.requests[::2], stub.requests[1::2]):
        assert forward["prompt"] == backward["prompt"]
        assert (forward["a"], forward["b"]) == (backward["b"], backward["a"])  # the same pair, sides swapped
    with ReviewStore.open(review_run) as store:
        assert store.judges == ["judge:stub-7b"] and store.reviewers == ["ann", "bob"]
        verdicts = {store.items()[j.item_id - 1].prompt: (j.winner, j.verdict, j.comment)
                    for j in store.judgments()}
    assert verdicts["question 0"][:2] == (None, "tie") and "inconsistent" in verdicts["question 0"][2]
    assert verdicts["question 2"][0] == verdicts["question 3"][0] == "tuned"

    stub.mute, stub.requests = set(), []
    again = judge_review(review_run, endpoint(url))  # resumes: only the unreadable item is asked again
    assert (again["judged"], again["remaining"]) == (1, 0)
    assert {request["prompt"] for request in stub.requests} == {"question 1"}


def test_stats_report_the_judge_and_its_agreement(review_run, stub_judge, judge_for):
    url, _ = stub_judge
    judge_review(review_run, endpoint(url))
    with ReviewStore.open(review_run) as store:
        for item_id, better in [(1, "tuned"), (2, "tuned"), (3, "base"), (4, "tie")]:
            judge_for(store, "ann", item_id, better)
        stats = review_stats(store)
    judge = stats["judges"]["judge:stub-7b"]
    assert judge["comparisons"][0]["wins"] == 4 and judge["judgments"] == 4
    # The judge said "tuned" (category "first") on every item; ann agrees on 2 of 4.
    assert judge["agreement_with_humans"]["pairs"] == 4 and judge["agreement_with_humans"]["observed"] == 0.5
    assert stats["comparisons"][0]["wins"] == 2  # the people's numbers leave the judge out


@pytest.mark.parametrize("setup, message", [
    (lambda stub: setattr(stub, "status", 503), "answered HTTP 503: .*model overloaded"),
    (lambda stub: setattr(stub, "delay_s", 1.0), "did not answer within 0.3s"),
])
def test_endpoint_failures_are_one_line_errors(review_run, stub_judge, setup, message):
    url, stub = stub_judge
    setup(stub)
    with pytest.raises(TunesmithError, match=message) as caught:
        judge_review(review_run, endpoint(url, timeout_s=0.3))
    assert "\n" not in str(caught.value)


def test_unreachable_endpoint(review_run):
    from tunesmith import distributed

    with pytest.raises(TunesmithError, match="judge endpoint http://127.0.0.1:.*check --endpoint"):
        judge_review(review_run, endpoint(f"http://127.0.0.1:{distributed.free_port()}", timeout_s=5))


def test_a_human_name_is_refused(review_run, stub_judge):
    url, _ = stub_judge
    with pytest.raises(TunesmithError, match="'ann' is a human reviewer"):
        judge_review(review_run, endpoint(url), reviewer="ann")


@pytest.mark.parametrize("reply, verdict", [
    ("A is better.\nVERDICT: A", "a"), ("verdict: both_bad", "both_bad"), ("VERDICT: Both bad", "both_bad"),
    ("**Verdict:** B", "b"), ("Verdict = TIE.", "tie"), ("VERDICT: A ... on reflection VERDICT: B", "b"),
    ("I prefer answer A.", None), ("VERDICT: C", None),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


@pytest.mark.parametrize("given", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/chat/completions"])
def test_chat_completions_url(given):
    assert chat_completions_url(given) == "http://h:1/v1/chat/completions"


# ---- --verdict-by logprobs: the verdict read from the judge's first-token probabilities ----------------------------


class LetterJudge:
    """An OpenAI-compatible endpoint (an httpx `MockTransport`) that answers one token with ``top_logprobs``: the
    log-odds of A over B as shown are ``bias`` (a lean towards the first position) plus ``prefer`` when the tuned
    model's answer is shown as A (minus it when shown as B). Prompts in ``blind`` list neither letter among the top
    tokens; ``plain`` answers carry no logprobs at all."""

    def __init__(self, prefer: float, bias: float = 0.0):
        self.prefer, self.bias, self.blind, self.plain = prefer, bias, set(), False
        self.bodies: list[dict] = []

    def transport(self):
        import httpx

        return httpx.MockTransport(self.answer)

    def answer(self, request):
        import httpx

        body = json.loads(request.content)
        self.bodies.append(body)
        text = body["messages"][-1]["content"]
        prompt = text.split("Request:\n", 1)[1].split("\n\n", 1)[0]
        shown_a = text.split("Answer A:\n", 1)[1].split("\n\n", 1)[0]
        log_odds = self.bias + (self.prefer if shown_a.startswith("tuned") else -self.prefer)
        p_a = 0.9 / (1 + math.exp(-log_odds))  # 0.1 left to a token that is neither letter
        top = [("The", 0.1)] if prompt in self.blind else [
            ("A", p_a * 0.7), (" a", p_a * 0.3), ("\nB", 0.9 - p_a), ("The", 0.1)]
        entries = [{"token": token, "logprob": math.log(p), "bytes": list(token.encode())} for token, p in top]
        choice = {"index": 0, "message": {"role": "assistant", "content": top[0][0]}, "finish_reason": "length",
                  "logprobs": None if self.plain else {"content": [{**entries[0], "top_logprobs": entries}],
                                                       "refusal": None}}
        return httpx.Response(200, json={"choices": [choice]})


@pytest.mark.parametrize("prefer, winner", [(1.0, "tuned"), (-1.0, "base")])
def test_position_bias_cancels_in_the_mean_log_odds(review_run, prefer, winner):
    # Says A in both orders, but leans to the better answer by 1: whichever order is read alone, or the swapped
    # order read without swapping back, names the wrong winner in one of the two cases.
    judge = LetterJudge(prefer=prefer, bias=2.0)
    made = judge_review(review_run, endpoint("http://judge"), transport=judge.transport(), verdict_by="logprobs")
    # Each order prefers the answer shown first, so the orders disagree on every item; the mean finds the better.
    assert made == {"reviewer": "judge:stub-7b", "judged": 4, "consistent": 0, "inconsistent": 4, "unreadable": 0,
                    "remaining": 0}
    assert all(body["max_tokens"] == 1 and body["temperature"] == 0 and body["logprobs"] is True
               and body["top_logprobs"] == 20 for body in judge.bodies)
    assert all(body["messages"][-1]["content"].endswith("Reply with the letter A or B only.")
               for body in judge.bodies)
    with ReviewStore.open(review_run) as store:
        judgments = store.judgments()
        stats = review_stats(store)
    assert {j.winner for j in judgments} == {winner}
    # Tuned is the item's first answer. Shown A,B its log-odds are 2 + prefer; shown B,A base's are 2 - prefer,
    # so tuned's there are prefer - 2; the mean is prefer.
    p_a, p_a_swapped = 0.9 / (1 + math.exp(-2 - prefer)), 0.9 / (1 + math.exp(-2 + prefer))
    assert judgments[0].comment == (f"p(A), p(B) shown A,B: {p_a:.3g}, {0.9 - p_a:.3g}; shown B,A: "
                                    f"{p_a_swapped:.3g}, {0.9 - p_a_swapped:.3g}; mean log-odds of A over B "
                                    f"{prefer:+.3f}: {'a' if prefer > 0 else 'b'}")
    comparison = stats["judges"]["judge:stub-7b"]["comparisons"][0]
    assert (comparison["wins"], comparison["losses"]) == ((4, 0) if winner == "tuned" else (0, 4))
    assert comparison["win_interval"] and stats["comparisons"][0]["items"] == 0  # the people's numbers: none


@pytest.mark.parametrize("prefer, tie_odds, verdict", [
    (0.1, 1.2, "tie"),  # mean log-odds 0.1 < log 1.2 = 0.182
    (0.1, 1.05, "a"),   # beyond log 1.05 = 0.049
    (-0.5, 1.2, "b"),
])
def test_the_tie_odds_decide_what_is_a_tie(review_run, prefer, tie_odds, verdict):
    judge = LetterJudge(prefer=prefer, bias=-1.5)
    judge_review(review_run, endpoint("http://judge"), transport=judge.transport(), verdict_by="logprobs",
                 tie_odds=tie_odds)
    with ReviewStore.open(review_run) as store:
        assert {j.verdict for j in store.judgments()} == {verdict}


def test_an_order_without_either_letter_leaves_the_item_unjudged_until_asked_again(review_run):
    judge = LetterJudge(prefer=1.0)
    judge.blind = {"question 1"}
    made = judge_review(review_run, endpoint("http://judge"), transport=judge.transport(), verdict_by="logprobs")
    assert (made["judged"], made["consistent"], made["unreadable"], made["remaining"]) == (3, 3, 1, 1)
    judge.blind, judge.bodies = set(), []
    again = judge_review(review_run, endpoint("http://judge"), transport=judge.transport(), verdict_by="logprobs")
    assert (again["judged"], again["remaining"]) == (1, 0) and len(judge.bodies) == 2


def test_an_endpoint_without_logprobs_is_one_line_naming_the_other_way(review_run):
    judge = LetterJudge(prefer=1.0)
    judge.plain = True
    with pytest.raises(TunesmithError, match=r"judge endpoint http://judge/v1/chat/completions does not return "
                                             r"logprobs .*use --verdict-by reply") as caught:
        judge_review(review_run, endpoint("http://judge"), transport=judge.transport(), verdict_by="logprobs")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("options, key", [({"tie_odds": 0.5}, "--tie-odds"), ({"tie_odds": math.nan}, "--tie-odds"),
                                          ({"verdict_by": "vibes"}, "--verdict-by")])
def test_bad_options_name_the_flag(review_run, options, key):
    with pytest.raises(TunesmithError, match=key):
        judge_review(review_run, endpoint("http://judge"), **options)


@pytest.mark.parametrize("top, expected", [
    ([("A", math.log(0.5)), (" a", math.log(0.1)), ("B\n", math.log(0.2))], (0.6, 0.2)),
    ([("A", math.log(0.6)), ("x", math.log(0.3)), ("y", math.log(0.05))], (0.6, 0.05)),  # B below every listed one
    ([("b", math.log(0.4)), ("x", -9999.0)], (1e-9, 0.4)),  # OpenAI's "very unlikely" is no probability
    ([("AB", math.log(0.5)), ("x", math.log(0.3))], None),
    ([], None),
])
def test_letter_probabilities(top, expected):
    found = letter_probabilities(top)
    assert found == (pytest.approx(expected) if expected else None)


def test_the_cli_offers_the_ways_the_judge_reads_verdicts():
    import argparse

    from tunesmith.cli.review_commands import add_commands

    commands = argparse.ArgumentParser().add_subparsers()
    add_commands(commands)
    judge = commands.choices["review"]._subparsers._group_actions[0].choices["judge"]
    flags = {action.dest: action for action in judge._actions}
    assert tuple(flags["verdict_by"].choices) == (*VERDICT_BY, "reference") and flags["verdict_by"].default == "reply"
    assert tuple(flags["metric"].choices) == REFERENCE_METRICS and flags["metric"].default is None
