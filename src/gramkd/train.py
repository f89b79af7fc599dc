"""The task behind each `gramkd` command: compose objects from the config, run them, report."""

import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from gramkd.checkpoints import load_checkpoint, net_state_dict
from gramkd.modules import ClassifierModule
from gramkd.nets import MultimodalNet
from gramkd.reporting import print_metrics, write_metrics


def fit(cfg: DictConfig) -> float | None:
    """Train `cfg.net` on `cfg.data` with `cfg.module`; returns `cfg.optimized_metric` for sweepers."""
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    net = build_net(cfg.net, datamodule)
    module = instantiate(cfg.module, net=net)
    module.run_config = {"data": OmegaConf.to_container(cfg.data, resolve=True)}
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test_after_fit:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    metrics.update(params=net.num_parameters, wall_time_s=time.perf_counter() - started)
    if trainer.is_global_zero:
        write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics)
        print_metrics(f"{cfg.name} (seed {cfg.seed})", metrics)
    return metrics.get(cfg.optimized_metric)


def test(cfg: DictConfig) -> dict:
    """Evaluate the net of a gramkd checkpoint on the test split of the data it was trained on."""
    checkpoint = load_checkpoint(cfg.ckpt_path)
    saved = checkpoint["gramkd"]
    data_cfg = OmegaConf.merge(saved["data"], cfg.data)
    datamodule = instantiate(data_cfg)
    net = MultimodalNet(**saved["net"])
    net.load_state_dict(net_state_dict(checkpoint, cfg.ckpt_path))
    module = ClassifierModule(net, optimizer=None)
    trainer = build_trainer(cfg)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics)
        print_metrics(f"test of {cfg.ckpt_path}", metrics)
    return metrics


def build_net(net_cfg: DictConfig, datamodule) -> MultimodalNet:
    """A net wired to the data: its modalities and classes come from the data module."""
    return instantiate(net_cfg, modalities=datamodule.modalities, num_classes=datamodule.num_classes, _convert_="all")


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a progress bar callback then
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer
