"""The run config: one YAML file, typed and validated (an unknown key or a bad value is an error naming the key),
overridable from the command line (`--set key=value`)."""

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
    ServeConfig,
    SplitConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig", "EvaluateConfig", "LoraConfig", "ModelConfig", "MonitorConfig", "OutputConfig", "RunConfig",
    "ServeConfig", "SplitConfig", "TrainConfig", "apply_overrides", "dump_config", "load_config", "override_section",
    "save_config", "validate_config",
]
