"""The task behind each `gramkd` command: compose objects from the config, run them, report."""

import random
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelSummary, ProgressBar
from omegaconf import DictConfig, OmegaConf, open_dict

from gramkd.allocator import keep_freed_memory
from gramkd.checkpoints import check_vocabulary, load_checkpoint, net_state_dict
from gramkd.config import compose
from gramkd.errors import GramkdError, first_line
from gramkd.identity import config_fingerprint, flat_config, run_key
from gramkd.modules import ClassifierModule
from gramkd.nets.build import instantiate_net, net_node
from gramkd.nets.contract import count_parameters
from gramkd.quiet import hide_lightning_tips
from gramkd.rank_agreement import SameConfigOnEveryRank
from gramkd.report import print_comparison, print_metrics, write_metrics
from gramkd.resume import mark_run, resume_run
from gramkd.run_cache import METRICS_FILE, RESULT_FILE, CachedRun, cached_run
from gramkd.teacher import provide_teacher, wants_teacher


def fit(cfg: DictConfig) -> float | None:
    """`gramkd fit`: train (or distil) and test; returns the best `cfg.optimized_metric` for sweepers."""
    prepare_process(cfg)
    ckpt_path = resume_run(cfg)
    references = reference_runs(cfg)
    mark_run(cfg)
    metrics, _, trainer = train_and_test(cfg, references, ckpt_path)
    for name, figures in references.items():  # the teacher's (and references') test figures, for reports
        metrics.update({f"{name}/{k}": v for k, v in figures.items() if k.startswith("test/")})
    if trainer.is_global_zero:
        write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics)
        print_metrics(f"{cfg.name} (seed {cfg.seed})", metrics)
        if references:
            print_comparison({**references, cfg.name: metrics})
    finish_wandb()
    return metrics.get(f"best/{cfg.optimized_metric}", metrics.get(cfg.optimized_metric))


def prepare_process(cfg: DictConfig) -> None:
    if cfg.get("keep_freed_memory"):
        keep_freed_memory()


def finish_wandb() -> None:
    """Close this job's W&B run, so the next job of a sweep starts its own."""
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()


def train_and_test(
    cfg: DictConfig, references: dict | None = None, ckpt_path: str | None = None
) -> tuple[dict, L.LightningModule, L.Trainer]:
    """Build everything from `cfg`, fit (resuming from `ckpt_path`), test the best checkpoint."""
    datamodule = instantiate(cfg.data)
    datamodule.setup()  # bad data fails here, in one line, before any trainer output
    module, terms = build_module(cfg, datamodule, references if references is not None else {})
    started = time.perf_counter()  # this run's own time, not that of a teacher it had to train first
    trainer = build_trainer(cfg, extra_callbacks=terms)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = final_metrics(trainer)
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics[f"best/{checkpoint.monitor}"] = float(checkpoint.best_model_score)
    if cfg.test_after_fit:
        best = checkpoint.best_model_path if checkpoint is not None else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False)
        metrics.update({k: v for k, v in final_metrics(trainer).items() if k.startswith("test/")})
    metrics.update(
        params=count_parameters(module.net), wall_time_s=time.perf_counter() - started, modalities=list(module.net.modality_names)
    )
    return metrics, module, trainer


def build_module(cfg: DictConfig, datamodule, references: dict) -> tuple[L.LightningModule, list]:
    """The LightningModule and its distillation terms. The student and the terms are built (and so
    their options checked) before a teacher is provided, which may mean training it."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # the student's init must not depend on cache hits
    node = net_node(cfg.net, datamodule)
    net = instantiate_net(node, "net")
    terms = [instantiate_term(name, term) for name, term in selected_terms(cfg).items()]
    if terms and not wants_teacher(cfg):
        raise GramkdError("distillation terms are configured but there is no teacher: use module=distill and set `teacher`")
    extra = {}
    if wants_teacher(cfg):
        with rng_states_kept():  # training the teacher (a cache miss) must not change the student's run
            extra["teacher"], references["teacher"] = provide_teacher(
                cfg, datamodule, lambda run_cfg, label: fit_cached(run_cfg, cfg.paths.cache_dir, label)
            )
    module = instantiate(cfg.module, net=net, **extra)
    module.run_config = {"net": node, "data": portable_data_config(cfg.data), "vocabulary": getattr(datamodule, "vocabulary_key", None)}
    return module, terms


@contextmanager
def rng_states_kept():
    """Restore Python's, numpy's and torch's random states on leaving the block."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def instantiate_term(name: str, term_cfg: DictConfig):
    """A distillation term; a bad option is one line naming it."""
    try:
        return instantiate(term_cfg)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise GramkdError(f"distill.{name}: {first_line(cause)}") from None


def fit_cached(cfg: DictConfig, cache_dir: str | Path, label: str) -> CachedRun:
    """Train `cfg` (a full `fit` config) unless an identical run is cached; return the run."""

    def train_into(folder: Path) -> None:
        run_cfg = cfg.copy()
        run_cfg.paths.output_dir = str(folder)
        run_cfg.test_after_fit = True
        metrics, module, _ = train_and_test(run_cfg)
        module.export_net(folder / RESULT_FILE)
        write_metrics(folder / METRICS_FILE, metrics)

    return cached_run(cache_dir, label, run_key(cfg), train_into)


def portable_data_config(data_cfg: DictConfig) -> dict:
    """The resolved data config for checkpoints, with folders made absolute so that `gramkd test`
    finds the data from any working directory."""
    plain = OmegaConf.to_container(data_cfg, resolve=True)
    for key in ("path", "root", "images", "cache_dir"):
        if isinstance(plain.get(key), str):
            plain[key] = str(Path(plain[key]).expanduser().resolve())
    return plain


def selected_terms(cfg: DictConfig) -> dict[str, DictConfig]:
    """The `distill` entries that are terms. An experiment may tune a term the user then leaves out
    (`experiment=synthetic/kd_gram distill=kd`): its settings alone are skipped, with a note."""
    terms = {}
    for name, term in (cfg.get("distill") or {}).items():
        if term is not None and "_target_" in term:
            terms[name] = term
        elif term is not None:
            print(f"gramkd: note: distill.{name} has settings but the {name} term is not selected; ignoring them", file=sys.stderr)
    return terms


def reference_runs(cfg: DictConfig) -> dict[str, dict]:
    """Metrics of the experiments in `compare_with`, on the same data and seed, cached."""
    runs = {}
    for experiment in cfg.get("compare_with") or []:
        reference = compose("fit", [f"experiment={experiment}", f"seed={cfg.seed}"])
        with open_dict(reference):
            reference.data, reference.paths = cfg.data, cfg.paths
            reference.trainer.accelerator = cfg.trainer.accelerator
        runs[experiment] = fit_cached(reference, cfg.paths.cache_dir, experiment).metrics
    return runs


def test(cfg: DictConfig) -> dict:
    """`gramkd test`: evaluate a checkpoint's net on the test split of the data it was trained on."""
    prepare_process(cfg)
    checkpoint = load_checkpoint(cfg.ckpt_path)
    saved = checkpoint["gramkd"]
    datamodule = instantiate(OmegaConf.merge(saved["data"], cfg.data))
    datamodule.setup()
    check_vocabulary(checkpoint, datamodule, f"checkpoint {cfg.ckpt_path}")
    net = instantiate_net(saved["net"], "net of the checkpoint")
    net.load_state_dict(net_state_dict(checkpoint, cfg.ckpt_path))
    module = ClassifierModule(net, optimizer=None)
    trainer = build_trainer(cfg)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = final_metrics(trainer)
    if trainer.is_global_zero:
        write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics)
        print_metrics(f"test of {cfg.ckpt_path}", metrics)
    return metrics


def final_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The epoch-level figures Lightning holds at the end (per-step duplicates dropped)."""
    return {k.removesuffix("_epoch"): float(v) for k, v in trainer.callback_metrics.items() if not k.endswith("_step")}


def build_trainer(cfg: DictConfig, extra_callbacks: list | None = None) -> L.Trainer:
    hide_lightning_tips()
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a progress bar callback then
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if not cfg.trainer.get("enable_model_summary", True):  # Lightning would still run a summary callback
        callbacks = [c for c in callbacks if not isinstance(c, ModelSummary)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks += [SameConfigOnEveryRank(config_fingerprint(cfg), flat_config(cfg)), *(extra_callbacks or [])]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer
