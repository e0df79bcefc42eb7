"""How sure a served answer is, as the response and the request log report it.

- A label (``/v1/classify``, and a chat answer of a classification run that is one of its labels): the probability
  of that label over the run's labels, calibrated with the temperature evaluation fitted (`ServedModel.temperature`;
  without a reference the plain softmax, and ``calibrated`` says so). Kind ``label_probability``.
- Any other generated answer: its sequence confidence, the geometric mean of its tokens' probabilities
  (`tunesmith.serve.engine.Finished.confidence`). Kind ``sequence``.

With ``serve.min_confidence`` set, an answer below it is flagged ``low_confidence``; without it there is no flag.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.predict.calibration import calibrated_probabilities
from tunesmith.results.reference import ConfidenceKind
from tunesmith.serve.served import ServedModel


@dataclass(frozen=True)
class Confidence:
    value: float | None
    """None for an answer without tokens."""
    kind: ConfidenceKind
    low: bool | None
    """Below ``serve.min_confidence``; None when it is not set (or there is no value)."""
    calibrated: bool | None = None
    """Label probabilities: whether a calibration temperature was applied."""

    @classmethod
    def judged(cls, model: ServedModel, value: float | None, kind: ConfidenceKind,
               calibrated: bool | None = None) -> Confidence:
        low = value < model.min_confidence if model.min_confidence is not None and value is not None else None
        return cls(value, kind, low, calibrated)

    def response(self) -> dict:
        """The ``tunesmith`` object of a chat or completion response."""
        return {"confidence": self.value, "confidence_kind": self.kind,
                **({"low_confidence": self.low} if self.low is not None else {})}

    def log_fields(self) -> dict:
        """The request record's fields."""
        return {**self.response(), **({"calibrated": self.calibrated} if self.calibrated is not None else {})}


def label_confidence(model: ServedModel, scores: dict[str, float]) -> tuple[str, dict[str, float], Confidence]:
    """``(label, probabilities, confidence)`` of label log-probability ``scores``: the most probable label (the first
    listed on a tie, as evaluation picks) and every label's calibrated probability."""
    probabilities = calibrated_probabilities(scores, model.temperature)
    label = max(scores, key=probabilities.__getitem__)
    return label, probabilities, Confidence.judged(model, probabilities[label], "label_probability",
                                                   calibrated=model.temperature is not None)

