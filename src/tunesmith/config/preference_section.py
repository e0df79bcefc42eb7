"""The `preference:` section: the settings of the preference losses (`method: dpo | orpo | simpo`)."""

from __future__ import annotations

from pydantic import Field

from tunesmith.config.section import ConfigSection

DEFAULT_BETA = {"dpo": 0.1, "orpo": 0.1, "simpo": 2.0}
"""`preference.beta` when it is null, per method: TRL's defaults for DPO and ORPO, and the SimPO paper's (TRL's CPO
default of 0.1 is CPO's, not SimPO's)."""


class PreferenceConfig(ConfigSection):
    beta: float | None = Field(None, gt=0)
    """How strongly the loss acts on the log-probabilities; null is the method's default (`dpo` 0.1, `orpo` 0.1,
    `simpo` 2.0). `dpo`: the weight of the log-ratio of the tuned to the reference policy (lower lets the model
    move further from the reference). `orpo`: the weight λ of the odds-ratio term beside the chosen answer's
    negative log-likelihood. `simpo`: the scale of the length-normalized log-probability margin."""
    simpo_gamma: float = Field(0.5, ge=0)
    """SimPO's target margin γ between the chosen and the rejected answer's scaled mean log-probability (the loss
    is `-log σ(β·(mean log p(chosen) - mean log p(rejected)) - γ)`); as TRL's `simpo_gamma`."""
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """The assumed share of pairs whose preference is wrong (conservative DPO; also applies to `simpo`): the loss
    is `(1 - ε)·ℓ(margin) + ε·ℓ(-margin)`. 0 trusts every pair. `orpo` has no such term and refuses a non-zero
    value."""
    sft_weight: float = Field(0.0, ge=0)
    """Adds this weight times the chosen answer's mean token negative log-likelihood to each pair's `dpo` or
    `simpo` loss (RPO, Pang et al. 2024; TRL's `loss_type=["sigmoid", "sft"]` with these `loss_weights`): the
    model keeps imitating the preferred answers while it learns to rank them, which holds back a preference
    step from drifting away from the task (for instance towards ever shorter answers). 0 is the plain loss;
    `orpo` has the term built in and refuses a non-zero value."""


def preference_beta(config) -> float:
    """The β that `config`'s preference method trains with (`preference.beta`, or the method's default; 0.1 for a
    run of another method, which is what evaluation's implicit rewards of a non-preference run are scaled by)."""
    beta = config.preference.beta
    return beta if beta is not None else DEFAULT_BETA.get(config.method, 0.1)
