"""Post-training quantization: the evaluated model against an int8 copy of it, on the test split.

``evaluate`` calls ``compare`` (``evaluation.quantization`` in configs/evaluation/); the report
gets a "Quantization" section and ``metrics.json`` the flat ``quantization/...`` numbers. The copy
is made and measured on the CPU, where int8 serving usually happens; the original is not touched.

Two methods (``evaluation.quantization.method``):

- ``dynamic_int8``: PyTorch's dynamic quantization (``torch.ao.quantization.quantize_dynamic``):
  the weights of ``nn.Linear`` and ``nn.LSTM`` layers in int8, activations quantized on the fly,
  int8 matrix products. Convolutions, embeddings and ``nn.MultiheadAttention``'s projections are
  left in float (its ``out_proj`` is a Linear that PyTorch marks non-quantizable on purpose, and
  its input projection is a bare parameter), so a CNN gets only its classifier quantized.
- ``weight_only_int8``: the weights of ``nn.Linear``, ``nn.Conv1d/2d/3d`` and ``nn.Embedding``
  layers stored as int8 with one float scale per output channel (per row for embeddings),
  turned back into float at each call: a smaller model with about the float model's outputs, not
  a faster one. Same exclusions for attention as above.

``torch.ao.quantization`` is deprecated in favour of torchao (it still works in PyTorch 2.13, with
deprecation warnings, silenced here); torchao would be one more dependency to install for one
report section, so it is not used (docs/how-to/quantize.md).
"""

import builtins
import copy
import io
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..tasks import Task

METHODS = ("dynamic_int8", "weight_only_int8")
# Layers whose weights each method quantizes: exact types, so that subclasses with another
# forward (MultiheadAttention's NonDynamicallyQuantizableLinear) are left alone.
DYNAMIC_TYPES = (nn.Linear, nn.LSTM)
WEIGHT_ONLY_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)
# Latency: the median over this many timed batches (after one untimed, warming caches).
REPEATS = 5


@dataclass
class Measurement:
    """One model on the test split."""

    metric: float  # the task's main metric
    loss: float  # the task's error (Task.error): log loss, or the mean absolute error
    size_bytes: int  # its state dict serialized with torch.save
    latency_s: float  # median seconds per batch of ``batch_size`` rows
    latency_range_s: tuple[float, float]  # fastest and slowest of the repeats


@dataclass
class Quantization:
    """The float model against its int8 copy (``compare``)."""

    method: str
    main_metric: str
    higher_is_better: bool
    max_metric_drop: float
    quantized_layers: int  # layers whose weights are int8
    quantized_share: float  # share of the model's parameters that are int8
    batch_size: int
    threads: int  # torch.get_num_threads() while measuring
    repeats: int = REPEATS  # timed batches per model
    error_name: str = "loss"  # what Measurement.loss is (Task.error_name)
    # Below this field, ``float`` in the class body names it: annotations say builtins.float.
    float: Measurement | None = None
    int8: Measurement | None = None  # None: nothing in the model could be quantized

    @property
    def applied(self) -> bool:
        return self.int8 is not None

    @property
    def layer_types(self) -> str:
        """The kinds of layers the method quantizes, in words."""
        types = DYNAMIC_TYPES if self.method == "dynamic_int8" else WEIGHT_ONLY_TYPES
        return "it quantizes " + ", ".join(f"nn.{kind.__name__}" for kind in types)

    def _measured(self) -> tuple[Measurement, Measurement]:
        """The float model's and the int8 copy's measurements (``compare`` makes both, or
        neither when nothing could be quantized: only call this when ``applied``)."""
        assert self.float is not None and self.int8 is not None, "nothing was quantized"
        return self.float, self.int8

    @property
    def metric_drop(self) -> builtins.float:
        """How much worse the int8 model's main metric is (negative: it is better)."""
        floating, int8 = self._measured()
        change = int8.metric - floating.metric
        return (-change if self.higher_is_better else change) + 0.0  # + 0.0: no -0

    @property
    def within_tolerance(self) -> bool:
        # A drop of exactly the tolerance is within it, whatever the float rounding.
        return self.metric_drop <= self.max_metric_drop + 1e-9

    def metrics(self) -> dict[str, builtins.float]:
        """Flat numbers for metrics.json and the tracker (none when nothing was quantized)."""
        if not self.applied:
            return {"quantization/quantized_share": 0.0}
        floating, int8 = self._measured()
        return {
            "quantization/quantized_share": self.quantized_share,
            "quantization/float_metric": floating.metric,
            "quantization/int8_metric": int8.metric,
            "quantization/metric_drop": self.metric_drop,
            "quantization/float_loss": floating.loss,
            "quantization/int8_loss": int8.loss,
            "quantization/float_size_bytes": float(floating.size_bytes),
            "quantization/int8_size_bytes": float(int8.size_bytes),
            "quantization/size_ratio": int8.size_bytes / floating.size_bytes,
            "quantization/float_latency_ms": 1000 * floating.latency_s,
            "quantization/int8_latency_ms": 1000 * int8.latency_s,
            "quantization/speedup": floating.latency_s / int8.latency_s,
            "quantization/within_tolerance": float(self.within_tolerance),
        }


# ---- quantizing ------------------------------------------------------------------------------


def quantize(model: nn.Module, method: str) -> tuple[nn.Module, list[str]]:
    """An int8 copy of ``model`` on the CPU, in eval mode, and the names of the layers quantized
    (empty: the method applies to no layer of this model; the copy is then the float model's)."""
    if method not in METHODS:
        raise ValueError(f"quantization method {method!r} is not one of {METHODS}")
    copied = copy.deepcopy(model).cpu().eval()
    types = DYNAMIC_TYPES if method == "dynamic_int8" else WEIGHT_ONLY_TYPES
    names = [name for name, module in copied.named_modules() if type(module) in types]
    if not names:
        return copied, []
    if method == "dynamic_int8":
        with warnings.catch_warnings():
            # torch.ao.quantization and its quantized dtypes warn that they are deprecated.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            # inplace: the copy is ours; set(types) would also swap subclasses, a dict does not.
            quantized = torch.ao.quantization.quantize_dynamic(
                copied,
                {kind: torch.ao.quantization.default_dynamic_qconfig for kind in types},
                dtype=torch.qint8,
                inplace=True,
            )
        for module in quantized.modules():
            if isinstance(module, nn.TransformerEncoderLayer):
                # Its inference fast path reads linear1.weight as a tensor, which a dynamically
                # quantized Linear has not (a method): any forward hook turns the path off.
                module.register_forward_pre_hook(_regular_path)
        return quantized, names
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = copied.get_submodule(parent) if parent else copied
        if not child:  # the model itself is one layer
            return Int8Weights(copied), names
        setattr(owner, child, Int8Weights(getattr(owner, child)))
    return copied, names


def _regular_path(module: nn.Module, args: Any) -> None:
    """A forward pre-hook that does nothing: its presence keeps the layer off the fast path."""


class Int8Weights(nn.Module):
    """A Linear, convolution or embedding layer whose weight is stored as int8 with a float scale
    per output channel (symmetric: the largest weight of a channel maps to 127) and turned back
    into float at each call. ``weight`` is a property, as code that reads a layer's weight
    directly (``nn.TransformerEncoderLayer``'s fast path) expects."""

    qweight: torch.Tensor  # buffers (register_buffer): the int8 weight and its scales
    scale: torch.Tensor

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if not isinstance(layer.weight, torch.Tensor):
            raise TypeError(f"{type(layer).__name__}.weight is not a tensor: cannot quantize it")
        weight = layer.weight.detach()
        del layer.weight  # only the int8 copy is kept (and serialized)
        dims = tuple(range(1, weight.dim()))
        scale = weight.abs().amax(dim=dims, keepdim=True).clamp(min=1e-12) / 127
        self.register_buffer("qweight", torch.round(weight / scale).to(torch.int8))
        self.register_buffer("scale", scale.float())
        self.layer = layer

    @property
    def weight(self) -> torch.Tensor:
        return self.qweight.float() * self.scale

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.layer, "bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if isinstance(layer, nn.Linear):
            return F.linear(x, self.weight, layer.bias)
        if isinstance(layer, nn.Embedding):
            return F.embedding(
                x,
                self.weight,
                layer.padding_idx,
                layer.max_norm,
                layer.norm_type,
                layer.scale_grad_by_freq,
                layer.sparse,
            )
        if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            return layer._conv_forward(x, self.weight, layer.bias)
        raise TypeError(f"Int8Weights cannot run a {type(layer).__name__}")


# ---- measuring -------------------------------------------------------------------------------


def compare(
    model: nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    task: Task,
    settings: dict[str, Any],
    batch_size: int,
    outputs: Callable[[nn.Module], np.ndarray] | None = None,
    float_outputs: np.ndarray | None = None,
) -> Quantization:
    """The float ``model`` against its int8 copy on the test split, both on the CPU.

    ``inputs``: the test rows as the model takes them (the latency's batch is the first
    ``batch_size``); ``targets``: one per row, as the evaluation holds them. ``outputs(model)``
    gives a model's outputs on the whole split as ``Task.for_evaluation`` does (by default: the
    inputs in batches); ``float_outputs``: the float model's, when the caller has them already
    (``evaluate``'s, on the CPU), so that only the int8 copy runs over the whole split.
    """
    method = str(settings.get("method", "dynamic_int8"))
    float_model = copy.deepcopy(model).cpu().eval()
    quantized, names = quantize(float_model, method)
    counted = _parameter_counts(float_model)
    result = Quantization(
        method=method,
        main_metric=task.main_metric,
        higher_is_better=task.higher_is_better,
        max_metric_drop=float(settings.get("max_metric_drop", 0.01)),
        quantized_layers=len(names),
        quantized_share=sum(counted.get(name, 0) for name in names) / max(1, sum(counted.values())),
        batch_size=int(batch_size),
        threads=torch.get_num_threads(),
        error_name=task.error_name,
    )
    if not names:
        return result
    run = outputs or (lambda m: _outputs(m, inputs, task))
    batch = _tensor(np.asarray(inputs[:batch_size]))
    targets = np.asarray(targets)
    with torch.no_grad():
        found = float_outputs if float_outputs is not None else run(float_model)
        result.float = measure(float_model, found, targets, task, batch)
        result.int8 = measure(quantized, run(quantized), targets, task, batch)
    return result


def measure(
    model: nn.Module,
    outputs: np.ndarray,
    targets: np.ndarray,
    task: Task,
    batch: torch.Tensor,
    repeats: int = REPEATS,
) -> Measurement:
    """``model``'s main metric and loss from its ``outputs`` (``Task.for_evaluation``'s), its
    serialized size and its latency on ``batch``, on the CPU."""
    outputs = np.asarray(outputs, dtype=np.float64)
    with torch.no_grad():
        times = _latencies(lambda: model(batch), repeats)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return Measurement(
        metric=float(task.main_score(outputs, targets)),
        loss=float(task.error(outputs, targets)),  # log loss, or the mean absolute error
        size_bytes=buffer.getbuffer().nbytes,
        latency_s=statistics.median(times),
        latency_range_s=(min(times), max(times)),
    )


def _tensor(inputs: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(inputs)
    return x if x.dtype in (torch.int32, torch.int64) else x.float()  # token ids stay ids


def _outputs(model: nn.Module, inputs: np.ndarray, task: Task) -> np.ndarray:
    """``model``'s outputs on ``inputs`` as ``Task.for_evaluation`` gives them."""
    with torch.no_grad():
        parts = [model(_tensor(inputs[i : i + 1024])).float() for i in range(0, len(inputs), 1024)]
    return task.for_evaluation(torch.cat(parts)).numpy().astype(np.float64)


def _latencies(call: Callable[[], Any], repeats: int) -> list[float]:
    call()  # warm-up: the first call allocates and packs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per module name (each counted once, in the module that owns it)."""
    return {
        name: sum(p.numel() for p in module.parameters(recurse=False))
        for name, module in model.named_modules()
    }
