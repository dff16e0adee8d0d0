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

from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .training.errors import ConfigError

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
    *, above: float | None = None, minimum: float | None = None, nullable: bool = False
) -> Check:
    """A number (int or float) greater than ``above`` or at least ``minimum``; or null."""
    allowed = "a number"
    if above is not None:
        allowed += f" > {above}"
    if minimum is not None:
        allowed += f" >= {minimum}"
    allowed = f"null or {allowed}" if nullable else allowed

    def check(value: Any, key: str) -> Any:
        if value is None and nullable:
            return value
        if (
            not _is_number(value)
            or value != value  # NaN
            or (above is not None and not value > above)
            or (minimum is not None and not value >= minimum)
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
        if kind is not bool and got < 0:
            raise ConfigError(f"{key}.{name} must not be negative, got {got!r}.")
    return settings


#: Every key the training loop reads (``train`` and ``tune`` check them all).
TRAINING: dict[str, Check] = {
    "seed": integer(),
    "data.batch_size": positive_int,
    "data.num_workers": integer(0),
    "optimizer.lr": number(above=0),
    "trainer.accelerator": one_of(*ACCELERATORS),
    "trainer.precision": one_of(*PRECISIONS),
    "trainer.max_epochs": positive_int,
    "trainer.max_steps": integer(-1),
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
    "checkpoint.keep_last": integer(0),
}

#: The keys each command reads (``export`` reads none of these: its model runs on the CPU).
COMMANDS: Mapping[str, dict[str, Check]] = {
    "train": TRAINING,
    # A killed worker's trial is failed by heartbeat and retried (training/tuning.py).
    "tune": {
        **TRAINING,
        "hparams_search.heartbeat_interval": integer(1, nullable=True),
        "hparams_search.max_retry": integer(0),
    },
    "evaluate": {"seed": integer(), "trainer.accelerator": one_of(*ACCELERATORS)},
    "predict": {"batch_size": positive_int, "trainer.accelerator": one_of(*ACCELERATORS)},
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
        if isinstance(value, DictConfig):
            value = OmegaConf.to_container(value, resolve=True)
        try:
            rule(value, key)
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError(" ".join(problems))


_ABSENT = object()
