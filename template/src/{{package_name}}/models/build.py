"""A model from its config: ``cfg.model`` instantiated, its sizes filled in from the data.

Used by the trainer, and by ``inference`` to rebuild a checkpoint's model; here rather than in
the trainer so that inference does not import training (``tests/test_layers.py``).
"""

from typing import Any

from omegaconf import DictConfig
from torch import nn

from ..data.datasets import num_features
from ..data.schemas import is_classification
from ..errors import ConfigError


def build_model(cfg: DictConfig) -> nn.Module:
    """``cfg.model`` instantiated; its null size arguments are filled in from the data."""
    params = cfg.model
    classification = is_classification(cfg.data)
    from_data: dict[str, Any] = {}
    if "in_features" in params and params.in_features is None:
        from_data["in_features"] = num_features(cfg.data)
    if "out_features" in params and params.out_features is None:
        from_data["out_features"] = cfg.data.num_classes if classification else 1
    if "num_classes" in params and params.num_classes is None:
        from_data["num_classes"] = cfg.data.num_classes
    if "in_channels" in params and params.in_channels is None:
        from_data["in_channels"] = cfg.data.image_shape[0]
    return instantiate(params, "model", **from_data)


_DROPOUT = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout
)  # fmt: skip


def without_dropout(model: nn.Module) -> nn.Module:
    """Turn every dropout layer of ``model`` off (p = 0), whatever the model names its setting.

    Dropout written as a function call in ``forward`` (``F.dropout``) is the model's own affair.
    """
    for module in model.modules():
        if isinstance(module, _DROPOUT):
            module.p = 0.0
    return model


def instantiate(node: DictConfig, group: str, **kwargs: Any) -> Any:
    """``node`` (a config with ``_target_``) built with ``kwargs``; a ``ConfigError`` naming
    ``configs/<group>/`` when it cannot be."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        raise ConfigError(f"configs/{group}/ cannot be instantiated: {error}") from None
