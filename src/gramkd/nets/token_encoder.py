import torch
from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.contract import ModalitySpec
from gramkd.nets.transformer_stack import transformer_stack


class TokenEncoder(nn.Module):
    """[B, 2, T] (token ids; attention mask 1/0) -> [B, width].

    Token plus learned position embeddings, a small pre-norm TransformerEncoder that cannot attend
    to padding, then the mean over the non-padding positions. Padded positions have no influence;
    a row with no tokens at all encodes to zero. Rows may be shorter than the declared T.
    """

    def __init__(self, name: str, spec: ModalitySpec, width: int, hidden: int | None, dropout: float, *, depth: int, heads: int):
        super().__init__()
        if spec.vocab_size is None or spec.vocab_size < 1:
            raise GramkdError(f"tokens modality '{name}' has no vocab_size: declare it in the modality's spec (ids run below it)")
        if len(spec.shape) != 2 or spec.shape[0] != 2:
            raise GramkdError(
                f"tokens modality '{name}' has row shape {list(spec.shape)}; a tokens row must be [2, T] (ids, attention mask)"
            )
        self.name, self.vocab_size, self.max_length = name, spec.vocab_size, spec.shape[1]
        self.embedding = nn.Embedding(spec.vocab_size, width)
        self.position = nn.Parameter(torch.randn(1, self.max_length, width) * 0.02)
        self.encoder, self.norm = transformer_stack(width, hidden, depth, heads, dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self._check(tokens)
        attends = tokens[:, 1] > 0
        ids = tokens[:, 0].where(attends, 0)
        x = self.embedding(ids) + self.position[:, : ids.shape[1]]
        # A row of padding only would make attention NaN; let it attend anywhere, it averages to zero below.
        ignored = ~attends & attends.any(1, keepdim=True)
        x = self.norm(self.encoder(x, src_key_padding_mask=ignored))
        weights = attends.unsqueeze(-1).to(x.dtype)
        return (x * weights).sum(1) / weights.sum(1).clamp(min=1)

    def _check(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 3 or tokens.shape[1] != 2 or tokens.shape[2] > self.max_length or tokens.is_floating_point():
            raise GramkdError(
                f"tokens modality '{self.name}' got a {tokens.dtype} batch of shape {list(tokens.shape)}; "
                f"it needs integer [B, 2, T] with T <= {self.max_length}"
            )
        ids = tokens[:, 0][tokens[:, 1] > 0]
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise GramkdError(
                f"tokens modality '{self.name}' holds ids outside [0, {self.vocab_size}): fix the tokenizer or the modality's vocab_size"
            )
