"""Fine-tuning a pretrained backbone: its own learning rate, frozen for the first epochs.

A model with a ``models.Backbone`` in it gets two parameter groups: the head's (and anything
else outside the backbone) at the optimizer's ``lr``, first, so ``param_groups[0]`` stays the
model's rate; then the backbone's at ``lr * model.backbone_lr_scale``. Both groups exist from
the first step, frozen or not, so a checkpoint's optimizer state always loads. The schedule
(``schedulers.py``, a ``LambdaLR``) scales every group's rate by the same factor.

Whether the backbone is frozen is a function of the epoch (``model.freeze_backbone`` until
``model.unfreeze_at_epoch``; null: for the whole run), set by ``at_epoch`` at the start of each
epoch: a run resumed in any epoch, before or after the unfreezing, freezes exactly as the run
that was never stopped. A frozen parameter has no gradient, so the optimizer leaves it and its
state alone. Other models get one group, of the parameters that require gradients when the
optimizer is built (all of them, but for a model that freezes parts of itself for the whole run,
as ``models.LoraClassifier`` freezes its pretrained weights), and are never frozen here.
"""

from collections.abc import Callable

from torch import nn
from torch.optim import Optimizer

from ..models.backbone import Backbone

BACKBONE = "backbone"  # the ``name`` of the backbone's parameter group


def backbones(model: nn.Module) -> list[Backbone]:
    return [module for module in model.modules() if isinstance(module, Backbone)]


def optimizer(make: Callable[..., Optimizer], model: nn.Module) -> Optimizer:
    """``make(params)`` (the configured optimizer) with the backbone's group at its own rate."""
    found = backbones(model)
    if not found:
        # Only what trains: a model that freezes parts of itself for good (LoRA's pretrained
        # weights) keeps them out of the optimizer, its state and its weight decay.
        return make([p for p in model.parameters() if p.requires_grad])
    inner = {id(p) for backbone in found for p in backbone.backbone.parameters()}
    head = [p for p in model.parameters() if id(p) not in inner]
    groups = [{"params": head, "name": "head"}]
    groups += [
        {"params": list(backbone.backbone.parameters()), "name": BACKBONE} for backbone in found
    ]
    made = make(groups)
    for group, backbone in zip(made.param_groups[1:], found, strict=True):
        group["lr"] *= backbone.backbone_lr_scale  # before the scheduler reads its initial rate
    return made


def at_epoch(model: nn.Module, epoch: int) -> None:
    """Freeze or release each backbone as its settings say for ``epoch`` (0-based)."""
    for backbone in backbones(model):
        until = backbone.unfreeze_at_epoch
        backbone.set_frozen(backbone.freeze_backbone and (until is None or epoch < until))


def freezes(model: nn.Module) -> bool:
    """Whether some backbone of ``model`` is ever frozen: DDP must then expect parameters
    without gradients (``find_unused_parameters``)."""
    return any(backbone.freeze_backbone for backbone in backbones(model))


def learning_rates(optimizer: Optimizer) -> dict[str, float]:
    """``train/lr_backbone`` for the logs when there is a backbone's group (``train/lr`` is the
    first group's, the head's)."""
    rates = [group["lr"] for group in optimizer.param_groups if group.get("name") == BACKBONE]
    return {"train/lr_backbone": rates[0]} if rates else {}
