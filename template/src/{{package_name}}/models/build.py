"""A model from its config: ``cfg.model`` instantiated, its null sizes filled in.

``tasks.build_model`` says which sizes (the data's input width, the task's output width);
the trainer and ``inference`` build models through it (``tests/test_layers.py``).
"""

from typing import Any

from omegaconf import DictConfig
from torch import nn

from ..errors import ConfigError


def instantiate_model(params: DictConfig, sizes: dict[str, int]) -> nn.Module:
    """``params`` (``cfg.model``) instantiated; each of its null arguments named in ``sizes``
    takes that size (a model of yours that fixes its sizes in its config keeps them)."""
    filled = {key: size for key, size in sizes.items() if key in params and params[key] is None}
    return instantiate(params, "model", **filled)


def load_pretrained(model: nn.Module) -> None:
    """Load the pretrained weights of every part of ``model`` that has some (a ``Backbone``'s
    ``model.weights``). Only a new run needs them: a checkpoint holds the trained weights."""
    for module in model.modules():
        load = getattr(module, "load_pretrained", None)
        if callable(load):
            load()


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


def served_weights(state: dict[str, Any]) -> dict[str, Any]:
    """The weights of a checkpoint to evaluate and serve: the EMA's (``trainer.ema``) when it
    has them, since validation chose ``best.pt`` on them; else the raw ``model``. Here, below
    both, so that training and inference read a checkpoint's weights the same way."""
    averaged = state.get("ema")
    if isinstance(averaged, dict) and "model" in averaged:
        return averaged["model"]
    return state["model"]
