"""The `preference:` section: each method's default beta, and the settings a preference method cannot train with
refused at load, naming their key."""

from __future__ import annotations

import pytest

from tunesmith.config import validate_config
from tunesmith.config.preference_section import preference_beta
from tunesmith.config.vocabulary import ADAPTER_METHODS, PREFERENCE_METHODS, is_preference, uses_adapter
from tunesmith.errors import ConfigError

DATA = {"train": "unused.jsonl"}


@pytest.mark.parametrize(("settings", "message"), [
    ({"method": "simpo", "data": {**DATA, "streaming": True}},
     "config: data.streaming: method simpo reads its pairs into memory; streaming is for supervised rows "
     "(set data.streaming: false)"),
    ({"method": "orpo", "preference": {"label_smoothing": 0.1}},
     "config: preference.label_smoothing: orpo's odds-ratio loss has no label smoothing (set "
     "preference.label_smoothing: 0, or use method: dpo or simpo)"),
    ({"method": "orpo", "preference": {"sft_weight": 1.0}},
     "config: preference.sft_weight: orpo's loss has the chosen answer's log-likelihood term already "
     "(preference.beta weighs the odds-ratio term beside it) (set preference.sft_weight: 0, or use method: dpo or "
     "simpo)"),
    ({"method": "dpo", "preference": {"sft_weight": -1}},
     "config: preference.sft_weight: input should be greater than or equal to 0 (got -1)"),
])
def test_preference_settings_that_cannot_train_are_refused_at_load(settings, message):
    with pytest.raises(ConfigError) as raised:
        validate_config({"data": DATA, **settings})
    assert str(raised.value) == message


def test_preference_methods_pack_pairs_and_weigh_an_imitation_term():
    config = validate_config({"data": DATA, "method": "dpo", "train": {"packing": True},
                              "preference": {"sft_weight": 0.5}})
    assert config.train.packing and config.preference.sft_weight == 0.5


def test_beta_defaults_to_the_methods_own():
    def beta(method, **given):
        return preference_beta(validate_config({"data": DATA, "method": method, "preference": given}))

    assert (beta("dpo"), beta("orpo"), beta("simpo"), beta("lora")) == (0.1, 0.1, 2.0, 0.1)
    assert beta("simpo", beta=0.5) == 0.5


def test_preference_methods_train_an_adapter():
    assert set(PREFERENCE_METHODS) < set(ADAPTER_METHODS)
    assert all(is_preference(method) and uses_adapter(method) for method in PREFERENCE_METHODS)
    assert not any(is_preference(method) for method in ("lora", "dora", "qlora", "full"))
