"""A pretrained image backbone with a classification head: fine-tuning a well-known network.

``source`` says where the network comes from: ``timm`` (``timm.create_model(name)``),
``torchvision`` (``torchvision.models.get_model(name)``), or ``module``: a network of this
project, ``module`` naming a class that ``models/__init__.py`` exports and ``module_args`` its
arguments (``name`` then names the attribute to keep, e.g. ``features`` of the SmallCNN, or null
for the whole module), which needs neither library. A class name, not a nested ``_target_``:
a checkpoint's config may only rebuild the project's own classes (``inference.py``). The
network's own classifier is removed; the head (a linear layer sized by the task) reads its
pooled features.

The model's input is [0, 1] pixels of ``data.image_shape`` (``data/images.py``). Its first
steps are the backbone's: a grey image is repeated to the backbone's channels (3), so the
pretrained weights stay exactly as they were trained, then normalised with the backbone's
``mean`` and ``std`` (ImageNet's for most pretrained networks).

``weights``: null (random initialisation), ``hub`` (the library's pretrained weights, downloaded
once into its cache) or the path of a local file holding the network's state dict (``.pt``,
``.pth``, ``.bin`` saved with ``torch.save``, or ``.safetensors``). They are loaded by
``load_pretrained``, which the trainer calls when a run starts; rebuilding a trained model from
its checkpoint (predict, evaluate, export) does not need the file or the hub again.

The fine-tuning settings (``freeze_backbone``, ``unfreeze_at_epoch``, ``backbone_lr_scale``) are
kept here and applied by the trainer (``training/finetuning.py``).
"""

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError, ConfigError

SOURCES = ("timm", "torchvision", "module")
_INSTALL = "pip install timm torchvision (or the project's extra: pip install -e '.[vision]')"


class Backbone(nn.Module):
    """``normalise -> backbone -> pooled features -> dropout -> linear head``."""

    mean: torch.Tensor  # buffers (register_buffer), typed for the type checker
    std: torch.Tensor

    def __init__(
        self,
        source: str = "timm",
        name: str | None = "resnet18",
        weights: str | None = None,
        num_classes: int = 10,
        in_channels: int = 3,
        backbone_channels: int = 3,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        dropout: float = 0.0,
        module: str | None = None,
        module_args: dict[str, Any] | None = None,
        freeze_backbone: bool = False,
        unfreeze_at_epoch: int | None = None,
        backbone_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ConfigError(f"model.source must be one of {list(SOURCES)}, got {source!r}.")
        if in_channels not in (1, backbone_channels):
            raise ConfigError(
                f"the data has {in_channels} channels and the backbone takes {backbone_channels}: "
                "only grey images (1 channel) are adapted, by repeating them. Set "
                "model.backbone_channels or data.image_shape to agree."
            )
        if backbone_lr_scale < 0 or (unfreeze_at_epoch is not None and unfreeze_at_epoch < 0):
            raise ConfigError(
                "model.backbone_lr_scale and model.unfreeze_at_epoch must be >= 0, got "
                f"{backbone_lr_scale} and {unfreeze_at_epoch}."
            )
        if (mean is None) != (std is None):
            raise ConfigError("model.mean and model.std are set together, or both null.")
        self.source, self.name, self.weights = source, name, weights
        self.in_channels, self.backbone_channels = in_channels, backbone_channels
        self.freeze_backbone, self.unfreeze_at_epoch = bool(freeze_backbone), unfreeze_at_epoch
        self.backbone_lr_scale = float(backbone_lr_scale)
        self.frozen = False
        self.backbone, width = _network(source, name, module, module_args, backbone_channels)
        for key, value in (("mean", mean), ("std", std)):
            stats = torch.tensor(value if value is not None else [], dtype=torch.float32)
            if value is not None and len(stats) != backbone_channels:
                raise ConfigError(
                    f"model.{key} has {len(stats)} values; the backbone takes "
                    f"{backbone_channels} channels."
                )
            # Part of the model's state: a checkpoint carries the normalisation it was trained with.
            self.register_buffer(key, stats.view(1, -1, 1, 1) if value is not None else stats)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.backbone_channels:
            x = x.expand(-1, self.backbone_channels, -1, -1)  # grey -> RGB, as three equal channels
        if self.mean.numel():
            x = (x - self.mean) / self.std
        return self.head(_pooled(self.backbone(x)))

    def set_frozen(self, frozen: bool) -> None:
        """Freeze the backbone (no gradients, batch-norm statistics kept) or release it."""
        self.frozen = frozen
        self.backbone.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # a frozen backbone's batch-norm statistics and dropout stay off
        return self

    def load_pretrained(self) -> None:
        """Load ``weights`` into the backbone (nothing to do when null)."""
        if self.weights is None:
            return
        if self.weights == "hub":
            state = _hub_state(self.source, self.name, self.backbone_channels)
            self.backbone.load_state_dict(state)
            return
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise CheckpointError(
                f"model.weights={self.weights}: the file does not exist. Give the path of a file "
                "holding the backbone's state dict, `hub` for the library's pretrained weights, "
                "or null."
            )
        load_weights_file(self.backbone, path)


def load_weights_file(network: nn.Module, path: Path) -> list[str]:
    """Load the state dict in ``path`` into ``network``; returns the file's keys it ignored.

    Keys of the file that the network lacks are ignored (the original classifier, removed
    here); a network's key the file lacks, or a tensor of another shape, is refused with a
    ``CheckpointError`` naming the file and the first such keys: a file for another network.
    """
    try:
        state = _read_state(path)
    except Exception as error:  # any reader's error: the file is not a state dict
        raise CheckpointError(f"{path}: cannot be read as a state dict ({error}).") from None
    own = network.state_dict()
    missing = [key for key in own if key not in state]
    shapes = [
        f"{key} {tuple(state[key].shape)} (the network's is {tuple(own[key].shape)})"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    if missing or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} keys missing, first {', '.join(missing[:3])}")
        if shapes:
            problems.append(f"{len(shapes)} of another shape, first {'; '.join(shapes[:3])}")
        raise CheckpointError(
            f"{path} does not fit the backbone ({'; '.join(problems)}). It holds the weights "
            "of another network: check model.name (and model.source) against the file."
        )
    network.load_state_dict({key: state[key] for key in own})
    return [key for key in state if key not in own]


# ---- building blocks ----------------------------------------------------------------------------


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # a training checkpoint that holds the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise TypeError(f"it holds a {type(state).__name__}, not a dict of tensors")
    return state


def _pooled(features: torch.Tensor) -> torch.Tensor:
    """``(n, C)`` features from feature maps ``(n, C, h, w)`` (global average) or vectors."""
    if features.dim() == 4:
        features = F.adaptive_avg_pool2d(features, 1)
    return features.flatten(1)


def _network(
    source: str, name: str | None, module: str | None, args: dict | None, channels: int
) -> tuple[nn.Module, int]:
    """The backbone without its classifier, and the width of its pooled features."""
    if source == "timm":
        timm = _library("timm")
        network = timm.create_model(name, pretrained=False, num_classes=0, in_chans=channels)
        return network, int(network.num_features)
    if source == "torchvision":
        network = _library("torchvision").models.get_model(name, weights=None)
        return _without_classifier(network, name)
    network = _project_module(module, args or {})
    if name is not None:
        if not isinstance(getattr(network, name, None), nn.Module):
            raise ConfigError(f"model.name={name}: {module} has no such module.")
        network = getattr(network, name)
    return network, _measured_width(network, channels)


def _project_module(module: str | None, args: dict[str, Any]) -> nn.Module:
    """The project's network class named ``module`` (exported by models/__init__.py) built."""
    from .. import models  # this package: its classes, after it has imported them all

    exported = sorted(set(models.__all__) - {"Backbone"})
    if module not in exported:
        raise ConfigError(
            f"model.source=module needs model.module, one of the classes models/__init__.py "
            f"exports ({', '.join(exported)}), got {module!r}; export yours there."
        )
    return getattr(models, module)(**args)


def _library(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:  # torchvision may also fail beside a torch it was not built for
        raise ConfigError(
            f"model.source={name} needs {name}, which cannot be imported ({error}). "
            f"Install it: {_INSTALL}."
        ) from None


def _without_classifier(network: nn.Module, name: str | None) -> tuple[nn.Module, int]:
    """A torchvision classifier with its last linear layer replaced by an identity."""
    last = None
    for path, child in network.named_modules():
        if isinstance(child, nn.Linear):
            last = (path, child)
    if last is None:
        raise ConfigError(f"torchvision's {name} has no linear classifier to replace.")
    path, linear = last
    parent_path, _, attribute = path.rpartition(".")
    setattr(network.get_submodule(parent_path), attribute, nn.Identity())
    return network, linear.in_features


def _measured_width(module: nn.Module, channels: int) -> int:
    """The width of ``module``'s pooled features, from one small blank image."""
    training = module.training
    module.eval()  # batch-norm statistics are not touched
    with torch.no_grad():
        width = _pooled(module(torch.zeros(1, channels, 32, 32))).shape[1]
    module.train(training)
    return int(width)


def _hub_state(source: str, name: str | None, channels: int) -> dict[str, torch.Tensor]:
    """The library's pretrained weights for the backbone (downloaded once into its cache)."""
    try:
        if source == "timm":
            timm = _library("timm")
            network = timm.create_model(name, pretrained=True, num_classes=0, in_chans=channels)
            return network.state_dict()
        if source == "torchvision":
            network = _library("torchvision").models.get_model(name, weights="DEFAULT")
            return _without_classifier(network, name)[0].state_dict()
    except ConfigError:
        raise
    except Exception as error:  # offline, no such weights: the library's own message
        raise ConfigError(
            f"model.weights=hub: {source} could not load pretrained weights for {name} "
            f"({error}). Offline? Download them once where there is a network, or set "
            "model.weights to a local file."
        ) from None
    raise ConfigError("model.weights=hub needs source timm or torchvision; a module has no hub.")
