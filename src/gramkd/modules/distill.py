from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from gramkd.distill.gram import fixed_gram_mse
from gramkd.distill.step import DistillStep
from gramkd.distill.teacher_cache import TeacherOutputCache
from gramkd.errors import GramkdError
from gramkd.identity import net_key
from gramkd.modules.classifier import ClassifierModule
from gramkd.modules.epoch_means import stack_values
from gramkd.nets.contract import check_network
from gramkd.nets.output import MultimodalOutput
from gramkd.nets.subsets import single_modality_outputs

TEACHER_CACHE_MODES = ("memory", "disk", "off")


class DistillModule(ClassifierModule):
    """Trains a student (`net`) against a frozen teacher with registered distillation terms.

    loss = alpha * CE(student, target) + Σ_i weight_i(epoch) * term_i. Teacher and student run once
    per step and every term sees the same DistillStep. The teacher has no gradients, stays in
    eval mode, follows the module across devices and is left out of the state_dict and so of
    checkpoints: a checkpoint holds the student (`net.*`) and whatever the terms learn.
    """

    def __init__(
        self,
        net: nn.Module,
        teacher: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        scheduler_interval: str = "epoch",
        alpha: float = 1.0,
        teacher_cache: str = "memory",
        teacher_cache_dir: str | None = None,
        labeled_rows: int | None = None,
    ):
        super().__init__(net, optimizer, scheduler, scheduler_interval, labeled_rows)
        if teacher_cache not in TEACHER_CACHE_MODES:
            raise GramkdError(f"module.teacher_cache={teacher_cache!r} is not one of {', '.join(TEACHER_CACHE_MODES)}")
        self.teacher_cache_mode, self.teacher_cache_dir = teacher_cache, teacher_cache_dir
        self.teacher_cache: TeacherOutputCache | None = None
        check_network(teacher, "teacher")
        if list(teacher.modality_names) != list(net.modality_names):
            raise GramkdError(f"the student's modalities {net.modality_names} differ from the teacher's {teacher.modality_names}")
        if teacher.num_classes != net.num_classes:
            raise GramkdError(f"the student has {net.num_classes} classes but the teacher has {teacher.num_classes}")
        self.__dict__["teacher"] = teacher.requires_grad_(False).eval()  # unregistered: no state_dict, no optimiser, no DDP
        self.alpha = alpha
        self.terms: dict[str, object] = {}
        self.term_modules = nn.ModuleDict()
        num_classes = net.num_classes
        self.agreement = nn.ModuleDict({f"{s}_agreement": MulticlassAccuracy(num_classes, average="micro") for s in ("val", "test")})
        self.gram_mse = nn.ModuleDict({f"{s}_gram_mse": MeanMetric() for s in ("val", "test")})

    @property
    def modality_names(self) -> list[str]:
        return self.net.modality_names

    # -- terms ---------------------------------------------------------------------------------
    def register_term(self, term) -> None:
        if term.name in self.terms and self.terms[term.name] is not term:
            raise ValueError(f"two distillation terms are named '{term.name}'; give one another `name`")
        self.terms[term.name] = term
        learnable = term.learnable()
        if learnable is not None and term.name not in self.term_modules:
            self.term_modules[term.name] = learnable

    def summary_nets(self) -> dict[str, nn.Module]:
        """The student, the terms' own learnable parts (trained with it) and the frozen teacher."""
        return {"student": self.net, **{f"{name} term": m for name, m in self.term_modules.items()}, "teacher": self.teacher}

    # -- the teacher ---------------------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def setup(self, stage: str) -> None:
        if self.teacher_cache_mode == "off" or self.teacher_cache is not None:
            return
        data = self.trainer.datamodule
        if getattr(data, "random_augmentation", False):
            raise GramkdError(
                "the data module declares random augmentation, so the teacher's outputs change every epoch: set module.teacher_cache=off"
            )
        folder = self.teacher_cache_dir if self.teacher_cache_mode == "disk" else None
        self.teacher_cache = TeacherOutputCache(data.num_rows, net_key(self.teacher, self.run_config.get("data", {})), folder)

    def epoch_values(self) -> dict[str, torch.Tensor]:
        """Each term's weight: constant within an epoch, so logged once, with the epoch means."""
        return {
            f"weight/{name}": torch.tensor(float(term.weight_at(self.current_epoch)), device=self.device)
            for name, term in self.terms.items()
        }

    def teacher_outputs(self, batch: dict, kind: str = "full") -> MultimodalOutput:
        """The teacher's outputs (`full`, or `single`: one modality at a time), cached per row."""
        inputs, present = batch["inputs"], batch["present"]

        def compute() -> MultimodalOutput:
            with torch.no_grad():
                if kind == "single":
                    return single_modality_outputs(self.teacher, inputs, present)
                return self.teacher(inputs, present)

        if self.teacher_cache is None:
            return compute()
        return self.teacher_cache.get_or_compute(kind, batch["index"], compute)

    def distill_step(self, batch: dict) -> DistillStep:
        inputs, present = batch["inputs"], batch["present"]
        teacher = self.teacher_outputs(batch)  # first: its temporaries are freed before the student's graph holds memory
        return DistillStep(
            batch,
            student=self(batch),
            teacher=teacher,
            _single_fns={
                "student": lambda: single_modality_outputs(self.net, inputs, present),
                "teacher": lambda: self.teacher_outputs(batch, "single"),
            },
        )

    # -- steps ---------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        step = self.distill_step(batch)
        ce = self.label_loss(step.student.logits, batch)
        total = self.alpha * ce
        values, epoch = {"train/ce": ce}, self.current_epoch
        for name, term in self.terms.items():
            value = term.loss(step)
            total = total + term.weight_at(epoch) * value
            values[f"train/{name}"] = value
        values["train/loss"] = total
        stacked = stack_values(values)  # one tensor for the finiteness check and the epoch means
        self.stop_if_not_finite({"ce": ce, **{name: values[f"train/{name}"] for name in self.terms}}, stacked)
        self.log_train_step(values, step.student.logits, batch["target"], stacked)
        return total

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.teacher_cache is not None:
            self.teacher_cache.flush()

    def _evaluate(self, split: str, batch: dict) -> DistillStep:
        step = self.distill_step(batch)
        target = batch["target"]
        self._log_loss(split, F.cross_entropy(step.student.logits, target), len(target))
        self._log_metrics(split, step.student.logits, target)
        agreement = self.agreement[f"{split}_agreement"]
        agreement.update(step.student.logits, step.teacher.logits.argmax(-1))
        gram_mse = self.gram_mse[f"{split}_gram_mse"]
        gram_mse.update(self.gram_distance(step), len(target))
        self.log(f"{split}/agreement", agreement, on_epoch=True)
        self.log(f"{split}/gram_mse", gram_mse, on_epoch=True)
        return step

    def gram_distance(self, step: DistillStep) -> torch.Tensor:
        """`gram_mse`: one fixed definition in every run, whatever its Gram term's options."""
        return fixed_gram_mse(step)

    def validation_step(self, batch: dict, batch_idx: int) -> DistillStep:
        return self._evaluate("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> DistillStep:
        step = self._evaluate("test", batch)
        self._test_extras(batch, step.student.logits)
        return step
