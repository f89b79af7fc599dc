"""The Hugging Face adapters: ViltNet (single stream) and ClipDualEncoderNet (dual encoder).

Rows are checked against an independent computation from the HF model's own `hidden_states`,
saved models against their own outputs, and absent modalities for having no influence.
"""

import importlib
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub name must fail fast, never wait on the network

import pytest
import torch

from gramkd.errors import GramkdError
from gramkd.nets.hf import ClipDualEncoderNet, ViltNet
from gramkd.nets.subsets import single_modality_outputs

transformers = pytest.importorskip("transformers")

T, VOCAB, SIZE, HIDDEN, START = 6, 30, 8, 16, 1
TINY_VILT = {"hidden_size": HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "patch_size": 4}
TINY_CLIP = {
    "hidden_size": HIDDEN,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "patch_size": 4,
    "projection_dim": 12,
}


def modalities(num_images: int, size: int = SIZE, vocab: int = VOCAB) -> dict:
    images = {name: {"kind": "image", "shape": [1, size, size]} for name in ["left", "right"][:num_images]}
    return {"text": {"kind": "tokens", "shape": [2, T], "vocab_size": vocab}, **images}


def make_batch(num_images: int, batch: int = 6, seed: int = 0) -> dict:
    """Texts of different lengths (padded), a start token at position 0, random images."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (batch, T), generator=g)
    ids[:, 0] = START
    lengths = torch.tensor([T, 3, 4, T, 2, 5, T, 3])[:batch]
    attention = (torch.arange(T) < lengths[:, None]).long()
    inputs = {"text": torch.stack([ids, attention], 1)}
    for name in ["left", "right"][:num_images]:
        inputs[name] = torch.randn(batch, 1, SIZE, SIZE, generator=g)
    return inputs


def with_absences(inputs: dict) -> dict:
    """Text absent in sample 1, left in sample 2, right in sample 3, all but text in sample 4."""
    present = {name: torch.ones(len(inputs["text"]), dtype=torch.bool) for name in inputs}
    present["text"][1] = False
    present["left"][[2, 4]] = False
    if "right" in present:
        present["right"][[3, 4]] = False
    return present


def vilt_net(num_images: int, **kw) -> ViltNet:
    torch.manual_seed(0)
    return ViltNet(modalities(num_images), num_classes=3, **{**TINY_VILT, **kw}).eval()


def clip_net(num_images: int = 2, **kw) -> ClipDualEncoderNet:
    torch.manual_seed(0)
    return ClipDualEncoderNet(modalities(num_images), num_classes=3, **{**TINY_CLIP, **kw}).eval()


def reference_vilt(net: ViltNet, inputs: dict, present: dict, layers: list[int]):
    """Rows and logits one sample at a time through the HF ViltModel: text with each image in turn
    (pixels when present, through the net's conv stem if it has one; else the documented text-only form, a masked [1, 1, H] image_embeds),
    each row the plain mean of `hidden_states[layer]` over the modality's positions."""
    images = net.image_names
    rows, logits = [], []
    for b in range(len(inputs["text"])):
        ids, attention = inputs["text"][b, :1], inputs["text"][b, 1:].clone()
        if not present["text"][b]:
            attention[:] = 0
            attention[0, 0] = 1
        text_rows, image_rows, pooled = [], [], []
        for i, name in enumerate(images):
            if present[name][b]:
                pixels = inputs[name][b : b + 1]
                image = {
                    "pixel_values": pixels if net.stem is None else net.stem(pixels),
                    "pixel_mask": torch.ones(1, SIZE, SIZE, dtype=torch.long),
                }
            else:
                image = {"image_embeds": torch.zeros(1, 1, HIDDEN), "pixel_mask": torch.zeros(1, 1, dtype=torch.long)}
            out = net.vilt(input_ids=ids, attention_mask=attention, image_token_type_idx=i + 1, output_hidden_states=True, **image)
            pooled.append(out.pooler_output[0])
            states = [out.hidden_states[layer][0] for layer in layers]
            text_rows.append(torch.stack([s[:T][attention[0].bool()].mean(0) for s in states]))
            image_rows.append(torch.stack([s[T:].mean(0) * present[name][b] for s in states]))
        text = torch.stack(text_rows).mean(0) * present["text"][b]
        by_name = {"text": text, **dict(zip(images, image_rows))}
        rows.append(torch.stack([by_name[m] for m in net.modality_names], 1))  # [L, M, D]
        logits.append(net.classifier(torch.cat(pooled)))
    return torch.stack(rows), torch.stack(logits)


# (a) rows equal an independent computation from the HF model's hidden_states


@pytest.mark.parametrize("num_images, conv_stem", [(1, 0), (2, 0), (2, 5)])
def test_vilt_rows_equal_the_mean_of_hf_hidden_states_over_each_modality(num_images, conv_stem):
    net = vilt_net(num_images, layers=[0, 1, -1], conv_stem=conv_stem)
    inputs = make_batch(num_images)
    present = with_absences(inputs)
    with torch.no_grad():
        out = net(inputs, present)
        rows, logits = reference_vilt(net, inputs, present, [-1, 0, 1])
    torch.testing.assert_close(out.modality_features, rows[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.prefusion_features, rows[:, 1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.layer_features, rows[:, [1, 2, 0]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)
    assert out.fused.shape == (6, num_images * HIDDEN)
    assert out.modality_mask.tolist() == torch.stack([present[m] for m in net.modality_names], 1).tolist()


def reference_joint_vilt(net: ViltNet, inputs: dict):
    """Rows and logits one sample at a time with both images in ONE sequence: HF's own
    `visual_embed` for each image's embeddings, image i's modality type i+1, all present."""
    embeddings, types = net.vilt.embeddings, net.vilt.embeddings.token_type_embeddings.weight
    rows, logits = [], []
    for b in range(len(inputs["text"])):
        ids, attention = inputs["text"][b, :1], inputs["text"][b, 1:]
        segments = []
        for i, name in enumerate(net.image_names):
            pixel_mask = torch.ones(1, SIZE, SIZE, dtype=torch.long)
            embeds, _, _ = embeddings.visual_embed(inputs[name][b : b + 1], pixel_mask, max_image_length=-1)
            segments.append(embeds + types[i + 1] - types[1])  # the encoder adds type 1 to every image position
        joint = torch.cat(segments, 1)
        out = net.vilt(
            input_ids=ids,
            attention_mask=attention,
            image_embeds=joint,
            pixel_mask=torch.ones(joint.shape[:2], dtype=torch.long),
            image_token_type_idx=1,
            output_hidden_states=True,
        )
        state, length = out.hidden_states[-1][0], segments[0].shape[1]
        by_name = {"text": state[:T][attention[0].bool()].mean(0)}
        by_name.update({name: state[T + i * length : T + (i + 1) * length].mean(0) for i, name in enumerate(net.image_names)})
        rows.append(torch.stack([by_name[m] for m in net.modality_names]))
        logits.append(net.classifier(out.pooler_output)[0])
    return torch.stack(rows), torch.stack(logits)


def test_joint_vilt_rows_equal_the_means_over_each_images_segment_of_one_sequence():
    net = vilt_net(2, image_pairing="joint")
    inputs = make_batch(2)
    with torch.no_grad():
        out = net(inputs, None)
        rows, logits = reference_joint_vilt(net, inputs)
    torch.testing.assert_close(out.modality_features, rows, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)
    assert out.fused.shape == (6, HIDDEN)  # one pooled output: the head sees both images at once
    with pytest.raises(GramkdError, match=r"^ViltNet: image_pairing='pairs' is not one of separate, joint$"):
        vilt_net(2, image_pairing="pairs")


def test_vilt_layer_picks_the_hidden_state_of_the_rows():
    net = vilt_net(2, layer=1)
    inputs = make_batch(2)
    with torch.no_grad():
        rows, _ = reference_vilt(net, inputs, with_absences(inputs), [1])
        torch.testing.assert_close(net(inputs, with_absences(inputs)).modality_features, rows[:, 0], atol=1e-5, rtol=1e-5)


def test_clip_rows_are_the_towers_projected_pooled_outputs():
    net = clip_net(2, layers=[0, -1])
    inputs = make_batch(2)
    present = with_absences(inputs)
    with torch.no_grad():
        out = net(inputs, present)
        for b in range(len(inputs["text"])):
            length = int(inputs["text"][b, 1].sum())
            text = net.text_tower(input_ids=inputs["text"][b : b + 1, 0, :length], output_hidden_states=True)
            last = net.text_tower.text_model.final_layer_norm(text.hidden_states[-1][0, -1])
            expected_text = net.text_tower.text_projection(last) * present["text"][b]
            torch.testing.assert_close(out.modality_features[b, 0], expected_text, atol=1e-5, rtol=1e-5)
            for m, name in enumerate(["left", "right"], start=1):
                image = net.vision_tower(pixel_values=inputs[name][b : b + 1], output_hidden_states=True)
                torch.testing.assert_close(out.modality_features[b, m], image.image_embeds[0] * present[name][b], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(
                    out.layer_features[b, :, m],
                    torch.stack([image.hidden_states[i][0, 0] for i in (0, -1)]) * present[name][b],
                    atol=1e-5,
                    rtol=1e-5,
                )
    assert torch.equal(out.prefusion_features, out.modality_features)


# (b) a model saved with save_pretrained gives its own outputs through `pretrained=`


def tiny_vilt_config(**kw):
    sizes = {
        "vocab_size": VOCAB,
        "max_position_embeddings": T,
        "image_size": SIZE,
        "num_channels": 1,
        "hidden_size": HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "patch_size": 4,
    }
    return transformers.ViltConfig(**{**sizes, **kw})


@pytest.fixture(scope="module")
def saved_nlvr2(tmp_path_factory):
    torch.manual_seed(1)
    model = transformers.ViltForImagesAndTextClassification(tiny_vilt_config(num_images=2, modality_type_vocab_size=3, num_labels=3)).eval()
    folder = tmp_path_factory.mktemp("vilt_nlvr2")
    model.save_pretrained(folder)
    return model, folder


def test_pretrained_vilt_gives_the_saved_classifier_logits(saved_nlvr2):
    model, folder = saved_nlvr2
    net = ViltNet(modalities(2), num_classes=3, pretrained=str(folder)).eval()
    inputs = make_batch(2)
    with torch.no_grad():
        expected = model(
            input_ids=inputs["text"][:, 0],
            attention_mask=inputs["text"][:, 1],
            pixel_values=torch.stack([inputs["left"], inputs["right"]], 1),
        ).logits
        torch.testing.assert_close(net(inputs).logits, expected, atol=1e-6, rtol=1e-5)


def test_pretrained_vilt_with_other_classes_keeps_the_encoder_and_gets_a_new_head(saved_nlvr2):
    model, folder = saved_nlvr2
    net = ViltNet(modalities(2), num_classes=5, pretrained=str(folder))
    assert net.classifier[-1].out_features == 5
    saved = model.vilt.state_dict()
    assert all(torch.equal(value, saved[key]) for key, value in net.vilt.state_dict().items())


def test_pretrained_vilt_with_joint_images_keeps_the_encoder_and_gets_a_head_on_one_pooled_output(saved_nlvr2):
    model, folder = saved_nlvr2
    net = ViltNet(modalities(2), num_classes=2, pretrained=str(folder), image_pairing="joint")
    assert net.classifier[0].in_features == model.config.hidden_size  # the saved head reads two pooled outputs
    saved = model.vilt.state_dict()
    assert all(torch.equal(value, saved[key]) for key, value in net.vilt.state_dict().items())


def test_pretrained_base_vilt_gets_a_second_image_type_copied_from_the_first(tmp_path):
    torch.manual_seed(2)
    transformers.ViltModel(tiny_vilt_config()).save_pretrained(tmp_path)
    net = ViltNet(modalities(2), num_classes=3, pretrained=str(tmp_path))
    types = net.vilt.embeddings.token_type_embeddings.weight
    assert types.shape[0] == 3 and torch.equal(types[2], types[1])
    assert torch.isfinite(net(make_batch(2)).logits).all()


def test_pretrained_clip_gives_the_saved_models_features(tmp_path):
    torch.manual_seed(3)
    eos = VOCAB - 1
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": VOCAB,
            "hidden_size": HIDDEN,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": T,
            "projection_dim": 12,
            "bos_token_id": START,
            "eos_token_id": eos,
            "pad_token_id": 0,
        },
        vision_config={
            "hidden_size": 24,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": SIZE,
            "patch_size": 4,
            "num_channels": 1,
            "projection_dim": 12,
        },
        projection_dim=12,
    )
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(tmp_path)
    net = ClipDualEncoderNet(modalities(2), num_classes=3, pretrained=str(tmp_path)).eval()
    inputs = make_batch(2)
    lengths = inputs["text"][:, 1].sum(1)
    inputs["text"][torch.arange(6), 0, lengths - 1] = eos  # CLIP's tokenizer ends every text with the end token
    with torch.no_grad():
        out = net(inputs)
        text = features(model.get_text_features(input_ids=inputs["text"][:, 0], attention_mask=inputs["text"][:, 1]))
        left, right = (features(model.get_image_features(pixel_values=inputs[m])) for m in ("left", "right"))
    torch.testing.assert_close(out.modality_features, torch.stack([text, left, right], 1), atol=1e-6, rtol=1e-5)


def features(output) -> torch.Tensor:
    """get_*_features returns a tensor (transformers 4) or an output with the projection in pooler_output (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


# (c) what an absent modality held has no influence


def scrambled_absent(inputs: dict, present: dict) -> dict:
    """The same batch with other contents wherever a modality is absent (and in text padding)."""
    changed = {name: x.clone() for name, x in inputs.items()}
    noise = torch.Generator().manual_seed(9)
    text = changed["text"]
    hidden = ~present["text"][:, None] | (text[:, 1] == 0)
    hidden[:, 0] = False  # position 0 always holds the start token
    text[:, 0] = torch.where(hidden, torch.randint(2, VOCAB, text[:, 0].shape, generator=noise), text[:, 0])
    text[:, 1] = torch.where(hidden & ~present["text"][:, None], torch.randint(0, 2, text[:, 1].shape, generator=noise), text[:, 1])
    for name in inputs:
        if name != "text":
            changed[name][~present[name]] = torch.randn(changed[name][~present[name]].shape, generator=noise) * 5
    return changed


@pytest.mark.parametrize(
    "make_net",
    [
        lambda: vilt_net(1, layers=[0, 2]),
        lambda: vilt_net(2, layers=[1]),
        lambda: vilt_net(2, layers=[1], image_pairing="joint"),
        lambda: clip_net(2, layers=[1]),
    ],
)
def test_absent_modalities_have_no_influence(make_net):
    net = make_net()
    inputs = make_batch(len(net.image_names))
    present = with_absences(inputs)
    with torch.no_grad():
        out, other = net(inputs, present), net(scrambled_absent(inputs, present), present)
        everything = net(inputs)
    for field, value in out.tensors().items():
        assert torch.equal(value, getattr(other, field)), field
    absent = ~out.modality_mask
    assert absent.any() and (out.modality_features[absent] == 0).all()
    assert not torch.allclose(out.logits[1:5], everything.logits[1:5])  # absence did change what the net saw
    torch.testing.assert_close(out.logits[[0, 5]], everything.logits[[0, 5]], atol=1e-6, rtol=1e-5)


# (d) evaluation is deterministic even when training samples patches


def test_vilt_eval_reads_every_patch_while_training_samples_some():
    net = vilt_net(2, max_image_length=2)
    reference = vilt_net(2, max_image_length=-1)
    reference.load_state_dict(net.state_dict())
    inputs = make_batch(2)
    with torch.no_grad():
        first, second, full = net(inputs), net(inputs), reference(inputs)
        assert torch.equal(first.logits, second.logits) and torch.equal(first.modality_features, second.modality_features)
        torch.testing.assert_close(first.modality_features, full.modality_features)
        net.train()
        torch.manual_seed(0)
        sampled = net(inputs).logits
        torch.manual_seed(1)
        assert not torch.allclose(sampled, net(inputs).logits)  # training does sample patches (dropout is 0)


# (e) single_modality_outputs: row m is the net run with only modality m present


@pytest.mark.parametrize(
    "make_net", [lambda: vilt_net(2), lambda: vilt_net(1), lambda: vilt_net(2, image_pairing="joint"), lambda: clip_net(2)]
)
def test_single_modality_outputs_match_one_modality_at_a_time(make_net):
    net = make_net()
    inputs = make_batch(len(net.image_names))
    present = with_absences(inputs)
    with torch.no_grad():
        alone = single_modality_outputs(net, inputs, present)
        for m, name in enumerate(net.modality_names):
            only = {other: present[other] & (other == name) for other in net.modality_names}
            out = net(inputs, only)
            torch.testing.assert_close(alone.modality_features[:, m], out.modality_features[:, m], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(alone.logits[:, m], out.logits, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(alone.fused[:, m], out.fused, atol=1e-5, rtol=1e-5)


# (f) one-line errors


@pytest.mark.parametrize(
    "data, message",
    [
        ({"text": {"kind": "tokens", "shape": [2, T], "vocab_size": VOCAB}}, "the data has: text (tokens)"),
        (
            {**modalities(2), "third": {"kind": "image", "shape": [1, SIZE, SIZE]}},
            "the data has: text (tokens), left (image), right (image), third (image)",
        ),
        ({**modalities(1), "extra": {"kind": "vector", "shape": [4]}}, "extra (vector)"),
    ],
)
def test_vilt_refuses_data_it_cannot_read(data, message):
    with pytest.raises(GramkdError) as err:
        ViltNet(data, num_classes=2, **TINY_VILT)
    assert str(err.value).startswith("ViltNet needs exactly one tokens modality and 1 to 2 image modalities; the data has: ")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "data, message",
    [
        (modalities(2, size=16), r"pretrained=.* reads 1x8x8 images but image modality 'left' is 1x16x16: resize"),
        (modalities(2, vocab=VOCAB + 5), rf"tokens modality 'text' has vocab_size {VOCAB + 5} but pretrained=.* knows {VOCAB} tokens"),
    ],
)
def test_pretrained_vilt_refuses_data_that_does_not_match(saved_nlvr2, data, message):
    with pytest.raises(GramkdError, match=rf"^ViltNet: {message}") as err:
        ViltNet(data, num_classes=3, pretrained=str(saved_nlvr2[1]))
    assert "\n" not in str(err.value)


def test_pretrained_vilt_refuses_a_conv_stem(saved_nlvr2):
    with pytest.raises(
        GramkdError, match=r"^ViltNet: conv_stem builds a new image front end; it needs a ViLT built from sizes, not pretrained=$"
    ):
        ViltNet(modalities(2), num_classes=3, pretrained=str(saved_nlvr2), conv_stem=8)


def test_pretrained_vilt_refuses_other_channels(saved_nlvr2):
    data = modalities(2)
    data["left"]["shape"] = data["right"]["shape"] = [3, SIZE, SIZE]
    with pytest.raises(GramkdError, match=r"reads 1x8x8 images but image modality 'left' is 3x8x8"):
        ViltNet(data, num_classes=3, pretrained=str(saved_nlvr2[1]))


def test_a_hub_name_without_the_hub_fails_in_one_line(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    for build in (ViltNet, ClipDualEncoderNet):
        with pytest.raises(
            GramkdError, match=r"^pretrained=nobody/no-such-model is not a local directory and the Hugging Face hub could not provide it"
        ) as err:
            build(modalities(2), num_classes=3, pretrained="nobody/no-such-model")
        assert "\n" not in str(err.value)


def test_a_saved_model_of_another_type_is_refused(saved_nlvr2):
    with pytest.raises(GramkdError, match=r"^ClipDualEncoderNet: pretrained=.* holds a 'vilt' model; it needs a saved 'clip' model$"):
        ClipDualEncoderNet(modalities(2), num_classes=3, pretrained=str(saved_nlvr2[1]))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"layers": [3]}, r"^ViltNet: layers=\[3\] must be a non-empty list of indices in \[-3, 2\]"),
        ({"max_position_embeddings": T - 1}, r"^ViltNet: max_position_embeddings=5 is below the 6 positions of tokens modality 'text'"),
        ({"patch_size": 3}, r"^ViltNet: patch_size=3 does not divide the 8x8 images of 'left'"),
    ],
)
def test_vilt_refuses_bad_sizes(kw, message):
    with pytest.raises(GramkdError, match=message):
        ViltNet(modalities(2), num_classes=3, **{**TINY_VILT, **kw})


def test_wrong_image_batch_is_named():
    inputs = make_batch(2)
    inputs["right"] = inputs["right"][..., :4]
    with pytest.raises(
        GramkdError, match=r"^image modality 'right' got a batch of shape \[6, 1, 8, 4\]; the net was built for \[B, 1, 8, 8\]$"
    ):
        vilt_net(2)(inputs)


def test_the_package_imports_without_transformers_and_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now fails
    for name in [n for n in sys.modules if n.startswith("gramkd.nets.hf")]:
        monkeypatch.delitem(sys.modules, name)
    hf = importlib.import_module("gramkd.nets.hf")
    for build in (hf.ViltNet, hf.ClipDualEncoderNet):
        with pytest.raises(GramkdError, match=r"need transformers: pip install 'gramkd\[hf\]'$"):
            build(modalities(2), num_classes=3)


# (g) training reaches every parameter


@pytest.mark.parametrize(
    "make_net",
    [
        lambda: vilt_net(2, dropout=0.1, max_image_length=3),
        lambda: vilt_net(2, dropout=0.1, image_pairing="joint"),
        lambda: vilt_net(2, conv_stem=3),
        lambda: clip_net(2, dropout=0.1),
    ],
)
def test_backward_reaches_every_parameter(make_net):
    net = make_net().train()
    inputs = make_batch(len(net.image_names))
    out = net(inputs, with_absences(inputs))
    (torch.nn.functional.cross_entropy(out.logits, torch.arange(6) % 3) + out.modality_features.pow(2).mean()).backward()
    unreached = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unreached == []


def test_vilt_initializer_range_sets_the_spread_of_the_initial_weights():
    def spread(net):
        return torch.cat([m.weight.flatten() for m in net.vilt.encoder.modules() if isinstance(m, torch.nn.Linear)]).std().item()

    torch.manual_seed(0)
    default, wide = spread(vilt_net(2)), spread(vilt_net(2, initializer_range=0.1))
    assert default == pytest.approx(0.02, rel=0.1) and wide == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("make_net", [lambda: vilt_net(2, conv_stem=3, layers=[1]), lambda: clip_net(2)])
def test_a_net_rebuilt_from_its_config_has_the_same_weights_and_outputs(make_net):
    net = make_net()
    torch.manual_seed(1)
    rebuilt = type(net)(**net.config).eval()
    rebuilt.load_state_dict(net.state_dict())  # strict: the same parameters, shapes included
    inputs = make_batch(2)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(inputs).logits, net(inputs).logits, rtol=0, atol=0)
