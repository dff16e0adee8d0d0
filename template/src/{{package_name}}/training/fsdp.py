"""FSDP (``trainer.strategy=fsdp``): every rank holds a shard of the parameters, gradients and
optimizer state instead of a whole copy (DDP), through PyTorch's FSDP2 ``fully_shard``.

The model is sharded block by block, then at the root: a block's parameters are gathered just
before its forward (and its backward) and freed after, so a rank holds one whole block at a time
plus its shards. The blocks are found by one rule that fits every model of the project: the
children of each ``nn.Sequential`` or ``nn.ModuleList`` that hold parameters (the CNN's
convolution blocks and classifier layers, the MLP's linear layers, the Transformer's encoder
layers); the rest (embeddings, a final norm, a head outside a container) belongs to the root.

``trainer.precision``: ``bf16-mixed`` becomes FSDP's own mixed precision (bfloat16 parameters in
the forward and backward, gradients reduced in float32); ``32`` none; ``16-mixed`` is refused (a
float16 GradScaler over sharded gradients is not supported here: use bf16-mixed).
``trainer.fsdp.reshard_after_forward`` frees the gathered parameters after the forward (less
memory, one more all-gather in the backward); ``trainer.fsdp.activation_checkpointing``
recomputes each block's activations in the backward.

Buffers (batch-norm statistics) are not sharded; as DDP does, rank 0's are broadcast to every
rank at each forward, so the ranks validate and save the same ones. In one process
``strategy=fsdp`` is ignored (there is nothing to shard), with a log line.
"""

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

log = logging.getLogger(__name__)

_CONTAINERS = (nn.Sequential, nn.ModuleList)


def blocks(model: nn.Module) -> list[nn.Module]:
    """The modules to shard one by one: the children with parameters of every ``Sequential`` or
    ``ModuleList`` (the model itself included), outermost first; a block is not searched further."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(module, _CONTAINERS) and any(True for _ in child.parameters()):
                found.append(child)
            else:
                visit(child)

    visit(model)
    return found


def mixed_precision(precision: str):
    """FSDP's mixed-precision policy for ``trainer.precision`` (None: full precision)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision == "16-mixed":
        raise ConfigError(
            "trainer.strategy=fsdp does not support trainer.precision=16-mixed (its GradScaler "
            "does not handle sharded gradients here): use trainer.precision=bf16-mixed (FSDP "
            "computes in bfloat16 and reduces gradients in float32) or 32."
        )
    if precision == "bf16-mixed":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return None


def shard(model: nn.Module, precision: str, fsdp_cfg) -> nn.Module:
    """Shard ``model`` in place (FSDP2): each block, then the root; returns it."""
    from torch.distributed.fsdp import fully_shard

    options: dict[str, Any] = {"reshard_after_forward": bool(fsdp_cfg.reshard_after_forward)}
    policy = mixed_precision(precision)
    if policy is not None:
        options["mp_policy"] = policy
    units = blocks(model)
    if fsdp_cfg.activation_checkpointing:
        from torch.distributed._composable import checkpoint

        for block in units:
            checkpoint(block)  # before fully_shard: recompute the block's forward in backward
    for block in units:
        fully_shard(block, **options)
    fully_shard(model, **options)
    if any(True for _ in model.buffers()):
        model.register_forward_pre_hook(lambda module, args: sync_buffers(module))
    log.info("fsdp: sharded %d blocks and the root over %d ranks", len(units), _world())
    return model


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


@torch.no_grad()
def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers on every rank (DDP's ``broadcast_buffers``): batch-norm statistics that
    each rank updated from its own batches would otherwise drift apart."""
    if _world() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def whole_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor (the gradient norm of sharded gradients) as a plain tensor, else ``tensor``:
    every rank calls it at the same point (it may be a collective)."""
    full = getattr(tensor, "full_tensor", None)
    return full() if full is not None else tensor


def is_sharded(model: nn.Module) -> bool:
    # Sharding imports torch.distributed.fsdp; before that no module can be sharded, and
    # importing it only to ask would add half a second to the start of every run.
    if "torch.distributed.fsdp" not in sys.modules:
        return False
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def no_sync(net: nn.Module, skip: bool) -> Iterator[None]:
    """No gradient synchronisation in this block when ``skip`` (a micro-batch that does not end
    an optimizer step): DDP's ``no_sync()``, FSDP2's ``set_requires_gradient_sync(False)``, or
    nothing in one process."""
    if not skip:
        yield
    elif is_sharded(net):
        from torch.distributed.fsdp import FSDPModule  # imported already: is_sharded saw it

        assert isinstance(net, FSDPModule)  # what is_sharded checked
        net.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            net.set_requires_gradient_sync(True)
    elif isinstance(net, nn.parallel.DistributedDataParallel):
        with net.no_sync():
            yield
    else:
        yield


def gather_whole(model: nn.Module, build: Callable[[], nn.Module], is_main: bool):
    """A plain, whole copy of the sharded ``model`` on rank 0 (``build()`` makes an empty one),
    None elsewhere: a collective, for what rank 0 measures alone (the text records)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)  # every rank gathers; rank 0 keeps
    if not is_main:
        return None
    whole = build()
    whole.load_state_dict(state)
    return whole
