"""The config's schema: one dataclass per section, with each key's type and range.

The YAML files in configs/ stay the defaults a user edits; these classes are their schema:
``Train``, and ``Evaluate``, ``Predict``, ``Export`` and ``Tune``, which add their own keys. A
field's range is its rule, ``setting(default, rule)``; else its type's. ``check(cfg, command)``
(``config.check_settings`` calls it first in every entry point, ``fit`` too) reports every
wrong type, value out of range or key a closed section does not know (``trainer.max_epoch``:
did you mean ``trainer.max_epochs``?) at once, as one ``ConfigError`` (exit code 2), before a
run is opened, a file written or torch imported. The sections the code owns are closed; those
that name a class of your own (``model``, ``optimizer``, ``scheduler``, ``logger``) are open,
with their known keys checked (``optimizer.lr``), as is the top level (``+secrets.token=...``).
A rule is ``rule(value, key)``: it returns the value or raises ``ConfigError`` naming the key,
what it allows and the value it got.
"""

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from .errors import ConfigError

Rule = Callable[[Any, str], Any]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu")  # gpu: Lightning's spelling of cuda


# ---- rules: each names the key, what it allows and the value it got ----------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count_or_fraction(value: Any) -> bool:
    return (_is_int(value) and value >= 1) or (isinstance(value, float) and 0.0 < value <= 1.0)


def rule(allowed: str, ok: Callable[[Any], bool], *, nullable: bool = False) -> Rule:
    """A rule that refuses a value ``ok`` says no to, saying it must be ``allowed``. Infinity
    is named as such: an infinite rate, clip or threshold turns the first step's weights into
    NaN or switches a check off unseen."""
    allowed = f"null or {allowed}" if nullable else allowed

    def check(value: Any, key: str) -> Any:
        if (value is None and nullable) or ok(value):
            return value
        finite = " (finite)" if _is_number(value) and math.isinf(value) else ""
        raise ConfigError(f"{key} must be {allowed}{finite}, got {value!r}.")

    return check


def integer(minimum: int | None = None, *, nullable: bool = False) -> Rule:
    """An integer (at least ``minimum``), or null with ``nullable``."""
    at_least = "" if minimum is None else f" >= {minimum}"
    ok = lambda v: _is_int(v) and (minimum is None or v >= minimum)  # noqa: E731
    return rule(f"an integer{at_least}", ok, nullable=nullable)


_BOUNDS = {"above": (">", operator.gt), "minimum": (">=", operator.ge)}
_BOUNDS |= {"below": ("<", operator.lt), "maximum": ("<=", operator.le)}


def number(*, nullable: bool = False, **bounds: float) -> Rule:
    """A finite number (int or float) within ``bounds``: ``above``/``below`` (exclusive),
    ``minimum``/``maximum`` (inclusive); or null with ``nullable``."""
    limits = [(*_BOUNDS[name], bound) for name, bound in bounds.items()]
    allowed = "a number" + " and".join(f" {sign} {bound}" for sign, _, bound in limits)

    def ok(v: Any) -> bool:
        in_bounds = all(compare(v, bound) for _, compare, bound in limits)
        return _is_number(v) and math.isfinite(v) and in_bounds

    return rule(allowed, ok, nullable=nullable)


def one_of(*choices: str) -> Rule:
    """One of ``choices``, compared as text (``precision=32`` arrives as the integer 32)."""
    *first, last = (repr(c) for c in choices)
    ok = lambda v: not isinstance(v, bool) and str(v) in choices  # noqa: E731
    valid = rule(f"one of {', '.join(first)} or {last}", ok)
    return lambda value, key: str(valid(value, key))


boolean = rule("true or false", lambda v: isinstance(v, bool))
# A string; a number too (an unquoted `run_name=2024` arrives as one).
text = rule("a string", lambda v: isinstance(v, str) or _is_number(v))
positive_int = integer(1)
# -1 (no limit) or a number of steps >= 1: 0 would write the metrics of an untrained model.
max_steps = rule("-1 (no limit) or an integer >= 1", lambda v: _is_int(v) and (v == -1 or v >= 1))
adam_betas = rule(  # Adam's two decay rates
    "two numbers in [0, 1)",
    lambda v: (
        isinstance(v, list | tuple) and len(v) == 2 and all(_is_number(b) and 0 <= b < 1 for b in v)
    ),
)
batch_limit = rule(
    "null, a count >= 1 or a fraction in (0, 1]", lambda v: v is None or _count_or_fraction(v)
)
val_check_interval = rule(
    "a number of steps (an int >= 1) or a fraction of an epoch (a float in (0, 1])",
    _count_or_fraction,
)


def augmentations(value: Any, key: str) -> Any:
    """``data.augment``: a list of ``_target_`` nodes (null or []: no augmentation); whether
    each can be built is checked when training builds them (data/augmentation.py)."""
    if value is None or (
        isinstance(value, list)
        and all(isinstance(n, Mapping) and isinstance(n.get("_target_"), str) for n in value)
    ):
        return value
    raise ConfigError(
        f"{key} must be a list of augmentations, each a mapping with a _target_ (e.g. "
        "[{_target_: kornia.augmentation.RandomAffine, degrees: 10}]), or [] for none; "
        f"got {value!r}."
    )


TOKENIZER_KINDS = ("wordpiece", "bpe")  # data/text.py's


def tokenizer_settings(value: Any, key: str) -> Any:
    """``data.tokenizer``: null (not text), or {kind, vocab_size, lowercase, pretrained}."""
    if value is None:
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{key} must be null or a mapping of kind, vocab_size, lowercase and pretrained, "
            f"got {value!r}."
        )
    unknown = sorted(set(value) - {"kind", "vocab_size", "lowercase", "pretrained"})
    if unknown:
        raise ConfigError(
            f"{key} has unknown keys {unknown}: it takes kind, vocab_size, lowercase, pretrained."
        )
    one_of(*TOKENIZER_KINDS)(value.get("kind"), f"{key}.kind")
    integer(100)(value.get("vocab_size"), f"{key}.vocab_size")
    boolean(value.get("lowercase", True), f"{key}.lowercase")
    rule("null or a path", lambda v: v is None or isinstance(v, str))(
        value.get("pretrained"), f"{key}.pretrained"
    )
    return value


text_length = rule(
    "null or [shortest, longest] characters, 1 <= shortest <= longest",
    lambda v: (
        v is None
        or (
            isinstance(v, list | tuple)
            and len(v) == 2
            and all(_is_int(n) for n in v)
            and 1 <= v[0] <= v[1]
        )
    ),
)


def like(default: Any, *, least: float = 0, fraction: bool = False) -> Rule:
    """``trainer.health``'s rule: a value of the default's type, not negative (at least
    ``least`` where 0 would mean never), at most 1 for a share."""
    kind = bool if isinstance(default, bool) else int if isinstance(default, int) else (int, float)

    def check(value: Any, key: str) -> Any:
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise ConfigError(f"{key} must be like {default!r}, got {value!r}.")
        if kind is not bool and not value >= least:  # NaN too
            allowed = f"be a number >= {least}" if least else "not be negative"
            raise ConfigError(f"{key} must {allowed}, got {value!r}.")
        if fraction and value > 1:
            raise ConfigError(f"{key} must be a fraction in [0, 1], got {value!r}.")
        return value

    return check


# ---- the schema ---------------------------------------------------------------------------------

# Each section of the schema below is a dataclass(repr=False, eq=False): generating __repr__ and
# __eq__ is half of every start's cost of the schema, and nothing compares or prints a section.


def setting(default: Any = MISSING, rule: Rule | None = None) -> Any:
    """A field with its default (MISSING: the YAML gives it) and its rule (else its type's)."""
    return field(default=default, metadata={"rule": rule})


def _monitor(default: Any, **limits: Any) -> Any:
    return setting(default, like(default, **limits))


@dataclass(repr=False, eq=False)
class EarlyStopping:
    enabled: bool = True
    monitor: str = "val/loss"
    mode: str = setting("min", one_of("min", "max"))
    patience: int = setting(10, positive_int)
    min_delta: float = setting(0.0, number(minimum=0))


@dataclass(repr=False, eq=False)
class Health:
    """The training-health monitors (training/health.py); the one source of their defaults
    for a ``HealthMonitor`` made without a config (configs/trainer/default.yaml repeats them)."""

    enabled: bool = _monitor(True)
    every_n_steps: int = _monitor(50, least=1)  # 0 would mean never
    per_layer: bool = _monitor(False)
    vanishing_grad_norm: float = _monitor(1e-6)
    exploding_grad_norm: float = _monitor(100.0)
    dead_fraction: float = _monitor(0.5, fraction=True)
    plateau_window: int = _monitor(10, least=1)
    plateau_tolerance: float = _monitor(0.01)
    plateau_min_progress: float = _monitor(0.2, fraction=True)
    divergence_factor: float = _monitor(2.0)
    sample_predictions: int = _monitor(16)
    sample_predictions_every_s: float = _monitor(30.0)


@dataclass(repr=False, eq=False)
class Fsdp:  # trainer.strategy=fsdp (training/fsdp.py)
    reshard_after_forward: bool = True
    activation_checkpointing: bool = False


@dataclass(repr=False, eq=False)
class Ema:  # an exponential moving average of the weights (training/ema.py)
    enabled: bool = False
    decay: float = setting(0.999, number(above=0, below=1))
    warmup: bool = True


@dataclass(repr=False, eq=False)
class Trainer:
    accelerator: str = setting("auto", one_of(*ACCELERATORS))
    precision: str = setting("32", one_of(*PRECISIONS))
    max_epochs: int = setting(30, positive_int)
    max_steps: int = setting(-1, max_steps)
    accumulate_grad_batches: int = setting(1, positive_int)
    gradient_clip_val: float | None = setting(1.0, number(above=0, nullable=True))
    deterministic: bool = False
    log_every_n_steps: int = setting(50, positive_int)
    val_check_interval: int | float = setting(1.0, val_check_interval)
    check_val_every_n_epoch: int = setting(1, positive_int)
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    limit_train_batches: int | float | None = setting(None, batch_limit)
    limit_val_batches: int | None = setting(None, integer(1, nullable=True))  # no split size
    overfit_batches: int = setting(0, integer(0))
    fast_dev_run: bool = False
    profiler: bool = False
    test_after_fit: bool = True
    compile: bool = False
    channels_last: bool = False
    enable_progress_bar: bool = True
    health: Health = field(default_factory=Health)
    strategy: str = setting("ddp", one_of("ddp", "fsdp"))
    fsdp: Fsdp = field(default_factory=Fsdp)
    ema: Ema = field(default_factory=Ema)


@dataclass(repr=False, eq=False)
class Checkpoint:
    every_n_steps: int | None = setting(None, integer(1, nullable=True))
    keep_last: int = setting(2, integer(1))
    async_save: bool = False


@dataclass(repr=False, eq=False)
class Distillation:  # knowledge distillation (training/distillation.py): off without a teacher
    teacher_ckpt: str | None = None
    temperature: float = setting(4.0, number(above=0))
    weight: float = setting(0.5, number(minimum=0, maximum=1))  # the distillation term's share


@dataclass(repr=False, eq=False)
class Paths:
    data_dir: str = "data"
    raw_dir: str = "${.data_dir}/raw"
    processed_dir: str = "${.data_dir}/processed"
    reports_dir: str = "reports"
    output_dir: str | None = None


@dataclass(repr=False, eq=False)
class Drift:  # ranges: validate's own checks
    max_ks: float = MISSING
    max_label_tvd: float = MISSING  # classification only
    alpha: float = MISSING


@dataclass(repr=False, eq=False)
class DataCard:  # the data card's answers (data/card.py; validate writes reports/data_card.md)
    source: str = MISSING  # where the data comes from, and how available it is
    license: str = MISSING
    collection: str = MISSING  # how and when it was gathered
    labelling: str = MISSING  # who labelled it, how, and how complete the labels are
    privacy: str = MISSING  # personal data? consent, anonymisation, retention
    feedback: str = MISSING  # user feedback or system data (logs, API requests) in it?


@dataclass(repr=False, eq=False)
class Data:  # task-dependent: configs/data/ gives every value; prepare checks splits and pixels
    name: str = MISSING
    task: str = MISSING
    source: str = MISSING
    read_options: dict[str, Any] = MISSING
    target: str = MISSING
    num_classes: int | None = setting(MISSING, integer(2, nullable=True))
    image_shape: list[int] | None = MISSING
    pixel_range: list[float] | None = MISSING
    resize: bool | None = MISSING  # images: files of another size resized (else refused)
    class_names: list[str] | None = MISSING  # images: null = the folder names / the labels
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    split_seed: int = MISSING
    batch_size: int = setting(MISSING, positive_int)
    num_workers: int = setting(MISSING, integer(0))
    augment: list[Any] | None = setting(MISSING, augmentations)  # images only: data/augmentation.py
    augment_on: str = setting(MISSING, one_of("workers", "device"))
    # A share of a split's rows: above 1 no repeat would ever fail, below 0 every split would.
    max_duplicate_share: float = setting(MISSING, number(minimum=0, maximum=1))
    # Texts (data/text.py); absent for other data: a tokenizer makes data text.
    tokenizer: dict[str, Any] | None = setting(MISSING, tokenizer_settings)
    max_length: int | None = setting(MISSING, integer(1, nullable=True))  # tokens per text
    text_length: list[int] | None = setting(MISSING, text_length)  # characters validate accepts
    # Texts: batch texts of similar length together (training/sampling.py LengthBucketSampler).
    bucket_by_length: bool = setting(MISSING, boolean)
    # Tables larger than memory (data/streaming.py, data/large.py); optional, these defaults.
    stream: str | bool = setting(
        "auto", rule("auto, true or false", lambda v: v in ("auto", True, False))
    )
    stream_above_mb: float = setting(1024, number(above=0))
    shuffle_buffer_groups: int = setting(4, positive_int)
    row_group_rows: int = setting(65536, positive_int)
    drift: Drift = field(default_factory=Drift)
    card: DataCard = field(default_factory=DataCard)  # optional: unanswered questions are listed


@dataclass(repr=False, eq=False)
class Optimizer:  # torch.optim refuses some of these only once training starts
    lr: float = setting(MISSING, number(above=0))
    weight_decay: float = setting(MISSING, number(minimum=0))
    momentum: float = setting(MISSING, number(minimum=0))
    dampening: float = setting(MISSING, number(minimum=0))
    eps: float = setting(MISSING, number(above=0))
    betas: list[float] = field(default=MISSING, metadata={"rule": adam_betas})


@dataclass(repr=False, eq=False)
class Scheduler:  # a negative minimum ratio makes the rate negative at the end: gradient ascent
    warmup_steps: int = setting(MISSING, integer(0))
    min_lr_ratio: float = setting(MISSING, number(minimum=0, maximum=1))


@dataclass(repr=False, eq=False)
class Train:
    """``train`` (and prepare, validate and the trainer's ``fit``)."""

    seed: int = setting(42, integer())
    ckpt_path: str | None = None
    paths: Paths = field(default_factory=Paths)
    data: Data = field(default_factory=Data)
    model: Any = field(default=None, metadata={"open": None})
    optimizer: Any = field(default=None, metadata={"open": Optimizer})
    scheduler: Any = field(default=None, metadata={"open": Scheduler})
    trainer: Trainer = field(default_factory=Trainer)
    logger: Any = field(default=None, metadata={"open": None})
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    distillation: Distillation = field(default_factory=Distillation)


@dataclass(repr=False, eq=False)
class Confidence:
    target_accuracy: float = setting(MISSING, number(above=0, maximum=1))


@dataclass(repr=False, eq=False)
class Threshold:
    method: str = setting(MISSING, one_of("f1", "cost", "fixed"))
    value: float = setting(MISSING, number(minimum=0, maximum=1))
    cost: list[Any] = MISSING  # cost[true][predicted]


@dataclass(repr=False, eq=False)
class Slices:
    specs: list[Any] = MISSING
    flag_worst: int = setting(MISSING, integer(0))
    min_rows: int = setting(MISSING, positive_int)


@dataclass(repr=False, eq=False)
class FeatureImportance:
    enabled: bool = MISSING
    n_repeats: int = setting(MISSING, positive_int)


@dataclass(repr=False, eq=False)
class BagOfWords:  # text only: the TF-IDF + logistic regression baseline (evaluation/metrics.py)
    enabled: bool = True
    ngrams: int = setting(2, positive_int)  # word 1- to n-grams
    min_df: int = setting(2, positive_int)  # in at least this many training texts
    c: float = setting(10.0, number(above=0))  # inverse regularisation strength


@dataclass(repr=False, eq=False)
class Quantization:  # post-training quantization (evaluation/quantization.py)
    enabled: bool = True
    # Per data in configs/evaluation/: the method fits the model (a CNN's convolutions need
    # weight_only_int8), and the tolerance is in the units of the task's main metric.
    method: str = setting(MISSING, one_of("dynamic_int8", "weight_only_int8"))
    max_metric_drop: float = setting(MISSING, number(minimum=0))  # the stated tolerance


@dataclass(repr=False, eq=False)
class ModelCard:  # the model card's answers (evaluation/cards.py; evaluate writes model_card.md)
    intended_use: str = MISSING
    out_of_scope: str = MISSING  # uses it must not be put to
    limitations: str = MISSING  # known, in words; the card adds what the evaluation found


@dataclass(repr=False, eq=False)
class Registry:  # evaluate's gate to the model registry (evaluation/gate.py, tracking/registry.py)
    enabled: bool = True  # needs an MLflow logger; skipped, with a note, without one
    model_name: str = MISSING  # the registered model's name
    alias: str = "champion"  # the alias that moves to a version that passes the gate
    metric: str = MISSING  # per data in configs/evaluation/: the metric the gate reads
    direction: str = setting(MISSING, one_of("maximize", "minimize"))
    required: float = MISSING  # the value the metric must reach (>= maximize, <= minimize)


@dataclass(repr=False, eq=False)
class Evaluation:  # configs/evaluation/: some keys are for classification or regression only
    class_names: list[str] | None = MISSING
    n_bins: int = setting(MISSING, positive_int)
    temperature_scaling: bool = MISSING
    confidence: Confidence = field(default_factory=Confidence)
    threshold: Threshold = field(default_factory=Threshold)
    huber_delta: float = setting(MISSING, number(above=0))
    slices: Slices = field(default_factory=Slices)
    perturbations: list[Any] = MISSING
    invariances: list[Any] = MISSING
    directional: list[Any] = MISSING
    feature_importance: FeatureImportance = field(default_factory=FeatureImportance)
    bag_of_words: BagOfWords = field(default_factory=BagOfWords)
    quantization: Quantization = field(default_factory=Quantization)
    registry: Registry = field(default_factory=Registry)
    card: ModelCard = field(default_factory=ModelCard)  # optional: unanswered ones are listed
    examples: int = setting(MISSING, integer(0))
    alpha: float = setting(MISSING, number(above=0, below=1))
    compare_with: list[str] = MISSING
    compare_seeds: dict[str, Any] | None = None


@dataclass(repr=False, eq=False)
class Evaluate(Train):
    evaluation: Evaluation = field(default_factory=Evaluation)


@dataclass(repr=False, eq=False)
class Predict(Train):
    input: str | None = None
    output: str | None = None
    batch_size: int = setting(1024, positive_int)  # rows per forward pass


@dataclass(repr=False, eq=False)
class Export(Train):
    output: str | None = None


@dataclass(repr=False, eq=False)
class Monitoring:  # what the service logs (serving/monitoring.py) and `monitor` reads (monitor.py)
    log: str | None = "outputs/serve/requests.jsonl"  # JSON lines of summaries; null: off
    every_s: float = setting(60.0, number(above=0))  # a summary line at least this often...
    every_requests: int = setting(1000, positive_int)  # ...or after this many requests
    window_hours: float | None = setting(None, number(above=0, nullable=True))  # null: whole log
    min_rows: int = setting(100, positive_int)  # fewer recent inputs: no verdict (exit 0)


@dataclass(repr=False, eq=False)
class Serve(Train):  # python -m <package>.serve (serving/)
    # Not `model`: that is the model config group (model=cnn_small) on the command line.
    model_path: str = "outputs/pipeline/model.pt2"  # .pt2 (torch.export) or .onnx (onnxruntime)
    host: str = "127.0.0.1"
    port: int = setting(8000, integer(0))  # 0: any free port (the log says which)
    max_batch_size: int = setting(64, positive_int)  # rows per forward pass, across requests
    max_wait_ms: float = setting(2.0, number(minimum=0))  # a request waits this long for others
    max_rows: int = setting(1000, positive_int)  # rows, texts or images per request (else 413)
    max_body_mb: float = setting(10.0, number(above=0))  # request body limit (else 413)
    monitoring: Monitoring = field(default_factory=Monitoring)


@dataclass(repr=False, eq=False)
class Monitor(Train):  # python -m <package>.monitor: recent inputs against the training data
    monitoring: Monitoring = field(default_factory=Monitoring)


@dataclass(repr=False, eq=False)
class HparamsSearch:  # the search space, sampler and pruner are checked by Optuna
    params: dict[str, Any] = MISSING
    metric: str = MISSING
    direction: str = setting(MISSING, one_of("minimize", "maximize"))
    storage: str | None = MISSING
    study_name: str = MISSING
    n_trials: int = setting(MISSING, positive_int)
    output_dir: str = MISSING
    sampler: Any = None
    pruner: Any = None
    # A killed worker's trial is failed by heartbeat and retried (training/tuning.py).
    heartbeat_interval: int | None = setting(MISSING, integer(1, nullable=True))
    max_retry: int = setting(MISSING, integer(0))
    trial_overrides: list[str] = MISSING
    enqueue: list[Any] = MISSING
    plots: bool = MISSING


@dataclass(repr=False, eq=False)
class Tune(Train):
    hparams_search: HparamsSearch = field(default_factory=HparamsSearch)


@dataclass(repr=False, eq=False)
class CrossValidation:  # python -m <package>.cv (training/crossval.py, data/folds.py)
    folds: int = setting(5, integer(2))  # k: each fold trains on (k - 1) / k of the training rows
    seed: int = setting(42, integer())  # deals the rows into folds (the model's seed is `seed`)
    alpha: float = setting(0.05, number(above=0, below=1))  # intervals at 1 - alpha; the test


@dataclass(repr=False, eq=False)
class Cv(Train):
    cv: CrossValidation = field(default_factory=CrossValidation)


#: Each command's schema (validate reads train's config; so does the trainer's ``fit``).
SCHEMAS: dict[str, type] = {"train": Train, "validate": Train, "evaluate": Evaluate}
SCHEMAS |= {"predict": Predict, "export": Export, "tune": Tune}
SCHEMAS |= {"serve": Serve, "monitor": Monitor}
SCHEMAS |= {"cv": Cv}


# ---- the check: config.py walks a config against its schema -----------------------------------


def check(cfg: Mapping, command: str) -> None:
    """Check ``cfg`` against ``command``'s schema; one ``ConfigError`` names every broken key.
    Keys it does not have are not checked (a partial config, a key left out of the YAML)."""
    from .config import check_schema

    check_schema(SCHEMAS[command], cfg)


def default_of(key: str, schema: type | None = None) -> Any:
    """The schema's default for a dotted ``key`` of ``train`` (``trainer.ema.enabled``: False);
    MISSING where the schema gives none (the YAML does) or does not know the key."""
    section: Any = schema or Train
    *parents, name = key.split(".")
    for part in parents:
        found = {f.name: f for f in dataclasses.fields(section)}.get(part)
        if found is None or not dataclasses.is_dataclass(found.type):
            return MISSING
        section = found.type
    found = {f.name: f for f in dataclasses.fields(section)}.get(name)
    if found is None:
        return MISSING
    if found.default is not dataclasses.MISSING:
        return found.default
    return MISSING


def health_settings(value: Mapping | None, key: str = "trainer.health") -> dict[str, Any]:
    """``trainer.health`` checked, with the schema's defaults filled in."""
    from .config import as_dict, check_schema

    check_schema(Health, value or {}, f"{key}.", closed=True)
    given = as_dict(value) if isinstance(value, DictConfig) else value
    return {**dataclasses.asdict(Health()), **(given or {})}


def __getattr__(name: str) -> Any:
    """``COMMANDS``: each command's keys with a range (a rule of their own), for the tests;
    made on first use."""
    if name == "COMMANDS":
        from .config import schema_rules

        return {command: schema_rules(schema) for command, schema in SCHEMAS.items()}
    raise AttributeError(name)
