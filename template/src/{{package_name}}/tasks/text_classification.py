"""Text classification: classification whose inputs are texts, as token ids ``(n, length)``.

What differs from tabular classification is the input, not the target: the model sees token ids
(padded with ``data.text.PAD_ID``), so the task sizes the model's embedding from the tokenizer,
and it carries the tokenizer itself. The tokenizer was trained by ``prepare`` (on the training
split only): ``fit_inputs`` takes it from the training dataset, ``state_dict`` puts its JSON text
into the checkpoint, and ``predict``, ``evaluate`` and ``export`` tokenize with that copy.
"""

from typing import Any, ClassVar

from ..data.text import PAD_ID, tokenizer_from_json, tokenizer_md5
from .classification import Classification


class TextClassification(Classification):
    text: ClassVar[bool] = True

    def __init__(self, data) -> None:
        super().__init__(data)
        self.tokenizer: Any = None  # a tokenizers.Tokenizer, once fitted or loaded
        self.tokenizer_json: str | None = None

    def model_sizes(self) -> dict[str, int]:
        # The embedding has data.tokenizer.vocab_size rows: the tokenizer's vocabulary is at
        # most that (prepare checks it), so the model can be built from the config alone.
        return {
            **super().model_sizes(),
            "vocab_size": int(self.data.tokenizer.vocab_size),
            "max_length": int(self.data.max_length),
            "pad_id": PAD_ID,
        }

    def fit_inputs(self, dataset: Any) -> None:
        self.tokenizer, self.tokenizer_json = dataset.tokenizer, dataset.tokenizer_json

    def state_dict(self) -> dict[str, Any]:
        if self.tokenizer_json is None:
            raise ValueError("the text task has no tokenizer: fit_inputs was not called")
        return {
            "tokenizer": {"json": self.tokenizer_json, "md5": tokenizer_md5(self.tokenizer_json)}
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["tokenizer"]
        self.tokenizer_json = saved["json"]
        if tokenizer_md5(self.tokenizer_json) != saved["md5"]:
            raise ValueError("the checkpoint's tokenizer does not match its md5")
        self.tokenizer = tokenizer_from_json(self.tokenizer_json)

    def encode_texts(self, texts: list[str]) -> Any:
        """Texts as the model's padded ``(n, longest)`` int64 ids, with this task's tokenizer."""
        from ..data.text import encode_padded

        return encode_padded(self.tokenizer, texts, int(self.data.max_length))
