"""A small Transformer encoder for text classification, built from PyTorch's own modules.

    token ids (n, length) --embedding + learned positions--> (n, length, d_model)
      --nn.TransformerEncoder (pre-norm, padding masked)--> --mean over the real tokens-->
      --LayerNorm -> Linear--> logits (n, out_features)

Padding (``pad_id``, 0) is masked in attention and left out of the mean, so a text's logits do
not depend on how long the other texts of its batch are. The sizes the data decides
(``vocab_size``, ``max_length``, ``pad_id``) and the output width come from the task
(``tasks/text_classification.py``); the rest is configs/model/transformer.yaml.
"""

import torch
from torch import nn


class TextTransformer(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        out_features: int,
        max_length: int = 128,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(
                f"TextTransformer's d_model ({d_model}) must be a multiple of n_heads ({n_heads})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"TextTransformer dropout must be in [0, 1), got {dropout}")
        self.pad_id = int(pad_id)
        self.max_length = int(max_length)
        # The shape a run records (tracking/records.py): embedding size, layers, heads.
        self.d_model, self.n_layers, self.n_heads = int(d_model), int(n_layers), int(n_heads)
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=self.pad_id)
        self.position = nn.Embedding(self.max_length, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm: trains stably without a warm-up
        )
        # enable_nested_tensor=False: the nested-tensor fast path is for inference; it warns
        # with norm_first and would make training and evaluation take different paths.
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, out_features)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids[:, : self.max_length].long()
        padding = ids == self.pad_id  # True where there is no token
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.embed(ids) + self.position(positions)
        x = self.encoder(self.dropout(x), src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return self.head(self.norm(pooled))
