"""The example networks, and the place for yours.

To add a model: write a module next to these with an ``nn.Module`` subclass, export it below, and
add a config for it in ``configs/model/`` whose ``_target_`` names the class. ``Backbone`` wraps
a pretrained image network (timm, torchvision or a module of yours) for fine-tuning;
``TextTransformer`` is the text task's encoder; ``LoraClassifier`` fine-tunes a pretrained Hugging
Face transformer with LoRA adapters (the extra ``nlp``).
"""

from .backbone import Backbone
from .cnn import SmallCNN
from .lora import LoraClassifier
from .mlp import MLP
from .transformer import TextTransformer

__all__ = ["MLP", "Backbone", "LoraClassifier", "SmallCNN", "TextTransformer"]
