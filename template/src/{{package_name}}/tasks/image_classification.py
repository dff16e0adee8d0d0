"""Image classification: classification whose inputs are images ``(channels, height, width)``.

What differs from tabular classification is the input, not the target: the trainer may lay
images out channels-last, and the health monitors draw predictions on a grid of them.
"""

from typing import ClassVar

from .classification import Classification


class ImageClassification(Classification):
    images: ClassVar[bool] = True
