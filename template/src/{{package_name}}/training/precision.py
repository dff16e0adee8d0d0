"""Mixed precision: autocast and the gradient scaler, on CPU and CUDA alike."""

import contextlib

import torch

from .. import settings

# settings.PRECISIONS, in order: '32', 'bf16-mixed', '16-mixed'.
_DTYPES = dict(zip(settings.PRECISIONS, (None, torch.bfloat16, torch.float16), strict=True))


def check(precision: object) -> str:
    """The precision as a string of _DTYPES (``32`` given unquoted on the command line is fine)."""
    return settings.one_of(*settings.PRECISIONS)(precision, "trainer.precision")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward pass's context: autocast to bf16/fp16, or nothing for '32'."""
    dtype = _DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled for '16-mixed' only (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
