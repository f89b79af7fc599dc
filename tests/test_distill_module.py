"""DistillModule and the distillation terms: frozen teacher, loss bookkeeping, checkpoints, forwards."""

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from gramkd.checkpoints import load_checkpoint, net_state_dict
from gramkd.data import SyntheticDataModule
from gramkd.distill import DistillationTerm, GramDistillation, KDDistillation, ModalitySpecificDistillation
from gramkd.distill.functional import gram_loss
from gramkd.errors import GramkdError
from gramkd.modules import DistillModule
from gramkd.nets import MultimodalNet
from gramkd.nets.build import instantiate_net
from gramkd.nets.subsets import single_modality_outputs
from gramkd.run_cache import RESULT_FILE
from gramkd.teacher import load_weights as load_teacher
from gramkd.train import train_and_test

from conftest import FAST

DISTILL_FAST = [
    *FAST,
    "experiment=synthetic/kd_gram",
    "compare_with=[]",
    "trainer.max_epochs=2",
    "teacher.overrides=['trainer.max_epochs=3']",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """One small kd_gram fit (teacher trained and cached first), shared by the tests below."""
    from conftest import compose_config

    out = tmp_path_factory.mktemp("distill")
    cfg = compose_config("fit", [*DISTILL_FAST, "distill.gram.warmup_epochs=2", "module.alpha=0.5"], out / "run")
    metrics, module, trainer = train_and_test(cfg)
    return cfg, metrics, module, trainer, out


def test_teacher_is_frozen_unchanged_and_in_eval(distilled):
    cfg, _, module, _, out = distilled
    [cached] = Path(cfg.paths.cache_dir).glob(f"teacher*/{RESULT_FILE}")
    fresh = load_teacher(cached, MultimodalNet(**module.teacher.config))
    for (name, before), after in zip(fresh.state_dict().items(), module.teacher.state_dict().values()):
        assert torch.equal(before, after), name
    assert not module.teacher.training and all(not m.training for m in module.teacher.modules())
    assert not any(p.requires_grad for p in module.teacher.parameters())
    module.train()  # putting the module in train mode must leave the teacher in eval mode
    assert module.net.training and not module.teacher.training


def test_the_fit_summary_shows_the_student_and_the_teacher(distilled):
    _, _, module, _, _ = distilled
    nets = module.summary_nets()
    assert list(nets) == ["student", "teacher"]  # kd and gram learn nothing of their own
    assert nets["student"] is module.net and nets["teacher"] is module.teacher


def test_logged_total_is_the_weighted_sum_of_logged_terms(distilled):
    cfg, _, _, trainer, _ = distilled
    with open(trainer.loggers[0].log_dir + "/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    weights = {(int(r["epoch"]), t): float(r[f"weight/{t}"]) for r in rows for t in ("kd", "gram") if r.get(f"weight/{t}")}
    steps = [r for r in rows if r.get("train/loss_step")]
    assert steps, "no per-step training rows logged"
    for row in steps:
        epoch = int(row["epoch"])
        terms = sum(weights[epoch, t] * float(row[f"train/{t}_step"]) for t in ("kd", "gram"))
        expected = 0.5 * float(row["train/ce_step"]) + terms
        assert float(row["train/loss_step"]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # gram warms up linearly over 2 epochs: half its weight in epoch 0, all of it in epoch 1
    gram_weight = cfg.distill.gram.weight
    assert {e: w for (e, t), w in weights.items() if t == "gram"} == {0: gram_weight / 2, 1: gram_weight}


def test_validation_logs_agreement_and_gram_mse(distilled):
    _, metrics, module, _, _ = distilled
    for split in ("val", "test"):
        assert 0 <= metrics[f"{split}/agreement"] <= 1
        assert metrics[f"{split}/gram_mse"] >= 0
    assert metrics["params"] == module.net.num_parameters


def test_gram_heatmap_png_is_written_to_the_run_dir(distilled):
    cfg, *_ = distilled
    pngs = sorted((Path(cfg.paths.output_dir) / "gram").glob("gram_epoch*.png"))
    assert [p.name for p in pngs] == ["gram_epoch000.png", "gram_epoch001.png"]
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_holds_the_student_not_the_teacher_and_serves_inference(distilled):
    cfg, _, module, trainer, _ = distilled
    path = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(path)
    assert not any(k.startswith("teacher") for k in checkpoint["state_dict"])
    net = instantiate_net(checkpoint["gramkd"]["net"])  # rebuilt from the node the checkpoint records
    assert type(net) is MultimodalNet
    net.load_state_dict(net_state_dict(checkpoint, path))
    assert net.num_parameters == module.net.num_parameters < module.teacher.num_parameters
    batch = next(iter(trainer.datamodule.test_dataloader()))
    net.eval()
    with torch.no_grad():
        assert net(batch["inputs"], batch["present"]).logits.shape == (len(batch["target"]), 8)


# ---- forwards: shared once per step, single-modality variants batched -----------------------


def small_nets(modalities=None, num_classes=5):
    modalities = modalities or {"a": (6,), "b": (4,), "c": (5,)}
    torch.manual_seed(0)
    teacher = MultimodalNet(modalities, num_classes, width=16, depth=1, heads=2, dropout=0.0).eval()
    student = MultimodalNet(modalities, num_classes, width=8, depth=1, heads=2, dropout=0.0)
    return student, teacher


def random_batch(batch_size=7, drop=True):
    g = torch.Generator().manual_seed(1)
    inputs = {
        "a": torch.randn(batch_size, 6, generator=g),
        "b": torch.randn(batch_size, 4, generator=g),
        "c": torch.randn(batch_size, 5, generator=g),
    }
    present = {m: torch.ones(batch_size, dtype=torch.bool) for m in inputs}
    if drop:
        present["b"][[1, 4]] = False
        present["c"][4] = False
    return {"inputs": inputs, "present": present, "target": torch.arange(batch_size) % 5, "index": torch.arange(batch_size)}


def count_forwards(net: nn.Module) -> list:
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_msd_and_logit_gram_share_one_batched_single_modality_forward_per_network():
    student, teacher = small_nets()
    module = DistillModule(student, teacher, optimizer=torch.optim.SGD)
    for term in (ModalitySpecificDistillation(), GramDistillation(source="modality_logits"), KDDistillation()):
        module.register_term(term)
    student_calls, teacher_calls = count_forwards(student.head), count_forwards(teacher.head)
    encoder_calls = count_forwards(student.encoders["a"])
    module.training_step(random_batch(), 0)
    assert len(student_calls) == 2 and len(teacher_calls) == 2  # full + one batched single-modality pass each
    assert len(encoder_calls) == 2  # the single-modality pass encodes the batch once, not once per modality


class WithoutEncodeOnce(nn.Module):
    """The same net seen through its forward only: subset outputs repeat the whole batch per variant."""

    def __init__(self, net: MultimodalNet):
        super().__init__()
        self.net, self.modality_names = net, net.modality_names

    def forward(self, inputs, present=None):
        return self.net(inputs, present)


@pytest.mark.parametrize("layers", [False, True])
def test_encoding_once_gives_the_outputs_of_repeating_the_batch(layers):
    torch.manual_seed(0)
    net = MultimodalNet({"a": (6,), "b": (4,), "c": (5,)}, 5, width=8, depth=2, heads=2, layers=layers).eval()
    batch = random_batch()
    with torch.no_grad():
        once = single_modality_outputs(net, batch["inputs"], batch["present"])
        repeated = single_modality_outputs(WithoutEncodeOnce(net), batch["inputs"], batch["present"])
    for field in ("logits", "modality_features", "modality_mask", "fused"):
        torch.testing.assert_close(getattr(once, field), getattr(repeated, field), atol=1e-6, rtol=1e-6)


def test_batched_single_modality_outputs_equal_one_forward_per_modality():
    student, _ = small_nets()
    student.eval()
    batch = random_batch()
    with torch.no_grad():
        batched = single_modality_outputs(student, batch["inputs"], batch["present"])
        for m, name in enumerate(student.modality_names):
            alone = {k: p & (k == name) for k, p in batch["present"].items()}
            looped = student(batch["inputs"], alone)
            torch.testing.assert_close(batched.logits[:, m], looped.logits, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batched.modality_features[:, m], looped.modality_features[:, m], atol=1e-5, rtol=1e-5)
    assert batched.logits.shape == (7, 3, 5)
    assert torch.equal(batched.modality_mask, torch.stack([batch["present"][m] for m in student.modality_names], 1))


def test_msd_loss_is_the_mean_of_per_modality_kd_over_present_rows():
    from gramkd.distill.functional import kd_loss

    student, teacher = small_nets()
    module = DistillModule(student, teacher, optimizer=torch.optim.SGD)
    batch = random_batch()
    step = module.distill_step(batch)
    s, t = step.single_modality("student").logits, step.single_modality("teacher").logits
    per = [kd_loss(s[:, m], t[:, m], 2.0, mask=batch["present"][n]) for m, n in enumerate(student.modality_names)]
    assert float(ModalitySpecificDistillation(temperature=2.0).loss(step)) == pytest.approx(float(sum(per) / 3), rel=1e-6)
    weighted_term = ModalitySpecificDistillation(temperature=2.0, modality_weights={"a": 3.0, "c": 1.0})
    weighted_term.setup(None, module, "fit")  # the weights' names are the networks' modalities
    weighted = float(weighted_term.loss(step))
    assert weighted == pytest.approx(float((3 * per[0] + per[2]) / 4), rel=1e-6)


def test_gram_term_matches_the_functional_loss_on_the_step_outputs():
    student, teacher = small_nets()
    module = DistillModule(student, teacher, optimizer=torch.optim.SGD)
    step = module.distill_step(random_batch())
    expected = gram_loss(step.student.modality_features, step.teacher.modality_features, step.mask, exclude_diagonal=True)
    assert float(GramDistillation(exclude_diagonal=True).loss(step)) == pytest.approx(float(expected))
    with pytest.raises(
        ValueError, match="gram.source='pixels' is not one of modality_features, prefusion_features, layer_features, modality_logits"
    ):
        GramDistillation(source="pixels")


def test_student_and_teacher_modalities_must_agree():
    student, _ = small_nets()
    _, teacher = small_nets({"a": (6,), "b": (4,)})
    with pytest.raises(GramkdError, match="differ from the teacher"):
        DistillModule(student, teacher, optimizer=torch.optim.SGD)


def test_warmup_ramps_the_weight_linearly():
    term = KDDistillation(weight=3.0, warmup_epochs=3)
    assert [term.weight_at(e) for e in range(5)] == pytest.approx([1.0, 2.0, 3.0, 3.0, 3.0])
    assert KDDistillation(weight=3.0).weight_at(0) == 3.0


# ---- a term that learns: its parameters join the module --------------------------------------


class ProjectedFusedMSE(DistillationTerm):
    """A toy term with a learned projection from student to teacher fused width."""

    default_name = "projected"

    def __init__(self, student_dim: int, teacher_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.projection = nn.Linear(student_dim, teacher_dim)

    def learnable(self):
        return self.projection

    def loss(self, step):
        return (self.projection(step.student.fused) - step.teacher.fused).square().mean()


def test_a_terms_parameters_are_optimised_and_checkpointed(tmp_path):
    data = SyntheticDataModule(num_samples=200, batch_size=32)
    student = MultimodalNet(data.modalities, data.num_classes, width=8, depth=1, heads=2)
    teacher = MultimodalNet(data.modalities, data.num_classes, width=16, depth=1, heads=2)
    module = DistillModule(student, teacher, optimizer=torch.optim.Adam)
    term = ProjectedFusedMSE(8, 16)
    before = term.projection.weight.detach().clone()
    trainer = L.Trainer(
        max_epochs=1, callbacks=[term], default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, datamodule=data)
    assert module.term_modules["projected"] is term.projection
    assert not torch.equal(before, term.projection.weight)
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    keys = torch.load(tmp_path / "x.ckpt", weights_only=True)["state_dict"]
    assert "term_modules.projected.weight" in keys and not any(k.startswith("teacher") for k in keys)


def test_a_term_on_a_plain_classifier_is_refused(tmp_path):
    from gramkd.modules import ClassifierModule

    data = SyntheticDataModule(num_samples=200, batch_size=32)
    module = ClassifierModule(MultimodalNet(data.modalities, data.num_classes, width=8), optimizer=torch.optim.Adam)
    trainer = L.Trainer(max_epochs=1, callbacks=[KDDistillation()], default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    with pytest.raises(TypeError, match="distillation term 'kd' needs a DistillModule, got ClassifierModule"):
        trainer.fit(module, datamodule=data)


class NaNAfterSteps(DistillationTerm):
    default_name = "unstable"

    def __init__(self, steps: int, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.calls = steps, 0

    def loss(self, step):
        self.calls += 1
        zero = step.student.logits.sum() * 0
        return zero + (float("nan") if self.calls > self.steps else 0.0)


def test_a_nan_term_stops_training_naming_it_with_the_step_values_checked_in_one_tensor(tmp_path):
    data = SyntheticDataModule(num_samples=200, batch_size=32)
    student = MultimodalNet(data.modalities, data.num_classes, width=8, depth=1, heads=2)
    teacher = MultimodalNet(data.modalities, data.num_classes, width=16, depth=1, heads=2)
    module = DistillModule(student, teacher, optimizer=torch.optim.Adam, teacher_cache="off")
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[KDDistillation(), NaNAfterSteps(3)],
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(GramkdError, match=r"training stopped at epoch \d, step 3: loss term 'unstable' became nan; the last good state"):
        trainer.fit(module, datamodule=data)
    assert torch.load(tmp_path / "checkpoints" / "last_good.ckpt", weights_only=True)["global_step"] == 3
