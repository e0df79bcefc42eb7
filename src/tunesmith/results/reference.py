"""A run's reference (``reference.json``): what healthy traffic looks like for it, measured on held-out
in-distribution rows the model did not train on (its validation and test rows), seen as the server sees requests.

Evaluation writes it (`tunesmith.evaluate`); `tunesmith serve` reads the calibration temperature and the instruction
to strip from inputs; `tunesmith monitor` compares each window of live traffic with it. Without a reference no
check knows what is normal for this run, so drift is not judged.

Every list holds one value per held-out row, in the same order, so a test may sample them together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from tunesmith.errors import RunError
from tunesmith.json_files import read_json, write_json

REFERENCE_VERSION = 1
"""Raise when a field changes meaning: a reference of another version is refused (evaluate the run again)."""
ConfidenceKind = Literal["label_probability", "sequence"]


@dataclass(frozen=True)
class Reference:
    task: str
    """The run's task (classification, regression, generation)."""
    sources: dict[str, int]
    """Held-out rows by split, e.g. ``{"validation": 183, "test": 1000}``."""
    instruction: str
    """The instruction every training row's user turn starts with; inputs are compared without it (`input_of`)."""
    prompt_tokens: list[int]
    """Tokens of each held-out row's templated prompt, system prompt included: what a request record's
    ``prompt_tokens`` counts."""
    novelty: list[float] | None = None
    """Each held-out input's novelty (`tunesmith.retrieval.novelty`); None when it was not measured
    (``novelty_skipped`` says why)."""
    novelty_skipped: str | None = None
    embedder: str | None = None
    """Identity of the embedding model the novelty scores were measured with."""
    training_inputs: int | None = None
    """Training inputs in the novelty index."""
    labels: list[str] | None = None
    """The run's labels (classification)."""
    predicted_labels: list[str] | None = None
    """The tuned model's predicted label of each held-out row (classification)."""
    confidence: list[float] | None = None
    """Each held-out answer's confidence, as the server reports it: a classification's calibrated probability of
    its predicted label, or a generation's sequence confidence (the geometric mean of its tokens' probabilities);
    None when the run gives none (``confidence_skipped`` says why)."""
    confidence_kind: ConfidenceKind | None = None
    confidence_skipped: str | None = None
    temperature: float | None = None
    """Classification by label likelihood: label log-probabilities are divided by this before the softmax
    (temperature scaling, fitted on the validation rows; 1.0 changes nothing)."""
    created: str = ""
    version: int = REFERENCE_VERSION
    extra: dict = field(default_factory=dict)
    """Anything else evaluation records beside (e.g. how long it took); not read by the checks."""

    @property
    def rows(self) -> int:
        return len(self.prompt_tokens)

    def input_of(self, text: str | None = None, messages: list[dict] | None = None) -> str | None:
        """The input novelty is measured on: a classification request's ``text`` as it is, else the last user
        message of ``messages`` without the run's shared instruction; None when there is no text."""
        if isinstance(text, str):
            return text
        users = [m.get("content") for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
        if not users or not isinstance(users[-1], str):
            return None
        return users[-1].removeprefix(self.instruction)

    def to_dict(self) -> dict:
        return asdict(self)


def read_reference(path: str | Path) -> Reference | None:
    """The reference saved at ``path``; None when there is none; a `RunError` naming the file when it is damaged or
    of another version."""
    path = Path(path)
    raw = read_json(path)  # a RunError naming the file when it is not JSON
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("version") != REFERENCE_VERSION:
        raise RunError(f"{path} is not a reference of version {REFERENCE_VERSION}",
                       "evaluate the run again (`tunesmith eval RUN`) to write one")
    try:
        return Reference(**raw)
    except TypeError as error:
        raise RunError(f"{path} is damaged: {error}", "evaluate the run again (`tunesmith eval RUN`)") from None


def write_reference(path: str | Path, reference: Reference) -> None:
    write_json(path, reference.to_dict())
