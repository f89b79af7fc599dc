"""Shared pieces of the benchmarks: the machine, one thread, the real mfeat kd_gram objects,
the hand-written loop they are compared against, and timing helpers.

Every benchmark is a script that prints one JSON object (its figures) on its last line of stdout;
`run_all.py` runs them one after another and writes `results.md`.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: a shared 2-core machine
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import copy
import json
import logging
import platform
import statistics
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*GPU available but not used.*")
warnings.filterwarnings("ignore", ".*predict_dataloader.*")
for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(name).setLevel(logging.ERROR)

HERE = Path(__file__).resolve().parent


# -- the machine ---------------------------------------------------------------------------------
def load() -> str:
    """`uptime`'s load averages (1, 5, 15 min), e.g. '2.31, 2.10, 1.95'."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def busy_processes(min_cpu: float = 20.0) -> list[str]:
    """Other processes using CPU now (`ps`: %CPU over each one's lifetime), e.g. someone's sweep."""
    try:
        listing = subprocess.run(["ps", "-eo", "pid,ppid,pcpu,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    except OSError:
        return []
    mine = {os.getpid(), os.getppid()}
    busy = []
    for line in listing.splitlines()[1:]:
        pid, ppid, cpu, args = line.split(None, 3)
        if float(cpu) >= min_cpu and int(pid) not in mine and int(ppid) not in mine:
            busy.append(f"{float(cpu):.0f} % CPU: {args[:90]}")
    return busy[:4]


def machine() -> dict:
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import lightning

    return {
        "cpu": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load": load(),
        "busy": busy_processes(),
    }


def emit(result: dict) -> None:
    """The benchmark's figures, as the last line of stdout (read by run_all.py)."""
    print(json.dumps(result), flush=True)


# -- timing --------------------------------------------------------------------------------------
def median(values) -> float:
    return statistics.median(values)


def interleaved(candidates: dict, repeats: int, number: int = 1, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each candidate (a zero-argument callable), measured in rounds: every
    round runs each candidate `number` times, in an order that rotates from round to round, so that
    a change in the machine's load hits all candidates alike. Returns name -> one time per round."""
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            started = time.perf_counter()
            for _ in range(number):
                candidates[name]()
            times[name].append((time.perf_counter() - started) / number)
    return times


def paired_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of the per-round ratio (the two were measured side by side each round)."""
    return median([a / b for a, b in zip(times[numerator], times[denominator])])


# -- the real kd_gram objects on mfeat -------------------------------------------------------------
@dataclass
class Setup:
    cfg: object          # the composed `gramkd fit experiment=mfeat/kd_gram` config
    datamodule: object
    student: torch.nn.Module
    teacher: torch.nn.Module
    terms_cfg: list      # the selected distillation terms' configs


def mfeat_kd_gram(overrides: list[str] = (), teacher_seed: int = 0) -> Setup:
    """The objects `gramkd fit experiment=mfeat/kd_gram` builds, from the real configs, with a
    randomly initialised teacher of the teacher preset (the timing does not depend on its weights)."""
    from hydra.utils import instantiate

    from gramkd.config import compose
    from gramkd.teacher import teacher_run_config
    from gramkd.nets.build import build_net
    from gramkd.train import selected_terms

    cfg = compose("fit", ["experiment=mfeat/kd_gram", *overrides])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    teacher_cfg = teacher_run_config(cfg)
    torch.manual_seed(teacher_seed)
    teacher = build_net(teacher_cfg.net, datamodule).eval().requires_grad_(False)
    torch.manual_seed(cfg.seed)
    student = build_net(cfg.net, datamodule)
    return Setup(cfg, datamodule, student, teacher, list(selected_terms(cfg)))


def distill_module(setup: Setup, teacher_cache: str = "off"):
    """A DistillModule as `gramkd.train.build_module` makes it (own copy of the student's initial
    weights) and its distillation terms (Callbacks)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    module = instantiate(setup.cfg.module, net=copy.deepcopy(setup.student), teacher=setup.teacher, teacher_cache=teacher_cache)
    module.run_config = {"data": OmegaConf.to_container(setup.cfg.data, resolve=True)}
    terms = [instantiate(term) for term in setup.terms_cfg]
    return module, terms


def lean_trainer(epochs: int, callbacks: list, **kwargs):
    """The trainer preset (`trainer=default`: cpu, 32-true, log_every_n_steps 10) as lean as a user
    would run it for speed: no progress bar, summary, checkpointing, logger or validation."""
    import lightning as L

    for name in ("lightning.pytorch", "lightning.fabric"):  # its notes on stdout (set after Lightning's import)
        logging.getLogger(name).setLevel(logging.ERROR)
    return L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, precision="32-true", log_every_n_steps=10,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=callbacks, **kwargs,
    )


@dataclass
class Math:
    """The kd_gram loss of the config, as plain numbers: alpha·CE + w_kd·KD(T) + w_gram·Gram."""

    alpha: float
    kd_weight: float
    temperature: float
    gram_weight: float
    gram_center: bool
    gram_normalize: bool
    lr: float
    weight_decay: float
    t_max: int

    @classmethod
    def of(cls, cfg) -> "Math":
        d = cfg.distill
        assert d.gram.distance == "mse" and not d.gram.exclude_diagonal and d.gram.source == "modality_features"
        assert d.kd.warmup_epochs == 0 and d.gram.warmup_epochs == 0
        return cls(
            alpha=cfg.module.alpha, kd_weight=d.kd.weight, temperature=d.kd.temperature, gram_weight=d.gram.weight,
            gram_center=d.gram.center, gram_normalize=d.gram.normalize == "l2",
            lr=cfg.module.optimizer.lr, weight_decay=cfg.module.optimizer.weight_decay, t_max=cfg.module.scheduler.T_max,
        )

    def loss(self, student_out, teacher_out, target, gram: bool = True) -> torch.Tensor:
        from gramkd.distill.functional import gram_loss, kd_loss

        total = self.alpha * F.cross_entropy(student_out.logits, target)
        total = total + self.kd_weight * kd_loss(student_out.logits, teacher_out.logits, self.temperature)
        if gram:
            total = total + self.gram_weight * gram_loss(
                student_out.modality_features, teacher_out.modality_features, student_out.modality_mask,
                self.gram_normalize, False, "mse", self.gram_center,
            )
        return total


class HandLoop:
    """The minimal PyTorch training loop with the DistillModule's math: AdamW (same lr, weight
    decay) and the per-epoch cosine schedule of the config, the same loader (same batches in the
    same order), the teacher under no_grad."""

    def __init__(self, setup: Setup, gram: bool = True):
        self.setup, self.gram = setup, gram
        self.math = Math.of(setup.cfg)

    def fit(self, epochs: int, record: list | None = None, epoch_starts: list | None = None) -> torch.nn.Module:
        student, teacher, math = copy.deepcopy(self.setup.student), self.setup.teacher, self.math
        optimizer = torch.optim.AdamW(student.parameters(), lr=math.lr, weight_decay=math.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=math.t_max)
        loader = self.setup.datamodule.train_dataloader()
        student.train()
        for epoch in range(epochs):
            if epoch_starts is not None:
                epoch_starts.append(time.perf_counter())
            loader.sampler.set_epoch(epoch)
            for batch in loader:
                inputs, present = batch["inputs"], batch["present"]
                with torch.no_grad():
                    teacher_out = teacher(inputs, present)
                student_out = student(inputs, present)
                loss = math.loss(student_out, teacher_out, batch["target"], self.gram)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if record is not None:
                    record.append(loss.detach())
            scheduler.step()
        if epoch_starts is not None:
            epoch_starts.append(time.perf_counter())
        return student


def epoch_seconds(starts: list[float], skip_first: bool = True) -> float:
    """Mean seconds per epoch from the epochs' start times (plus the end), the first epoch left out."""
    durations = [b - a for a, b in zip(starts, starts[1:])]
    if skip_first and len(durations) > 1:
        durations = durations[1:]
    return sum(durations) / len(durations)


def epoch_timer_callback(starts: list, losses: list | None = None):
    """A Callback noting when each training epoch starts and when training ends (and the losses)."""
    from lightning.pytorch.callbacks import Callback

    class EpochTimer(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            starts.append(time.perf_counter())

        def on_train_end(self, trainer, pl_module):
            starts.append(time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if losses is not None:
                losses.append(outputs["loss"].detach())

    return EpochTimer()


@contextmanager
def quiet():
    """Silence Lightning's one-time notes on stdout/stderr (the JSON line must stay last)."""
    devnull = open(os.devnull, "w")
    out, err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = devnull
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
        devnull.close()
