"""MultimodalNet on raw inputs: images and token ids beside vectors, padding, absence, prefusion features."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gramkd.config import config_dir
from gramkd.errors import GramkdError
from gramkd.nets import FUSIONS, MultimodalNet

B, C, WIDTH, T, VOCAB = 6, 3, 8, 7, 11
MODALITIES = {
    "text": {"kind": "tokens", "shape": [2, T], "vocab_size": VOCAB},
    "img": {"kind": "image", "shape": [2, 8, 8]},
    "vec": (5,),
}
LENGTHS = [T, 1, 4, 2, 7, 5]  # tokens per sample; the rest of each row is padding


def make_net(fusion="transformer", **kwargs) -> MultimodalNet:
    torch.manual_seed(0)
    kwargs = {"width": WIDTH, "heads": 2, "encoder_hidden": 12, "patch_size": 4, "dropout": 0.0, **kwargs}
    return MultimodalNet(MODALITIES, num_classes=C, fusion=fusion, **kwargs)


def padded_tokens(lengths, generator, size=T, vocab=VOCAB) -> torch.Tensor:
    """[B, 2, size]: random ids, mask 1 on each row's first `length` positions; padding holds id 0."""
    attends = torch.arange(size) < torch.tensor(lengths).unsqueeze(1)
    ids = torch.randint(1, vocab, (len(lengths), size), generator=generator).where(attends, 0)
    return torch.stack([ids, attends.long()], dim=1)


def random_inputs(seed=1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "text": padded_tokens(LENGTHS, generator),
        "img": torch.randn(B, 2, 8, 8, generator=generator),
        "vec": torch.randn(B, 5, generator=generator),
    }


def presence(absent: str, rows=(1, 3, 4)) -> dict[str, torch.Tensor]:
    present = {m: torch.ones(B, dtype=torch.bool) for m in MODALITIES}
    present[absent][list(rows)] = False
    return present


@pytest.mark.parametrize("fusion", FUSIONS)
def test_images_and_tokens_mix_with_vectors(fusion):
    net = make_net(fusion).eval()
    inputs = random_inputs()
    out = net(inputs)
    assert out.logits.shape == (B, C)
    assert out.modality_features.shape == out.prefusion_features.shape == (B, 3, WIDTH)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.prefusion_features).all()
    assert [net.config["modalities"][m]["kind"] for m in net.modality_names] == ["tokens", "image", "vector"]
    rebuilt = MultimodalNet(**net.config)
    rebuilt.load_state_dict(net.state_dict())
    torch.testing.assert_close(rebuilt.eval()(inputs).logits, out.logits)
    for name in ("text", "img"):  # each raw modality reaches the logits
        changed = dict(inputs, **{name: random_inputs(seed=2)[name]})
        assert not torch.allclose(net(changed).logits, out.logits), name


@pytest.mark.parametrize("no_grad", [False, True], ids=["grad", "no_grad"])  # no_grad takes the fast transformer path
def test_token_encoder_ignores_what_padding_holds(no_grad):
    encoder = make_net().encoders["text"].eval()
    tokens = random_inputs()["text"]
    padding = tokens[:, 1] == 0
    scrambled = tokens.clone()
    scrambled[:, 0][padding] = torch.randint(-50, 50, (int(padding.sum()),))  # any id, even out of the vocabulary
    with torch.set_grad_enabled(not no_grad):
        encoded, again = encoder(tokens), encoder(scrambled)
        alone = torch.cat([encoder(tokens[i : i + 1, :, :length]) for i, length in enumerate(LENGTHS)])
    assert torch.equal(encoded, again)
    torch.testing.assert_close(encoded, alone, rtol=1e-5, atol=1e-6)  # as if each text had no padding at all
    real = tokens.clone()
    real[:, 0, 0] = (real[:, 0, 0] + 1) % VOCAB  # the counterpart: a real token does matter
    assert not torch.isclose(encoder(real), encoded).all(-1).any()


@pytest.mark.parametrize("no_grad", [False, True], ids=["grad", "no_grad"])  # the fast path gives NaN to a row with every key masked
def test_a_text_without_tokens_encodes_to_zero(no_grad):
    encoder = make_net().encoders["text"].eval()
    tokens = random_inputs()["text"]
    tokens[2, 1] = 0
    with torch.set_grad_enabled(not no_grad):
        encoded = encoder(tokens)
    assert torch.equal(encoded[2], torch.zeros(WIDTH))
    assert encoded[[0, 1, 3, 4, 5]].abs().sum(-1).gt(0).all()


@pytest.mark.parametrize("no_grad", [False, True], ids=["grad", "no_grad"])
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("absent", ["text", "img"])
def test_an_absent_image_or_text_does_not_affect_the_other_modalities(absent, fusion, no_grad):
    net = make_net(fusion).eval()
    present = presence(absent)
    inputs = random_inputs()
    garbage = random_inputs(seed=7)[absent]
    if absent == "img":
        garbage = 1e3 * garbage
    else:
        garbage[3, 1] = 0  # an absent text may hold no tokens at all
    rows = ~present[absent]
    scrambled = dict(inputs, **{absent: inputs[absent].clone()})
    scrambled[absent][rows] = garbage[rows]
    with torch.set_grad_enabled(not no_grad):
        out, again = net(inputs, present), net(scrambled, present)
    for name in ("logits", "modality_features", "prefusion_features", "fused"):
        torch.testing.assert_close(getattr(again, name), getattr(out, name), rtol=1e-5, atol=1e-5, msg=name)
    m = net.modality_names.index(absent)
    assert torch.equal(out.prefusion_features[rows, m], torch.zeros(int(rows.sum()), WIDTH))
    assert torch.equal(out.modality_features[rows, m], torch.zeros(int(rows.sum()), WIDTH))
    others = [i for i in range(3) if i != m]
    assert out.prefusion_features[:, others].abs().sum(-1).gt(0).all()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_prefusion_features_are_the_masked_encoder_outputs(fusion):
    net = make_net(fusion).eval()
    inputs, present = random_inputs(), presence("img", rows=(0, 5))
    present["text"][2] = False
    out = net(inputs, present)
    for i, m in enumerate(net.modality_names):
        expected = net.encoders[m](inputs[m]) * present[m].unsqueeze(-1)
        torch.testing.assert_close(out.prefusion_features[:, i], expected, msg=m)
    if fusion == "concat":
        torch.testing.assert_close(out.modality_features, out.prefusion_features)
    else:  # after fusion a modality's row depends on the others; before it, it does not
        assert not torch.allclose(out.modality_features, out.prefusion_features)


def test_gradients_reach_every_parameter_and_every_pixel():
    net = make_net(encoder_depth=2).train()
    inputs = random_inputs()
    inputs["img"].requires_grad_(True)
    out = net(inputs)
    loss = torch.nn.functional.cross_entropy(out.logits, torch.arange(B) % C) + out.prefusion_features.square().mean()
    loss.backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    assert inputs["img"].grad.ne(0).all()  # the patches tile the whole image


@pytest.mark.parametrize(
    ("modalities", "kwargs", "message"),
    [
        ({"x": {"kind": "audio", "shape": [4]}}, {}, r"unknown modality kind 'audio'; choose one of: vector, sequence, image, tokens"),
        ({"text": {"kind": "tokens", "shape": [2, 5]}}, {}, r"tokens modality 'text' has no vocab_size"),
        ({"text": {"kind": "tokens", "shape": [5], "vocab_size": 9}}, {}, r"tokens modality 'text' has row shape \[5\]"),
        ({"img": {"kind": "image", "shape": [1, 10, 8]}}, {"patch_size": 4}, r"image modality 'img' is 10x8: set the net's patch_size"),
        ({"img": {"kind": "image", "shape": [10, 8]}}, {}, r"image modality 'img' has row shape \[10, 8\]"),
    ],
)
def test_bad_specs_are_refused_in_one_line(modalities, kwargs, message):
    with pytest.raises(GramkdError, match=message) as error:
        MultimodalNet(modalities, num_classes=2, width=8, heads=2, **kwargs)
    assert "\n" not in str(error.value)


def test_bad_token_batches_are_refused_in_one_line():
    net = make_net()
    inputs = random_inputs()
    out_of_vocabulary = inputs["text"].clone()
    out_of_vocabulary[0, 0, 0] = VOCAB
    too_long = torch.cat([inputs["text"], inputs["text"]], dim=2)
    for text, message in [(out_of_vocabulary, r"'text' holds ids outside \[0, 11\)"), (too_long, r"'text' got .* with T <= 7")]:
        with pytest.raises(GramkdError, match=message) as error:
            net(dict(inputs, text=text))
        assert "\n" not in str(error.value)
    with pytest.raises(GramkdError, match=r"image modality 'img' got rows of shape \[2, 4, 4\]"):
        net(dict(inputs, img=torch.zeros(B, 2, 4, 4)))


VILT_PARAMETERS = 227_266  # ViltForImagesAndTextClassification, hidden 64 x 4 layers, intermediate 256, on the data below


def test_image_text_presets_are_a_large_and_a_ten_times_smaller_net():
    digits = {
        "text": {"kind": "tokens", "shape": [2, 12], "vocab_size": 40},
        "left": {"kind": "image", "shape": [1, 16, 16]},
        "right": {"kind": "image", "shape": [1, 16, 16]},
    }
    sizes = {}
    for preset in ("teacher", "student"):
        cfg = OmegaConf.load(Path(config_dir()) / "net" / f"mm_image_text_{preset}.yaml")
        net = instantiate(cfg, modalities=digits, num_classes=2, _convert_="all")
        generator = torch.Generator().manual_seed(0)
        inputs = {
            "text": padded_tokens([12, 3], generator, size=12, vocab=40),
            "left": torch.randn(2, 1, 16, 16),
            "right": torch.randn(2, 1, 16, 16),
        }
        assert net.eval()(inputs).logits.shape == (2, 2)
        sizes[preset] = net.num_parameters
    assert sizes == {"teacher": 276_226, "student": 22_658}
    assert sizes["teacher"] >= 10 * sizes["student"] and VILT_PARAMETERS >= 10 * sizes["student"]
