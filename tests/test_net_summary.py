"""The summary a fit prints as it starts: the student and the frozen teacher, no FLOPs column."""

import io

from lightning.pytorch.callbacks import ModelSummary
from rich.console import Console

from gramkd.identity import run_key
from gramkd.net_summary import NetSummary, net_table
from gramkd.nets import MultimodalNet
from gramkd.train import build_trainer

from conftest import FAST, table_cells

SPECS = {"a": (5,), "b": (3,)}


def rendered(table) -> tuple[list[list[str]], str]:
    """The table's rows as cells, and the whole text, as a console shows them."""
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    text = out.getvalue()
    return [table_cells(line) for line in text.splitlines() if line.startswith("│")], text


def test_table_names_each_net_with_its_counts_and_mode():
    student = MultimodalNet(SPECS, num_classes=4, width=8, fusion="concat")
    teacher = MultimodalNet(SPECS, num_classes=4, width=32, fusion="concat").requires_grad_(False).eval()
    student.encoders["a"].requires_grad_(False)  # partly frozen: trainable < parameters
    rows, text = rendered(net_table({"student": student, "teacher": teacher}))
    total = {name: sum(p.numel() for p in net.parameters()) for name, net in (("student", student), ("teacher", teacher))}
    trainable = sum(p.numel() for p in student.parameters() if p.requires_grad)
    assert 0 < trainable < total["student"]
    assert rows == [
        ["student", "MultimodalNet", f"{total['student']:,}", f"{trainable:,}", "train", f"{total['student'] * 4 / 1e6:.3f}"],
        ["teacher", "MultimodalNet", f"{total['teacher']:,}", "0", "eval, frozen", f"{total['teacher'] * 4 / 1e6:.3f}"],
    ]
    assert f"the student has 1/{total['teacher'] / total['student']:.1f} of the teacher's parameters" in text
    assert "FLOPs" not in text


def test_the_trainer_runs_gramkds_summary_only_when_asked(compose_fit, tmp_path):
    shown = build_trainer(compose_fit([*FAST, "trainer.enable_model_summary=true"], tmp_path / "shown"))
    assert [type(c) for c in shown.callbacks if isinstance(c, ModelSummary)] == [NetSummary]  # Lightning adds none of its own
    hidden = build_trainer(compose_fit(FAST, tmp_path / "hidden"))  # FAST sets trainer.enable_model_summary=false
    assert not [c for c in hidden.callbacks if isinstance(c, ModelSummary)]


def test_the_summary_does_not_change_a_runs_identity(compose_fit):
    key = run_key(compose_fit(FAST))
    assert run_key(compose_fit([*FAST, "trainer.enable_model_summary=true"])) == key
    assert run_key(compose_fit([*FAST, "callbacks.model_summary=null"])) == key
    assert run_key(compose_fit([*FAST, "trainer.max_epochs=2"])) != key  # a setting that counts still changes it
