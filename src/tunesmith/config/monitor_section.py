"""The `monitor:` and `serve:` sections: how a served run is judged and what its answers are flagged with."""

from __future__ import annotations

from pydantic import Field, model_validator

from tunesmith.config.section import ConfigSection

REMOVED_THRESHOLDS = {"max_length_psi": 0.2, "min_length_ks_pvalue": 0.01, "max_label_psi": 0.2,
                      "unfamiliar_similarity": 0.3, "max_unfamiliar_share": 0.25, "low_confidence": 0.6,
                      "max_low_confidence_share": 0.25}
"""The absolute drift thresholds of earlier versions and their defaults: a run folder saved then holds them (its
config has every default filled in) and still loads; a value someone chose is an error, since it no longer does
anything."""


class MonitorConfig(ConfigSection):
    embedding_model: str = "default"
    """Sentence-transformers model whose embeddings measure novelty (an input's distance to the nearest training
    input): `default` (all-MiniLM-L6-v2, shipped by the rag extra) or a local folder. Used by evaluation (the
    run's reference) and `tunesmith serve` (each request's novelty), which must agree."""
    min_requests: int = Field(30, ge=1)
    """Below this many answered requests (of the run's model) in a window, `tunesmith monitor` shows its drift but
    does not judge it: a few requests say little about a distribution. Traffic thresholds are judged on any
    number."""
    false_alarm_rate: float | None = Field(0.01, gt=0.0, lt=1.0)
    """The chance that a window of healthy traffic (drawn as the run's reference was) raises any drift breach:
    each drift check (novelty, prompt length, label mix, confidence) is a statistical test judged at this rate
    divided by the number of checks measured in the window. null shows drift without judging it."""
    novelty_tail: float = Field(0.05, gt=0.0, lt=1.0)
    """The reference's upper tail of novelty: a window breaches when significantly more of its requests than of
    the reference's rows lie above the reference's ``1 - novelty_tail`` percentile (0.05: its 95th)."""
    confidence_tail: float = Field(0.05, gt=0.0, lt=1.0)
    """The reference's lower tail of confidence: a window breaches when significantly more of its answers than of
    the reference's rows lie below the reference's ``confidence_tail`` percentile."""
    max_error_rate: float | None = Field(0.05, ge=0.0, le=1.0)
    """Share of a window's requests answered with an HTTP status of 400 or more above which the monitor reports a
    breach; null does not check it."""
    max_p95_latency_s: float | None = Field(None, gt=0.0)
    """95th percentile of a window's answered requests' latency (seconds) above which the monitor reports a
    breach; null does not check it."""

    @model_validator(mode="before")
    @classmethod
    def _drop_removed_defaults(cls, raw):
        if not isinstance(raw, dict):
            return raw
        for key, default in REMOVED_THRESHOLDS.items():
            if key in raw and raw[key] != default:
                raise ValueError(f"{key} was removed: drift is judged against the run's reference by "
                                 "statistical tests at monitor.false_alarm_rate (see docs/serving.md); delete it")
        return {key: value for key, value in raw.items() if key not in REMOVED_THRESHOLDS}


class ServeConfig(ConfigSection):
    min_confidence: float | None = Field(None, gt=0.0, le=1.0)
    """Answers whose confidence (a classification's calibrated label probability, a generation's geometric mean
    token probability) is below this are flagged: ``low_confidence: true`` in the response and the request log.
    null flags nothing."""
