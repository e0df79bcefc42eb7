"""Stage 0: the run config (typed, validated, overridable from the command line)."""

from tunesmith.config.loading import (
    apply_overrides,
    dump_config,
    load_config,
    override_section,
    save_config,
    validate_config,
)
from tunesmith.config.schema import (
    DataConfig,
    EvaluateConfig,
    LoraConfig,
    ModelConfig,
    MonitorConfig,
    OutputConfig,
    RunConfig,
    SplitConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig", "EvaluateConfig", "LoraConfig", "ModelConfig", "MonitorConfig", "OutputConfig", "RunConfig",
    "SplitConfig", "TrainConfig", "apply_overrides", "dump_config", "load_config", "override_section", "save_config",
    "validate_config",
]
