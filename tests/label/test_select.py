"""Picking requests to label from synthetic logs whose right answers are known."""

from __future__ import annotations

import pytest

from tunesmith.errors import ConfigError, RunError
from tunesmith.label import select
from tunesmith.label.select import select_requests

WORDS = ["apples", "bridges", "castles", "dolphins", "engines", "forests", "glaciers", "harbours", "islands",
         "jungles"]


def text(number: int) -> str:
    """A message no other number's message is a near-copy of."""
    return f"a note number {number} about {WORDS[number % len(WORDS)]} and {WORDS[(number * 3 + 1) % len(WORDS)]}"


def picked_ids(selection) -> list[str]:
    return [entry.candidate.request_id for entry in selection.picked]


def test_uncertainty_picks_the_least_confident(label_run, request_log, records):
    run = label_run()
    confidences = [0.9, 0.55, 0.7, 0.51, 0.99]
    logs = request_log([records.classified(i, text(i), confidence=c) for i, c in enumerate(confidences)], run)
    selection = select_requests(logs, strategy="uncertainty", budget=2)
    assert picked_ids(selection) == ["req-3", "req-1"]
    assert [entry.reason for entry in selection.picked] == ["least confident: 0.510", "least confident: 0.550"]
    assert selection.left_out == {select.OVER_BUDGET: 3}
    assert (selection.task, selection.format, selection.labels) == ("classification", "classification",
                                                                     ["ham", "spam"])


def test_probability_stands_in_for_confidence_in_older_logs(label_run, request_log, records):
    logs = request_log([records.classified(i, text(i), probability=p) for i, p in enumerate([0.8, 0.6, 0.95])],
                       label_run())
    assert picked_ids(select_requests(logs, budget=1)) == ["req-1"]


def test_novelty_picks_the_most_novel(label_run, request_log, records):
    novelty = [0.1, 0.8, 0.3, 0.95, 0.2]
    logs = request_log([records.classified(i, text(i), novelty=n, confidence=0.9) for i, n in enumerate(novelty)],
                       label_run())
    selection = select_requests(logs, strategy="novelty", budget=3)
    assert picked_ids(selection) == ["req-3", "req-1", "req-2"]
    assert selection.picked[0].reason == "most novel: 0.950"


def test_mixed_takes_the_rankings_in_turn_without_repeats(label_run, request_log, records):
    # req-0 is both the least confident and the most novel: it is picked once.
    values = [(0.5, 0.9), (0.6, 0.1), (0.99, 0.8), (0.7, 0.2), (0.98, 0.3)]
    logs = request_log([records.classified(i, text(i), confidence=c, novelty=n) for i, (c, n) in enumerate(values)],
                       label_run())
    selection = select_requests(logs, strategy="mixed", budget=4)
    assert picked_ids(selection) == ["req-0", "req-1", "req-2", "req-3"]
    assert len(set(picked_ids(select_requests(logs, strategy="mixed", budget=10)))) == 5


def test_near_copies_are_picked_once(label_run, request_log, records):
    long = " ".join(f"word{i}" for i in range(40))
    logs = request_log([
        records.classified(0, "WIN a FREE prize, now!!", confidence=0.50),
        records.classified(1, "win a free prize now", confidence=0.51),  # the same normalized text
        records.classified(2, long + " ending", confidence=0.52),
        records.classified(3, long + " finale", confidence=0.53),  # Jaccard 37/39 with req-2
        records.classified(4, text(4), confidence=0.54),
    ], label_run())
    selection = select_requests(logs, budget=10)
    assert picked_ids(selection) == ["req-0", "req-2", "req-4"]
    assert selection.left_out == {select.NEAR_COPY: 2}


def test_the_near_copy_threshold_is_the_runs_data_check_threshold(label_run, request_log, records):
    long = " ".join(f"word{i}" for i in range(40))
    run = label_run(data={"check": {"near_duplicate_threshold": 0.99}})
    logs = request_log([records.classified(2, long + " ending", confidence=0.52),
                        records.classified(3, long + " finale", confidence=0.53)], run)
    assert picked_ids(select_requests(logs)) == ["req-2", "req-3"]


def test_requests_that_cannot_or_need_not_be_labelled_are_counted(label_run, request_log, records):
    refused = {"model": None, "status": 401, "error": "a valid API key is needed"}
    logs = request_log([
        records.classified(0, text(0), confidence=0.5),  # a user gave its label: feedback export writes it
        records.classified(1, text(1), confidence=0.6),  # only rated up: still worth a label
        records.classified(2, text(2), confidence=0.7),  # corrected
        records.classified(3, text(3), confidence=0.1, **refused),
        records.classified(4, text(4), confidence=0.1, status=500, error="out of memory"),
        records.classified(5, text(5), confidence=0.1, model="base"),
        {**records.classified(6, text(6), confidence=0.1), "text": None},
        records.classified(7, text(7)),  # no confidence
        {"kind": "feedback", "id": "req-0", "rating": None, "label": "spam"},
        {"kind": "feedback", "id": "req-1", "rating": "up"},
        {"kind": "feedback", "id": "req-2", "rating": "down", "correction": "spam"},
    ], label_run())
    selection = select_requests(logs)
    assert picked_ids(selection) == ["req-1"]
    assert selection.left_out == {select.HAS_FEEDBACK: 2, select.REFUSED: 1, select.FAILED: 1,
                                  select.OTHER_MODEL: 1, select.NO_CONTENT: 1, "it carries no confidence": 1}
    assert selection.notes == ["1 of 2 requests carry no confidence, so the confidence ranking leaves them out"]


def test_a_missing_signal_is_explained(label_run, request_log, records, error_of):
    logs = request_log([records.classified(i, text(i), confidence=0.5) for i in range(3)], label_run())
    message = error_of(lambda: select_requests(logs, strategy="novelty"))
    assert message.startswith("none of the 3 requests that could be labelled carries novelty: serve the run after "
                              "evaluating it with the rag extra")
    assert "carries novelty" in error_of(lambda: select_requests(logs, strategy="mixed"))


def test_nothing_to_label_is_one_line(label_run, request_log, records, error_of):
    logs = request_log([records.classified(0, text(0), model="base"), records.classified(1, text(1), status=500)],
                       label_run())
    message = error_of(lambda: select_requests(logs))
    assert "no request of" in message and f"answered by another served model: 1; {select.FAILED}: 1" in message


def test_chat_requests_keep_their_conversation(label_run, request_log, records):
    rows = [{"prompt": f"question {i} about {WORDS[i % 10]}", "completion": f"answer {i}"} for i in range(20)]
    run = label_run("gen-run", rows)
    conversation = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "ok"}, {"role": "user", "content": "what about bridges?"}]
    logs = request_log([{**records.chatted(0, "x", "Bridges span rivers.", confidence=0.4),
                         "messages": conversation}, records.chatted(1, text(1), confidence=0.9)], run)
    selection = select_requests(logs, budget=1)
    candidate = selection.picked[0].candidate
    assert (selection.task, selection.format) == ("generation", "prompt_completion")
    assert (candidate.input, candidate.messages, candidate.prediction) == ("what about bridges?", conversation,
                                                                           "Bridges span rivers.")


@pytest.mark.parametrize(("options", "message"), [
    ({"strategy": "random"}, "--strategy: 'random' is not one of uncertainty, novelty, mixed"),
    ({"budget": 0}, "--budget: must be a whole number of requests, 1 or more; got 0"),
])
def test_bad_options(label_run, request_log, records, options, message):
    logs = request_log([records.classified(0, text(0), confidence=0.5)], label_run())
    with pytest.raises(ConfigError, match=message):
        select_requests(logs, **options)


def test_a_run_is_needed(request_log, records):
    logs = request_log([records.classified(0, text(0), confidence=0.5)])
    with pytest.raises(RunError, match="served.json is missing; pass --run RUN"):
        select_requests(logs)
