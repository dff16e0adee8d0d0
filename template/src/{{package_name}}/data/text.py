"""Text data: the tokenizer, token ids, and the dataset that pads them a batch at a time.

A text dataset's processed splits are tables of ``id``, ``text`` and ``label``; beside them,
``prepare`` writes ``tokenizer.json`` (a Hugging Face ``tokenizers`` file, trained on the
training split only, or the one of a pretrained model: ``data.tokenizer.pretrained``) and
``text.json`` (the class names and the tokenizer's kind, vocabulary size and md5). The
tokenizer is an artifact of the data version: ``train`` copies it into every checkpoint (the
text task's ``state_dict``), so that ``predict``, ``evaluate`` and ``export`` turn text into the
very ids the model was trained on, whatever has been prepared since.

Token ids: ``PAD_ID`` (0) pads a batch to its longest text; the model masks it out. Texts are
cut at ``data.max_length`` tokens. ``TokenizedText`` holds a split as variable-length id arrays
and builds each batch padded to the longest of its rows only (not to ``max_length``): a batch of
short docstrings costs what short docstrings cost.

``tokenizers`` is imported where it is used: only text projects depend on it.
"""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

#: The files prepare writes beside a text dataset's splits.
TOKENIZER_FILE = "tokenizer.json"
TEXT_FILE = "text.json"
#: Special tokens, in id order: [PAD] must be 0 (the models mask id 0 out).
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID = 0
TOKENIZER_KINDS = ("wordpiece", "bpe")


def train_tokenizer(
    texts: Sequence[str], kind: str = "wordpiece", vocab_size: int = 8000, lowercase: bool = True
) -> Any:
    """A ``tokenizers.Tokenizer`` trained on ``texts`` (the training split's: never val/test)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    trainer: trainers.Trainer
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
        tokenizer.decoder = decoders.WordPiece()
    elif kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
        tokenizer.decoder = decoders.BPEDecoder()
    else:
        raise ValueError(f"data.tokenizer.kind must be one of {TOKENIZER_KINDS}, got {kind!r}")
    # NFKC folds look-alike characters; BERT's pre-tokenizer splits on spaces and punctuation.
    steps = [normalizers.NFKC(), *([normalizers.Lowercase()] if lowercase else [])]
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return tokenizer


def tokenizer_from_json(content: str) -> Any:
    """A tokenizer from the JSON text of a ``tokenizer.json`` (or of a checkpoint's copy)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(content)


def load_tokenizer(processed_dir: str | Path) -> tuple[Any, str]:
    """The prepared tokenizer and its JSON text (what a checkpoint stores); a file that is not
    one is a ``DataValidationError`` naming it and the rebuild (exit 5)."""
    path = Path(processed_dir) / TOKENIZER_FILE
    if not path.is_file():
        package = __name__.split(".")[0]
        raise FileNotFoundError(
            f"{path} does not exist: prepare the text data first with `make prepare` (or "
            f"`python -m {package}.data.prepare`), which trains the tokenizer."
        )
    try:
        content = path.read_text(encoding="utf-8")
        return tokenizer_from_json(content), content
    except Exception as error:  # tokenizers raises its own Exception type for a bad file
        from ..errors import DataValidationError
        from .checks import rebuild_hint

        reason = " ".join(str(error).split())[:200]
        raise DataValidationError(
            f"{path} cannot be read as a tokenizer ({reason}): it is empty, truncated or "
            f"corrupt; {rebuild_hint()}."
        ) from None


def tokenizer_md5(content: str) -> str:
    """The md5 of a tokenizer's JSON text: the version of the tokenizer in records and runs."""
    return hashlib.md5(content.encode("utf-8")).hexdigest()


def read_text_record(processed_dir: str | Path) -> dict[str, Any]:
    """``text.json``: class names, and the tokenizer's kind, vocabulary size and md5."""
    return json.loads((Path(processed_dir) / TEXT_FILE).read_text(encoding="utf-8"))


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[np.ndarray]:
    """Each text's token ids (int64), cut at ``max_length`` tokens; an empty text is one
    ``[UNK]`` (a row of padding only would have nothing for the model to pool)."""
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    unknown = tokenizer.token_to_id("[UNK]") or 1
    return [np.asarray(e.ids[:max_length] or [unknown], dtype=np.int64) for e in encodings]


def pad(sequences: Sequence[np.ndarray], pad_id: int = PAD_ID) -> np.ndarray:
    """Id arrays as one ``(n, longest)`` int64 array, padded with ``pad_id`` on the right."""
    longest = max((len(s) for s in sequences), default=1)
    out = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    for row, ids in enumerate(sequences):
        out[row, : len(ids)] = ids
    return out


def encode_padded(tokenizer: Any, texts: Sequence[str], max_length: int) -> np.ndarray:
    """``pad(encode(...))``: a batch of texts as the model takes it."""
    return pad(encode(tokenizer, texts, max_length))


class TokenizedText(Dataset):
    """A split of texts as token ids; ``__getitems__`` returns a padded batch and its targets.

    ``texts`` stay beside the ids (evaluation perturbs and shows them); ``tokenizer`` is the one
    that made the ids (its JSON text in ``tokenizer_json``: the text task copies it into the
    checkpoint). The ids are kept as one flat array and offsets: one object, not one per text.
    """

    def __init__(
        self,
        texts: Sequence[str],
        targets: torch.Tensor,
        tokenizer: Any,
        tokenizer_json: str,
        max_length: int,
    ) -> None:
        self.texts = list(texts)
        self.targets = targets
        self.tokenizer = tokenizer
        self.tokenizer_json = tokenizer_json
        self.max_length = int(max_length)
        ids = encode(tokenizer, self.texts, self.max_length)
        self.lengths = np.asarray([len(s) for s in ids], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.texts)

    def token_ids(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index] : self.offsets[index + 1]]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids, targets = self.__getitems__([index])
        return ids[0], targets[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = pad([self.token_ids(int(i)) for i in indices])
        return torch.from_numpy(batch), self.targets[torch.as_tensor(indices, dtype=torch.long)]

    def padded(self) -> np.ndarray:
        """The whole split as one padded ``(n, longest)`` array (evaluation's inputs)."""
        return pad([self.token_ids(i) for i in range(len(self))])
