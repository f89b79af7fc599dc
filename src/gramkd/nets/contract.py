"""What gramkd asks of a network. Any `nn.Module` that offers this is a teacher or a student.

    net.modality_names: list[str]   # the order of the rows in `modality_features`
    net.num_classes: int
    net(inputs, present) -> MultimodalOutput
        inputs:  {modality: Tensor[B, ...]}  (see KINDS for what each kind of modality holds)
        present: {modality: BoolTensor[B]}   (None: all present)

Nets are built by Hydra with `modalities` (name -> ModalitySpec, as a plain dict) and
`num_classes` filled in from the data module, so they wire themselves to the data.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.output import MultimodalOutput

# What one row of a modality's input holds:
#   vector    float [D]
#   sequence  float [T, D]
#   image     float [C, H, W], normalised pixels
#   tokens    long  [2, T]: row 0 the token ids, row 1 the attention mask (1 = token, 0 = padding)
KINDS = ("vector", "sequence", "image", "tokens")


@dataclass(frozen=True)
class ModalitySpec:
    """One modality as the data module declares it: its kind, the shape of one row, and for
    tokens the vocabulary size (ids run below it)."""

    kind: str
    shape: tuple[int, ...]
    vocab_size: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise GramkdError(f"unknown modality kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @classmethod
    def of(cls, value) -> "ModalitySpec":
        """A spec from a spec, a dict ({kind, shape, vocab_size}) or a bare shape (vector or sequence)."""
        if isinstance(value, ModalitySpec):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        shape = tuple(int(s) for s in value)
        return cls("vector" if len(shape) == 1 else "sequence", shape)

    def as_config(self) -> dict:
        """Plain values for YAML and checkpoints."""
        config = asdict(self)
        config["shape"] = list(self.shape)
        return config


def modality_specs(modalities: Mapping) -> dict[str, ModalitySpec]:
    return {name: ModalitySpec.of(value) for name, value in modalities.items()}


def constructor_config(arguments: dict, specs: Mapping[str, ModalitySpec]) -> dict:
    """A net's constructor arguments (`locals()` taken first thing in `__init__`), modalities as
    plain values: enough to build the same net again."""
    config = {name: value for name, value in arguments.items() if name not in ("self", "__class__")}
    return {**config, "modalities": {name: spec.as_config() for name, spec in specs.items()}}


def names_of_kind(specs: Mapping[str, ModalitySpec], *kinds: str) -> list[str]:
    return [name for name, spec in specs.items() if spec.kind in kinds]


@runtime_checkable
class MultimodalNetwork(Protocol):
    modality_names: list[str]
    num_classes: int

    def __call__(self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> MultimodalOutput: ...


def check_network(net: object, role: str) -> None:
    """Refuse, in one line, an object that does not honour the contract."""
    if not isinstance(net, nn.Module):
        raise GramkdError(f"the {role} must be a torch nn.Module, got {type(net).__name__}")
    missing = [attr for attr in ("modality_names", "num_classes") if not hasattr(net, attr)]
    if missing:
        raise GramkdError(
            f"the {role} ({type(net).__name__}) lacks {', '.join(missing)}: see gramkd.nets.contract for what a net must offer"
        )


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def present_mask(names: list[str], present: dict[str, torch.Tensor] | None, batch: int, device) -> torch.Tensor:
    """[B, M] bool from the batch's `present` dict (all True when it is None)."""
    if present is None:
        return torch.ones(batch, len(names), dtype=torch.bool, device=device)
    return torch.stack([present[m] for m in names], dim=1)


def batch_presence(
    net_name: str, names: list[str], inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None
) -> torch.Tensor:
    """The [B, M] presence mask of a batch, after checking that it has every modality the net needs."""
    missing = [m for m in names if m not in inputs]
    if missing:
        raise GramkdError(f"the batch lacks modality '{missing[0]}' that the {net_name} was built for ({', '.join(names)})")
    first = inputs[names[0]]
    return present_mask(names, present, first.shape[0], first.device)
