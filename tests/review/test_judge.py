"""`review judge` against a stub OpenAI-compatible endpoint on 127.0.0.1 whose verdicts are known."""

from __future__ import annotations

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.review.judge import JudgeEndpoint, chat_completions_url, judge_review, parse_verdict
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
