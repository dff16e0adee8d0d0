"""Mixed precision: autocast and the gradient scaler, on CPU and CUDA alike."""

import contextlib

import torch

from .errors import ConfigError

_DTYPES = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def check(precision: object) -> str:
    """The precision as a string of _DTYPES (``32`` given unquoted on the command line is fine)."""
    name = str(precision)
    if name not in _DTYPES:
        raise ConfigError(
            f"trainer.precision must be one of '32', 'bf16-mixed' or '16-mixed', got {name!r}."
        )
    return name


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward pass's context: autocast to bf16/fp16, or nothing for '32'."""
    dtype = _DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled for '16-mixed' only (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
