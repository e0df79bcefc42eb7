"""The `review:` section: how `tunesmith review create` samples prompts and shares them among reviewers."""

from __future__ import annotations

from pydantic import Field, field_validator

from tunesmith.config.section import ConfigSection


class ReviewConfig(ConfigSection):
    rubric: list[str] = Field(default_factory=lambda: ["correct", "helpful", "fluent"])
    """The criteria a reviewer may score each answer on, 1 to 5 (optional per judgment); an empty list asks for
    verdicts only."""
    items: int = Field(50, ge=1)
    """Test prompts to sample (all of them when the test split has fewer), stratified by label for
    classification. Each prompt is one review item per pair of compared models."""
    overlap: float = Field(0.2, ge=0.0)
    """Items every reviewer judges, for agreement (Cohen's or Fleiss' kappa): a whole number is a count of items,
    a fraction below 1 a share of them. The other items are shared out among the reviewers, one reviewer each."""
    reviewers: list[str] = Field(default_factory=lambda: ["reviewer"], min_length=1)
    """Names of the people reviewing; each gets a queue of their own."""
    seed: int = 0
    """Seeds the sample, the queues and the blind A/B sides."""
    show_reference: bool = False
    """Show reviewers the test row's reference answer (or label) beside the two answers."""

    @field_validator("rubric", "reviewers")
    @classmethod
    def _distinct_names(cls, names: list[str]) -> list[str]:
        stripped = [name.strip() for name in names]
        if any(not name for name in stripped):
            raise ValueError("names must not be empty")
        repeated = sorted({name for name in stripped if stripped.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return stripped

    @field_validator("reviewers")
    @classmethod
    def _people_only(cls, names: list[str]) -> list[str]:
        if any(name.startswith("judge:") for name in names):
            raise ValueError("names starting with `judge:` are kept for judge models (`tunesmith review judge`)")
        return names

    @field_validator("overlap")
    @classmethod
    def _count_or_share(cls, overlap: float) -> float:
        if overlap >= 1 and overlap != int(overlap):
            raise ValueError(f"{overlap} is neither a count of items (a whole number) nor a share (below 1)")
        return overlap

    def overlap_count(self, num_items: int) -> int:
        """How many of ``num_items`` items every reviewer judges."""
        count = round(self.overlap * num_items) if self.overlap < 1 else int(self.overlap)
        return min(count, num_items)
