"""The settings the entry points read: their types and ranges, checked before anything starts.

``TRAINING`` is the schema of the training config: each key the code reads, with the check of
its value; ``COMMANDS`` says which keys each entry point reads. ``check(cfg, command)`` runs their
checks and reports every broken key at once, as one ``ConfigError`` (exit code 2), before a
tracking run is opened, a folder written or torch imported: a typo in an override costs a second
and leaves nothing behind (``config.check_settings``). The code that uses a
value calls the same check where it reads it (``fit`` is also called directly, by the tests and
the tuner), so each rule is written once, here.

A check is ``check(value, key)``: it returns the value (normalised where the config allows two
spellings, precision ``32`` given unquoted) or raises ``ConfigError`` naming the key, the values
it allows and the value it got. Keys a config does not have are not checked (a model or an
optimizer of your own may take other arguments).
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError

Check = Callable[[Any, str], Any]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu")  # gpu: Lightning's spelling of cuda


def _refuse(key: str, allowed: str, value: Any) -> ConfigError:
    return ConfigError(f"{key} must be {allowed}, got {value!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(minimum: int | None = None, *, nullable: bool = False) -> Check:
    """An integer (at least ``minimum``), or null with ``nullable``."""
    allowed = "an integer" if minimum is None else f"an integer >= {minimum}"
    allowed = f"null or {allowed}" if nullable else allowed

    def check(value: Any, key: str) -> Any:
        if value is None and nullable:
            return value
        if not _is_int(value) or (minimum is not None and value < minimum):
            raise _refuse(key, allowed, value)
        return value

    return check


def number(
    *,
    above: float | None = None,
    minimum: float | None = None,
    below: float | None = None,
    maximum: float | None = None,
    nullable: bool = False,
) -> Check:
    """A finite number (int or float) in the bounds given (``above``/``below`` exclusive,
    ``minimum``/``maximum`` inclusive); or null. Infinity is refused: an infinite rate, clip
    or threshold turns the first step's weights into NaN or switches a check off unseen."""
    bounds = [
        f"{sign} {bound}"
        for sign, bound in ((">", above), (">=", minimum), ("<", below), ("<=", maximum))
        if bound is not None
    ]
    allowed = "a number" + (f" {' and '.join(bounds)}" if bounds else "")
    allowed = f"null or {allowed}" if nullable else allowed

    def check(value: Any, key: str) -> Any:
        if value is None and nullable:
            return value
        if _is_number(value) and math.isinf(value):
            raise _refuse(key, f"{allowed} (finite)", value)
        if (
            not _is_number(value)
            or value != value  # NaN
            or (above is not None and not value > above)
            or (minimum is not None and not value >= minimum)
            or (below is not None and not value < below)
            or (maximum is not None and not value <= maximum)
        ):
            raise _refuse(key, allowed, value)
        return value

    return check


def one_of(*choices: str) -> Check:
    """One of ``choices``, compared as text (``precision=32`` arrives as the integer 32)."""
    *first, last = (repr(c) for c in choices)
    allowed = f"one of {', '.join(first)} or {last}"

    def check(value: Any, key: str) -> str:
        if isinstance(value, bool) or str(value) not in choices:
            raise _refuse(key, allowed, value)
        return str(value)

    return check


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _refuse(key, "true or false", value)
    return value


positive_int = integer(1)


def max_steps(value: Any, key: str) -> Any:
    """-1 (no limit) or a number of steps >= 1: 0 would write the metrics of an untrained model."""
    if _is_int(value) and (value == -1 or value >= 1):
        return value
    raise _refuse(key, "-1 (no limit) or an integer >= 1", value)


def betas(value: Any, key: str) -> Any:
    """Adam's two decay rates, each in [0, 1)."""
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(_is_number(b) and 0.0 <= b < 1.0 for b in value)
    ):
        return value
    raise _refuse(key, "two numbers in [0, 1)", value)


def batch_limit(value: Any, key: str) -> Any:
    """A limit on batches: null (all), a count >= 1 or a fraction in (0, 1]."""
    if value is None or (_is_int(value) and value >= 1):
        return value
    if isinstance(value, float) and 0.0 < value <= 1.0:
        return value
    raise _refuse(key, "null, a count >= 1 or a fraction in (0, 1]", value)


def val_check_interval(value: Any, key: str) -> Any:
    """A number of optimizer steps (an int >= 1) or a fraction of an epoch (a float in (0, 1])."""
    if (_is_int(value) and value >= 1) or (isinstance(value, float) and 0.0 < value <= 1.0):
        return value
    raise _refuse(
        key, "a number of steps (an int >= 1) or a fraction of an epoch (a float in (0, 1])", value
    )


# The training-health monitors' settings (trainer.health; training/health.py): every key takes a
# value of its default's type, and none is negative.
HEALTH_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "every_n_steps": 50,
    "per_layer": False,
    "vanishing_grad_norm": 1e-6,
    "exploding_grad_norm": 100.0,
    "dead_fraction": 0.5,
    "plateau_window": 10,
    "plateau_tolerance": 0.01,
    "plateau_min_progress": 0.2,
    "divergence_factor": 2.0,
    "sample_predictions": 16,
    "sample_predictions_every_s": 30.0,
}


def health(value: Any, key: str = "trainer.health") -> dict[str, Any]:
    """``trainer.health`` with the defaults filled in; unknown keys and wrong types refused."""
    given = dict(value or {})
    unknown = set(given) - set(HEALTH_DEFAULTS)
    if unknown:
        raise ConfigError(
            f"{key} has no key(s) {sorted(unknown)}; known: {sorted(HEALTH_DEFAULTS)}."
        )
    settings = {**HEALTH_DEFAULTS, **given}
    for name, default in HEALTH_DEFAULTS.items():
        got = settings[name]
        kind = bool if isinstance(default, bool) else (int, float)
        if isinstance(got, bool) is not (kind is bool) or not isinstance(got, kind):
            raise ConfigError(f"{key}.{name} must be like {default!r}, got {got!r}.")
        least = HEALTH_MINIMA.get(name, 0)
        if kind is not bool and not got >= least:  # NaN too
            allowed = f"be a number >= {least}" if least else "not be negative"
            raise ConfigError(f"{key}.{name} must {allowed}, got {got!r}.")
        if name in HEALTH_FRACTIONS and got > 1:
            raise ConfigError(f"{key}.{name} must be a fraction in [0, 1], got {got!r}.")
    return settings


# Health settings with a floor above 0 (a zero measuring period or loss window means none), and
# the shares, which are at most 1.
HEALTH_MINIMA = {"every_n_steps": 1, "plateau_window": 1}
HEALTH_FRACTIONS = ("dead_fraction", "plateau_min_progress")


#: Every key the training loop reads (``train`` and ``tune`` check them all).
TRAINING: dict[str, Check] = {
    "seed": integer(),
    "data.batch_size": positive_int,
    "data.num_workers": integer(0),
    "optimizer.lr": number(above=0),
    # The optimizers' own arguments (torch.optim refuses some of them only once training starts).
    "optimizer.weight_decay": number(minimum=0),
    "optimizer.momentum": number(minimum=0),
    "optimizer.dampening": number(minimum=0),
    "optimizer.eps": number(above=0),
    "optimizer.betas": betas,
    # A negative minimum ratio makes the rate negative at the end: gradient ascent.
    "scheduler.warmup_steps": integer(0),
    "scheduler.min_lr_ratio": number(minimum=0, maximum=1),
    "data.num_classes": integer(2, nullable=True),
    "trainer.accelerator": one_of(*ACCELERATORS),
    "trainer.precision": one_of(*PRECISIONS),
    "trainer.max_epochs": positive_int,
    "trainer.max_steps": max_steps,
    "trainer.accumulate_grad_batches": positive_int,
    "trainer.gradient_clip_val": number(above=0, nullable=True),
    "trainer.deterministic": boolean,
    "trainer.log_every_n_steps": positive_int,
    "trainer.val_check_interval": val_check_interval,
    "trainer.check_val_every_n_epoch": positive_int,
    "trainer.early_stopping.enabled": boolean,
    "trainer.early_stopping.mode": one_of("min", "max"),
    "trainer.early_stopping.patience": positive_int,
    "trainer.early_stopping.min_delta": number(minimum=0),
    "trainer.limit_train_batches": batch_limit,
    "trainer.limit_val_batches": integer(1, nullable=True),  # a count: no split size known
    "trainer.overfit_batches": integer(0),
    "trainer.fast_dev_run": boolean,
    "trainer.profiler": boolean,
    "trainer.test_after_fit": boolean,
    "trainer.compile": boolean,
    "trainer.channels_last": boolean,
    "trainer.enable_progress_bar": boolean,
    "trainer.health": health,
    "checkpoint.every_n_steps": integer(1, nullable=True),
    "checkpoint.keep_last": integer(1),
}

#: The search's own keys (``tune``; the search space is checked by Optuna as it samples).
TUNING: dict[str, Check] = {
    "hparams_search.n_trials": positive_int,
    # A killed worker's trial is failed by heartbeat and retried (training/tuning.py).
    "hparams_search.heartbeat_interval": integer(1, nullable=True),
    "hparams_search.max_retry": integer(0),
}

#: The keys each command reads (``export`` reads none of these: its model runs on the CPU).
COMMANDS: Mapping[str, dict[str, Check]] = {
    "train": TRAINING,
    "tune": {**TRAINING, **TUNING},
    "evaluate": {"seed": integer(), "trainer.accelerator": one_of(*ACCELERATORS)},
    "predict": {"batch_size": positive_int, "trainer.accelerator": one_of(*ACCELERATORS)},
    # A share of a split's rows: above 1 no repeat would ever fail, below 0 every split would.
    "validate": {"data.max_duplicate_share": number(minimum=0, maximum=1)},
    "export": {},
}


def check(cfg: DictConfig, command: str) -> None:
    """Check every key ``command`` reads; one ``ConfigError`` lists all that are broken."""
    problems = []
    for key, rule in COMMANDS[command].items():
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT)
        except OmegaConfBaseException as error:  # an interpolation that cannot be resolved
            problems.append(f"{key} cannot be read: {str(error).splitlines()[0]}")
            continue
        if value is _ABSENT:
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        try:
            rule(value, key)
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError(" ".join(problems))


_ABSENT = object()
