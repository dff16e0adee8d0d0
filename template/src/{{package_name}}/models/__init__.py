"""The example networks, and the place for yours.

To add a model: write a module next to these with an ``nn.Module`` subclass, export it below, and
add a config for it in ``configs/model/`` whose ``_target_`` names the class.
"""

from .cnn import SmallCNN
from .mlp import MLP

__all__ = ["MLP", "SmallCNN"]
