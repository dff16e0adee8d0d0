"""A pretrained Hugging Face transformer fine-tuned with LoRA adapters (``peft``): text only.

    token ids (n, length), padded with pad_id --[CLS] ids [SEP], attention mask = not padding-->
      --the pretrained encoder, its attention projections (``target_modules``) + LoRA adapters-->
      --its sequence-classification head (new, out_features wide)--> logits (n, out_features)

``pretrained`` is a folder written by ``save_pretrained`` (``config.json`` and the weights;
``tokenizer.json`` beside them), or a hub name where there is a network. The architecture is
built from its ``config.json`` (``AutoModelForSequenceClassification``); the weights are loaded
by ``load_pretrained``, which the trainer calls for a new run only: a checkpoint holds every
weight, so ``evaluate``, ``predict`` and a resumed run read just the folder's ``config.json``
and ``tokenizer.json`` (a few kilobytes; keep the folder where the checkpoint can find it).

What trains: the low-rank adapters (``r``, ``alpha``, ``dropout``) of ``target_modules`` and the
classification head (``peft`` keeps the head trainable for a sequence-classification model);
every pretrained weight is frozen (``requires_grad`` False), and the trainer's optimizer gets only
the trainable parameters (``training/finetuning.py``). ``merged()`` folds the adapters into the
weights (``merge_and_unload``): the same predictions from a plain transformer, as fast as one.

The token ids must be the pretrained model's own: prepare the data with its tokenizer
(``data.tokenizer.pretrained=<folder>``, its vocabulary within ``data.tokenizer.vocab_size``, its
``[PAD]`` id 0). The data's ids come without special tokens, so the model adds the ones the
pretrained encoder was trained with: ``[CLS]`` first (the token the head reads) and ``[SEP]``
after the text, their ids read from the folder's ``tokenizer.json`` (``special_tokens: false``:
none added).

``transformers`` and ``peft`` are imported where they are used: they are the project's optional
extra ``nlp`` (``pip install -e '.[nlp]'``), so a project without it imports this module.
"""

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError

_INSTALL = "pip install -e '.[nlp]' (transformers and peft)"
TOKENIZER_FILE = "tokenizer.json"  # data/text.py's name for it (models import no data module)


class LoraClassifier(nn.Module):
    model: Any  # peft's PeftModel over a transformers classifier (peft and transformers: untyped)

    def __init__(
        self,
        pretrained: str,
        out_features: int,
        pad_id: int = 0,
        vocab_size: int | None = None,
        max_length: int | None = None,
        r: int = 8,
        alpha: float = 16,
        dropout: float = 0.1,
        target_modules: list[str] | None = None,
        modules_to_save: list[str] | None = None,
        special_tokens: bool = True,
    ) -> None:
        super().__init__()
        if not pretrained:
            raise ConfigError(
                "model.pretrained is not set: give the folder of a pretrained Hugging Face model "
                "(config.json, weights, tokenizer.json), e.g. model.pretrained=models/bert-small."
            )
        if r < 1 or alpha <= 0 or not 0.0 <= dropout < 1.0:
            raise ConfigError(
                f"model.r must be >= 1, model.alpha > 0 and model.dropout in [0, 1), got r={r}, "
                f"alpha={alpha}, dropout={dropout}."
            )
        transformers, peft = _libraries()
        self.pretrained, self.pad_id = str(pretrained), int(pad_id)
        config = _config(transformers, self.pretrained, int(out_features))
        _check_sizes(config, self.pretrained, vocab_size)
        special = _special_ids(self.pretrained, config) if special_tokens else (None, None)
        self.cls_id, self.sep_id = special
        # Positions the encoder has, less the special tokens added here: longer texts are cut.
        limit = getattr(config, "max_position_embeddings", None)
        extra = (self.cls_id is not None) + (self.sep_id is not None)
        lengths = [n for n in (max_length, limit and limit - extra) if n]
        self.max_length = int(min(lengths)) if lengths else None
        self.lora = peft.LoraConfig(
            task_type=peft.TaskType.SEQ_CLS,  # peft then keeps the classification head trainable
            r=int(r),
            lora_alpha=float(alpha),
            lora_dropout=float(dropout),
            target_modules=list(target_modules) if target_modules else None,
            modules_to_save=list(modules_to_save) if modules_to_save else None,
        )
        self.merged_ = False
        network = transformers.AutoModelForSequenceClassification.from_config(config)
        self.model = _adapted(peft, network, self.lora, self.pretrained)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        if self.max_length is not None:
            ids = ids[:, : self.max_length]
        mask = ids != self.pad_id
        ids, mask = self._with_special_tokens(ids, mask)
        return self.model(input_ids=ids, attention_mask=mask.long()).logits

    def _with_special_tokens(
        self, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[CLS] ids [SEP]`` on each row, the padding after them; the mask follows."""
        rows = torch.arange(ids.shape[0], device=ids.device)
        if self.sep_id is not None:
            lengths = mask.sum(dim=1)  # right padding: the first padding position of each row
            ids = torch.cat([ids, torch.full_like(ids[:, :1], self.pad_id)], dim=1)
            mask = torch.cat([mask, torch.zeros_like(mask[:, :1])], dim=1)
            ids = ids.index_put((rows, lengths), torch.full_like(lengths, self.sep_id))
            mask = mask.index_put((rows, lengths), torch.ones_like(lengths, dtype=torch.bool))
        if self.cls_id is not None:
            ids = torch.cat([torch.full_like(ids[:, :1], self.cls_id), ids], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return ids, mask

    def load_pretrained(self) -> None:
        """The pretrained weights under the adapters (a new run's start: the trainer calls it).

        The head is new (its width is the task's), and so are the adapters (initialised by
        ``peft`` so that the adapted model starts as the pretrained one)."""
        if self.merged_:
            return
        transformers, peft = _libraries()
        try:
            network = transformers.AutoModelForSequenceClassification.from_pretrained(
                self.pretrained,
                num_labels=self.model.config.num_labels,
                ignore_mismatched_sizes=True,  # a folder's own head of another width: replaced
            )
        except (OSError, ValueError) as error:
            raise CheckpointError(
                f"model.pretrained={self.pretrained}: its weights cannot be loaded "
                f"({str(error).splitlines()[0] if str(error) else type(error).__name__}). Give "
                "a folder written by save_pretrained (config.json and model.safetensors or "
                "pytorch_model.bin)."
            ) from None
        # float32 whatever the folder was saved in, as the trainer expects (AMP casts per step).
        self.model = _adapted(peft, network.float(), self.lora, self.pretrained)

    def trainable(self) -> list[str]:
        """The names of the parameters that train (the adapters', the head's)."""
        return [name for name, p in self.named_parameters() if p.requires_grad]

    def merged(self) -> "LoraClassifier":
        """A copy with the adapters merged into the weights and removed: a plain transformer
        that predicts as this one does (to rounding), without the adapters' extra products."""
        if self.merged_:
            return self
        copied = copy.deepcopy(self)
        copied.model = copied.model.merge_and_unload()
        copied.merged_ = True
        return copied.train(self.training)


# ---- building blocks ----------------------------------------------------------------------------


def _libraries() -> tuple[Any, Any]:
    try:
        import peft
        import transformers
    except ImportError as error:
        raise ConfigError(
            f"model=lora_pretrained needs transformers and peft, which cannot be imported "
            f"({error}). Install them: {_INSTALL}."
        ) from None
    return transformers, peft


def _config(transformers: Any, pretrained: str, out_features: int) -> Any:
    """The pretrained model's config (its ``config.json``), with ``num_labels`` the task's."""
    path = Path(pretrained).expanduser()
    if (path.is_absolute() or pretrained.startswith((".", "~"))) and not path.is_dir():
        raise ConfigError(
            f"model.pretrained={pretrained}: no such folder. Give the folder of a model saved with "
            "save_pretrained (config.json, its weights, tokenizer.json)."
        )
    try:
        return transformers.AutoConfig.from_pretrained(pretrained, num_labels=out_features)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"model.pretrained={pretrained}: no model config can be read there "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}). Give the "
            "folder of a model saved with save_pretrained (it holds config.json), or a hub name "
            "where there is a network."
        ) from None


def _check_sizes(config: Any, pretrained: str, vocab_size: int | None) -> None:
    """The data's ids fit the model's embedding (data.tokenizer.vocab_size at most)."""
    rows = getattr(config, "vocab_size", None)
    if vocab_size is not None and rows is not None and int(vocab_size) > int(rows):
        raise ConfigError(
            f"data.tokenizer.vocab_size={vocab_size} but {pretrained}'s embedding has {rows} "
            "rows: the data's token ids must be the pretrained model's. Prepare the data with its "
            f"tokenizer (data.tokenizer.pretrained={pretrained}) and data.tokenizer.vocab_size="
            f"{rows}."
        )


def _special_ids(pretrained: str, config: Any) -> tuple[int | None, int | None]:
    """The ids of the tokens that open and close a text: BERT's ``[CLS]`` and ``[SEP]``,
    RoBERTa's ``<s>`` and ``</s>``, from the folder's tokenizer (else from the model's config)."""
    ids: dict[str, int] = {}
    path = Path(pretrained).expanduser() / TOKENIZER_FILE
    if path.is_file():
        content = json.loads(path.read_text(encoding="utf-8"))
        vocabulary = content.get("model", {}).get("vocab")
        ids = dict(vocabulary) if isinstance(vocabulary, dict) else {}
        ids |= {token["content"]: token["id"] for token in content.get("added_tokens", [])}
    cls_id = _first(ids, ("[CLS]", "<s>"), config, ("cls_token_id", "bos_token_id"))
    sep_id = _first(ids, ("[SEP]", "</s>"), config, ("sep_token_id", "eos_token_id"))
    return cls_id, sep_id


def _first(ids: dict[str, int], tokens: tuple, config: Any, keys: tuple) -> int | None:
    found = [ids[t] for t in tokens if t in ids] + [getattr(config, k, None) for k in keys]
    return next((int(i) for i in found if i is not None), None)


def _adapted(peft: Any, network: nn.Module, lora: Any, pretrained: str) -> nn.Module:
    """``network`` with LoRA adapters: only they and the head train."""
    try:
        with warnings.catch_warnings():  # peft reads an attribute transformers 5 deprecates
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
            return peft.get_peft_model(network, copy.deepcopy(lora))
    except ValueError as error:  # target modules the network does not have
        raise ConfigError(
            f"model.target_modules cannot be adapted in {pretrained} ({error}). Name its "
            "attention projections (BERT, RoBERTa: [query, value]; DistilBERT: [q_lin, v_lin]), "
            "or null for peft's default for the architecture."
        ) from None
