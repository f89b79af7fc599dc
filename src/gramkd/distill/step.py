from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch

from gramkd.distill.functional.gram import GramMask
from gramkd.nets import MultimodalOutput


@dataclass
class DistillStep:
    """Everything a distillation term may look at for one batch: the batch and both outputs.

    The single-modality outputs (each network run with one modality present at a time) are
    computed on first use, once per step, and shared by every term that asks for them.
    """

    batch: dict
    student: MultimodalOutput
    teacher: MultimodalOutput
    _single_fns: dict[str, Callable[[], MultimodalOutput]] = field(default_factory=dict, repr=False)
    _single_cache: dict[str, MultimodalOutput] = field(default_factory=dict, repr=False)

    @property
    def mask(self) -> torch.Tensor:
        """[B, M] bool: modalities present in each sample."""
        return self.student.modality_mask

    @cached_property
    def gram_mask(self) -> GramMask:
        """`mask`, prepared once per step for every Gram matrix and Gram loss of the step."""
        return GramMask(self.mask)

    def single_modality(self, who: str) -> MultimodalOutput:
        """`who`'s outputs with one modality present at a time: logits [B, M, C], mask [B, M]."""
        if who not in self._single_cache:
            self._single_cache[who] = self._single_fns[who]()
        return self._single_cache[who]
