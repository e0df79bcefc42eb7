"""The `monitor:` and `serve:` sections: how a served run is judged and what its answers are flagged with."""

from __future__ import annotations

from pydantic import Field

from tunesmith.config.section import ConfigSection


class MonitorConfig(ConfigSection):
    embedding_model: str = "default"
    """Sentence-transformers model whose embeddings measure novelty (an input's distance to the nearest training
    input): `default` (all-MiniLM-L6-v2, shipped by the rag extra) or a local folder. Used by evaluation (the
    run's reference) and `tunesmith serve` (each request's novelty), which must agree."""
    min_requests: int = Field(30, ge=1)
    """Below this many answered requests (of the run's model) `tunesmith monitor` shows drift but does not judge
    it: a few requests say little about a distribution. Traffic thresholds are judged on any number."""
    max_error_rate: float | None = Field(0.05, ge=0.0, le=1.0)
    """Share of requests answered with an HTTP status of 400 or more above which the monitor reports a breach;
    null does not check it."""
    max_p95_latency_s: float | None = Field(None, gt=0.0)
    """95th percentile of the answered requests' latency (seconds) above which the monitor reports a breach;
    null does not check it."""
    max_length_psi: float | None = Field(0.2, ge=0.0)
    """Population stability index of live prompt lengths (tokens) against the training prompts' (bins: the
    deciles of training) above which the prompt lengths have drifted (0.1-0.2 is a moderate shift, above 0.2 a
    large one); null does not check it."""
    min_length_ks_pvalue: float | None = Field(0.01, ge=0.0, le=1.0)
    """p-value of the two-sample Kolmogorov-Smirnov test (live vs training prompt lengths) below which the
    prompt lengths have drifted; null does not check it."""
    max_label_psi: float | None = Field(0.2, ge=0.0)
    """Population stability index of the predicted labels against the training labels (classification) above
    which the label mix has drifted; null does not check it."""
    unfamiliar_similarity: float = Field(0.3, gt=0.0, le=1.0)
    """A live input is unfamiliar when no training input reaches this word 3-gram Jaccard similarity with it
    (the measure of `data.check.near_duplicate_threshold`)."""
    max_unfamiliar_share: float | None = Field(0.25, ge=0.0, le=1.0)
    """Share of unfamiliar live inputs above which the monitor reports a breach; null does not check it."""
    low_confidence: float = Field(0.6, gt=0.0, le=1.0)
    """A classification is low-confidence when the probability of its predicted label is below this."""
    max_low_confidence_share: float | None = Field(0.25, ge=0.0, le=1.0)
    """Share of low-confidence classifications above which the monitor reports a breach; null does not check
    it."""



class ServeConfig(ConfigSection):
    min_confidence: float | None = Field(None, gt=0.0, le=1.0)
    """Answers whose confidence (a classification's calibrated label probability, a generation's geometric mean
    token probability) is below this are flagged: ``low_confidence: true`` in the response and the request log.
    null flags nothing."""
