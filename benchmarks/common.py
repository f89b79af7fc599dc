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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from gramkd.allocator import keep_freed_memory  # noqa: E402

# as `gramkd fit` does (keep_freed_memory: true), for every variant alike: the hand loop and the
# modules share one allocator. BENCH_GLIBC_TRIMS=1 leaves glibc's own policy (to measure the setting).
FREED_MEMORY_KEPT = os.environ.get("BENCH_GLIBC_TRIMS") != "1" and keep_freed_memory()
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
        "freed_memory_kept": FREED_MEMORY_KEPT,
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


def median_ci(values, confidence: float = 0.95) -> list[float] | None:
    """[low, high]: a bootstrap confidence interval of the median of `values` (percentile method,
    fixed seed), for how far a median over a few rounds can be trusted; None under 3 values."""
    import numpy as np
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=float)
    if len(values) < 3:
        return None
    if np.ptp(values) == 0:
        return [float(values[0])] * 2
    interval = bootstrap((values,), np.median, confidence_level=confidence, method="percentile", n_resamples=4000, random_state=0)
    return [float(interval.confidence_interval.low), float(interval.confidence_interval.high)]


def interleaved(candidates: dict, repeats: int, number: int = 1, warmup: int = 1, clock: str = "wall") -> dict[str, list[float]]:
    """Seconds per call of each candidate (a zero-argument callable), measured in rounds: every
    round runs each candidate `number` times, in an order that rotates from round to round, so that
    a change in the machine's load hits all candidates alike. Returns name -> one time per round;
    `clock="both"`: {"wall": that, "cpu": the same on this process's CPU clock}."""
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    times = {c: {name: [] for name in names} for c in CLOCKS}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            started = stamp()
            for _ in range(number):
                candidates[name]()
            for c, (a, b) in zip(CLOCKS, zip(started, stamp())):
                times[c][name].append((b - a) / number)
    return times if clock == "both" else times[clock]


def paired_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of the per-round ratio (the two were measured side by side each round)."""
    return median([a / b for a, b in zip(times[numerator], times[denominator])])


# -- where a benchmark trains -------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """The device a benchmark trains on (`cpu`, `cuda`) and Lightning's precision there (`32-true`,
    or `bf16-mixed`: bf16 autocast around the forwards and the loss, fp32 weights). The default is
    the CPU benchmarks' own."""

    device: str = "cpu"
    precision: str = "32-true"

    def __post_init__(self):
        if self.precision not in ("32-true", "bf16-mixed"):
            raise ValueError(f"precision {self.precision!r}: 32-true or bf16-mixed")

    @property
    def accelerator(self) -> str:
        return "cpu" if self.device == "cpu" else "gpu"

    def stamp(self) -> tuple[float, float]:
        """`stamp()` once the work queued on the device is done."""
        if self.device != "cpu":
            torch.cuda.synchronize()
        return stamp()

    def autocast(self):
        """What Lightning's precision plugin wraps a training step in (nothing for 32-true)."""
        if self.precision == "32-true":
            return nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16)

    def move(self, batch: dict) -> dict:
        """The batch on the device, as Lightning moves it (non-blocking to a GPU)."""
        if self.device == "cpu":
            return batch
        from lightning.fabric.utilities.apply_func import move_data_to_device

        return move_data_to_device(batch, self.device)


CPU = Placement()


# -- the real kd_gram objects ----------------------------------------------------------------------
@dataclass
class Setup:
    cfg: object  # the composed `gramkd fit experiment=<...>/kd_gram` config
    datamodule: object
    student: torch.nn.Module
    teacher: torch.nn.Module
    terms_cfg: list  # the selected distillation terms' configs


def kd_gram_setup(experiment: str, overrides: list[str] = (), teacher_seed: int = 0) -> Setup:
    """The objects `gramkd fit experiment=<experiment>` builds, from the real configs, with a
    randomly initialised teacher of the teacher preset (the timing does not depend on its weights)."""
    from hydra.utils import instantiate

    from gramkd.config import compose
    from gramkd.nets.build import build_net
    from gramkd.teacher import teacher_run_config
    from gramkd.train import selected_terms

    cfg = compose("fit", [f"experiment={experiment}", *overrides])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    teacher_cfg = teacher_run_config(cfg)
    torch.manual_seed(teacher_seed)
    teacher = build_net(teacher_cfg.net, datamodule).eval().requires_grad_(False)
    torch.manual_seed(cfg.seed)
    student = build_net(cfg.net, datamodule)
    return Setup(cfg, datamodule, student, teacher, list(selected_terms(cfg).values()))


def mfeat_kd_gram(overrides: list[str] = (), teacher_seed: int = 0) -> Setup:
    """`experiment=mfeat/kd_gram`: the mfeat student and teacher presets on UCI mfeat."""
    return kd_gram_setup("mfeat/kd_gram", overrides, teacher_seed)


VILT_BENCH = ["data.batch_size=64", "module.labeled_rows=null"]


def vilt_kd_gram(root: str, sizes: dict[str, int], overrides: list[str] = (), teacher_seed: int = 0) -> Setup:
    """`experiment=digits_nlvr/kd_gram_vilt`: a ViLT student (conf/net/vilt_student.yaml as that
    experiment sets it) and a ViLT teacher (vilt_teacher.yaml, as the teacher experiment sets it)
    on digits_nlvr (two 1x16x16 digit images, 4x4 patches, a 12-token statement), generated in
    `root` with `sizes` examples; in batches of 64, every row labeled (`VILT_BENCH`: the hand
    loop's cross-entropy is over the whole batch; the transfer-set protocol is not what is timed)."""
    size_node = "{" + ",".join(f"{k}:{v}" for k, v in sizes.items()) + "}"
    overrides = [f"paths.cache_dir={root}", f"data.sizes={size_node}", *VILT_BENCH, *overrides]
    return kd_gram_setup("digits_nlvr/kd_gram_vilt", overrides, teacher_seed)


def distill_module(setup: Setup, teacher_cache: str = "off"):
    """A DistillModule as `gramkd.train.build_module` makes it (own copy of the student's initial
    weights) and its distillation terms (Callbacks)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    module = instantiate(setup.cfg.module, net=copy.deepcopy(setup.student), teacher=setup.teacher, teacher_cache=teacher_cache)
    module.run_config = {"data": OmegaConf.to_container(setup.cfg.data, resolve=True)}
    terms = [instantiate(term) for term in setup.terms_cfg]
    return module, terms


def lean_trainer(epochs: int, callbacks: list, placement: Placement = CPU, **kwargs):
    """The trainer preset (`trainer=default`: cpu, 32-true, log_every_n_steps 10; `placement`: another
    device or precision) as lean as a user would run it for speed: no progress bar, summary,
    checkpointing, logger or validation."""
    import lightning as L

    for name in ("lightning.pytorch", "lightning.fabric"):  # its notes on stdout (set after Lightning's import)
        logging.getLogger(name).setLevel(logging.ERROR)
    return L.Trainer(
        max_epochs=epochs,
        accelerator=placement.accelerator,
        devices=1,
        precision=placement.precision,
        log_every_n_steps=10,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **kwargs,
    )


def optimizer_and_scheduler(cfg, params) -> tuple[torch.optim.Optimizer, object, str]:
    """The config's optimiser and schedule (`module.optimizer`, `module.scheduler` factories) over
    `params`, and when the schedule steps (`epoch` or `step`), as the module builds them."""
    from hydra.utils import instantiate

    optimizer = instantiate(cfg.module.optimizer)(params=params)
    scheduler = instantiate(cfg.module.scheduler)(optimizer=optimizer) if cfg.module.get("scheduler") else None
    return optimizer, scheduler, cfg.module.get("scheduler_interval", "epoch")


@dataclass
class Math:
    """The kd_gram loss of the config, as plain numbers: alpha·CE + w_kd·KD(T) + w_gram·Gram."""

    alpha: float
    kd_weight: float
    temperature: float
    gram_weight: float
    gram_center: bool
    gram_normalize: bool
    gram_exclude_diagonal: bool | None
    gram_reduction: str

    @classmethod
    def of(cls, cfg) -> "Math":
        d = cfg.distill
        assert d.gram.distance == "mse" and d.gram.source == "modality_features"
        assert d.kd.warmup_epochs == 0 and d.gram.warmup_epochs == 0
        return cls(
            alpha=cfg.module.alpha,
            kd_weight=d.kd.weight,
            temperature=d.kd.temperature,
            gram_weight=d.gram.weight,
            gram_center=d.gram.center,
            gram_normalize=d.gram.normalize == "l2",
            gram_exclude_diagonal=d.gram.exclude_diagonal,
            gram_reduction=d.gram.reduction,
        )

    def loss(self, student_out, teacher_out, target, gram: bool = True, teacher_gram: torch.Tensor | None = None) -> torch.Tensor:
        """The loss; `teacher_gram`: the teacher's Gram matrices, precomputed (as cached per row)."""
        from gramkd.distill.functional import gram_loss, gram_loss_to_target, kd_loss

        total = self.alpha * F.cross_entropy(student_out.logits, target)
        total = total + self.kd_weight * kd_loss(student_out.logits, teacher_out.logits, self.temperature)
        options = (self.gram_normalize, self.gram_exclude_diagonal, "mse", self.gram_center, self.gram_reduction)
        rows, mask = student_out.modality_features, student_out.modality_mask
        if gram and teacher_gram is None:
            total = total + self.gram_weight * gram_loss(rows, teacher_out.modality_features, mask, *options)
        elif gram:
            total = total + self.gram_weight * gram_loss_to_target(rows, teacher_gram, mask, *options)
        return total

    def teacher_gram(self, teacher_out) -> torch.Tensor:
        from gramkd.distill.functional import gram_matrix

        with torch.no_grad():
            return gram_matrix(teacher_out.modality_features, teacher_out.modality_mask, self.gram_normalize, self.gram_center)


def gram_term_fn(cfg, batch: dict, student_out, teacher_out, cached: bool):
    """The Gram term as the DistillModule runs it, forward + backward: `GramDistillation.loss` on a
    fresh DistillStep (so the step's mask is prepared anew, as every step), the student's rows a leaf
    that takes the gradient. `cached`: the teacher's Gram matrices come from the per-row cache (as
    with `teacher_cache=memory`), else they are computed from the teacher's rows each call."""
    from hydra.utils import instantiate

    from gramkd.distill.row_cache import RowCache
    from gramkd.distill.step import DistillStep
    from gramkd.nets import MultimodalOutput

    term = instantiate(cfg.distill.gram)
    batch = {**batch, "index": torch.arange(len(batch["target"]))}  # the cache holds exactly these rows
    if cached:
        term._teacher_grams = RowCache(len(batch["target"]))  # what the term makes when the module caches the teacher
    leaf = student_out.modality_features.detach().clone().requires_grad_(True)
    student = MultimodalOutput(student_out.logits.detach(), leaf, student_out.modality_mask)

    def run():
        leaf.grad = None
        term.loss(DistillStep(batch, student, teacher_out)).backward()

    run()  # fills the cache
    return run


class HandLoop:
    """The minimal PyTorch training loop with the DistillModule's math: the config's optimiser and
    schedule (stepped per epoch or per step, as configured), the same loader (same batches in the
    same order), the teacher under no_grad; on `placement`'s device, under its autocast."""

    def __init__(self, setup: Setup, gram: bool = True, placement: Placement = CPU):
        self.setup, self.gram, self.placement = setup, gram, placement
        self.math = Math.of(setup.cfg)

    def fit(self, epochs: int, record: list | None = None, epoch_starts: list | None = None) -> torch.nn.Module:
        place, math = self.placement, self.math
        student, teacher = copy.deepcopy(self.setup.student).to(place.device), self.setup.teacher.to(place.device)
        optimizer, scheduler, interval = optimizer_and_scheduler(self.setup.cfg, [p for p in student.parameters() if p.requires_grad])
        loader = self.setup.datamodule.train_dataloader()
        student.train()
        for epoch in range(epochs):
            if epoch_starts is not None:
                epoch_starts.append(place.stamp())
            loader.sampler.set_epoch(epoch)
            for batch in loader:
                batch = place.move(batch)
                inputs, present = batch["inputs"], batch["present"]
                with place.autocast():
                    with torch.no_grad():
                        teacher_out = teacher(inputs, present)
                    student_out = student(inputs, present)
                    loss = math.loss(student_out, teacher_out, batch["target"], self.gram)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None and interval == "step":
                    scheduler.step()
                if record is not None:
                    record.append(loss.detach())
            if scheduler is not None and interval == "epoch":
                scheduler.step()
        if epoch_starts is not None:
            epoch_starts.append(place.stamp())
        return student


# -- clocks ----------------------------------------------------------------------------------------
def stamp() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds). On a shared machine the CPU clock leaves out the
    time other processes held the core; with one thread per benchmark it is the work done."""
    return time.perf_counter(), time.process_time()


CLOCKS = {"wall": 0, "cpu": 1}


def durations(stamps: list[tuple[float, float]], clock: str) -> list[float]:
    """Seconds between consecutive stamps on one clock (`wall` or `cpu`)."""
    i = CLOCKS[clock]
    return [b[i] - a[i] for a, b in zip(stamps, stamps[1:])]


def epoch_timer_callback(starts: list, losses: list | None = None, clock=stamp):
    """A Callback stamping (`clock`) when each training epoch starts and when training ends (and the losses)."""
    from lightning.pytorch.callbacks import Callback

    class EpochTimer(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            starts.append(clock())

        def on_train_end(self, trainer, pl_module):
            starts.append(clock())

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
