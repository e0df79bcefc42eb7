"""`tunesmith feedback export --pairs LOG_DIR OUT.jsonl`: what users said about served answers, as preference pairs.

Feedback is tied to request records by ``id`` (the latest feedback of a request wins), as for the rows of
`tunesmith.monitor.feedback`. Pairs come from two rules:

- a ``correction`` beats the answer the model served for that request (chosen: the correction, rejected: the
  served answer);
- an answer rated ``down`` (without a correction) loses to every accepted answer for the same prompt: an answer
  rated ``up``, or a correction, of a request with the same conversation.

The prompt is the client's conversation (`training_rows.conversation`). Pairs are written by
`tunesmith.data.pair_rows` (each once, as ``preference`` rows under tunesmith's own keys); what gives no pair is
counted by reason: a request without feedback, an answer rated down with nothing accepted for its prompt, an
accepted answer with no rejected one to beat, a request of another model, a refused or failed request.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.data.pair_rows import PairRows, PairsWritten
from tunesmith.json_files import dumps
from tunesmith.monitor.feedback import FAILED, NO_REQUEST, check_exported
from tunesmith.monitor.request_log import answered, read_records, served_run
from tunesmith.monitor.training_rows import NO_CONTENT, Skipped, check_output, conversation

NO_FEEDBACK = "no feedback"
NOT_RATED = "feedback without a rating or a correction"
NOTHING_BETTER = "rated down, with no accepted answer or correction for the same prompt"
NOTHING_WORSE = "rated up, with no answer rated down for the same prompt"
CORRECTION_ALONE = "a correction of an answer that failed or was not logged: nothing to set it against"


def export_feedback_pairs(log_dir: str | Path, output_path: str | Path, run: str | Path | None = None,
                          overwrite: bool = False) -> PairsWritten:
    """Write the pairs the log's feedback gives (see the module docstring) to ``output_path`` (JSON Lines, written
    whole or not at all; an existing file only with ``overwrite``). ``run`` (else the primary model's run in
    served.json, when it names one) says whose answers count: requests another served model answered are left out."""
    output_path = Path(output_path)
    check_output(output_path, overwrite, "feedback export", log_dir)
    served = served_run(log_dir, run)
    log = read_records(log_dir)
    pairs = PairRows()
    accepted: dict[str, list[str]] = {}  # prompt (as JSON) -> accepted answers, in log order
    rated_down: list[tuple[str, list[dict], str]] = []
    rated_up: list[tuple[str, str]] = []
    for request in log.requests:
        try:
            check_exported(request, served)
            feedback = log.feedback.get(request.get("id"))
            if not feedback:
                raise Skipped(NO_FEEDBACK)
            prompt = conversation(request)
            key = dumps(prompt)
            correction = feedback.get("correction")
            if correction:
                accepted.setdefault(key, []).append(correction)
                try:
                    served_answer = _served_answer(request)
                except Skipped:
                    raise Skipped(CORRECTION_ALONE) from None
                pairs.add(prompt, correction, served_answer)
            elif feedback.get("rating") == "up":
                answer = _served_answer(request)
                accepted.setdefault(key, []).append(answer)
                rated_up.append((key, answer))
            elif feedback.get("rating") == "down":
                rated_down.append((key, prompt, _served_answer(request)))
            else:
                raise Skipped(NOT_RATED)  # e.g. a label alone: no answer text to set against another
        except Skipped as skip:
            pairs.skip(str(skip))
    beaten = set()
    for key, prompt, answer in rated_down:
        better = list(dict.fromkeys(accepted.get(key, [])))
        if not better:
            pairs.skip(NOTHING_BETTER)
        for chosen in better:
            pairs.add(prompt, chosen, answer)
            beaten.add((key, chosen))
    pairs.skip(NOTHING_WORSE, sum((key, answer) not in beaten for key, answer in rated_up))
    requested = {request.get("id") for request in log.requests}
    pairs.skip(NO_REQUEST, sum(request_id not in requested for request_id in log.feedback))
    return pairs.write(output_path)


def _served_answer(request: dict) -> str:
    """The answer the model served, else `Skipped` (a failed request, or one whose content was not logged)."""
    if not answered(request):
        raise Skipped(FAILED)
    if not isinstance(request.get("answer"), str):
        raise Skipped(NO_CONTENT)
    return request["answer"]
