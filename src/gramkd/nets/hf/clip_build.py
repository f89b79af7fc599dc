"""CLIP's two towers (text and vision, each with its projection), from sizes or from a saved CLIPModel."""

from collections.abc import Mapping

from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.contract import ModalitySpec
from gramkd.nets.hf.loading import load_config, load_pretrained, require_transformers
from gramkd.nets.hf.modalities import check_fits_pretrained


def clip_towers_from_sizes(specs: Mapping[str, ModalitySpec], text: str, image: str, sizes: dict) -> tuple[nn.Module, nn.Module]:
    """Randomly initialised CLIPTextModelWithProjection and CLIPVisionModelWithProjection."""
    transformers = require_transformers()
    channels, size, _ = specs[image].shape
    if size % sizes["patch_size"]:
        raise GramkdError(
            f"ClipDualEncoderNet: patch_size={sizes['patch_size']} does not divide the {size}x{size} images of '{image}': choose a divisor"
        )
    shared = {
        key: sizes[key]
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "projection_dim", "attention_dropout")
    }
    text_config = transformers.CLIPTextConfig(
        vocab_size=specs[text].vocab_size,
        max_position_embeddings=specs[text].shape[1],
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        **shared,
    )
    vision_config = transformers.CLIPVisionConfig(image_size=size, patch_size=sizes["patch_size"], num_channels=channels, **shared)
    return transformers.CLIPTextModelWithProjection(text_config), transformers.CLIPVisionModelWithProjection(vision_config)


def clip_towers_from_pretrained(pretrained: str, specs: Mapping[str, ModalitySpec], text: str, image: str) -> tuple[nn.Module, nn.Module]:
    """Both towers of a saved CLIPModel (its logit scale is left behind)."""
    transformers = require_transformers()
    config = load_config(transformers.CLIPConfig, pretrained, "clip", "ClipDualEncoderNet")
    vision = config.vision_config
    check_fits_pretrained(
        "ClipDualEncoderNet",
        pretrained,
        specs,
        text,
        image,
        vocab_size=config.text_config.vocab_size,
        max_positions=config.text_config.max_position_embeddings,
        image_size=vision.image_size,
        num_channels=vision.num_channels,
    )
    text_tower = load_pretrained(transformers.CLIPTextModelWithProjection, pretrained)
    vision_tower = load_pretrained(transformers.CLIPVisionModelWithProjection, pretrained)
    return text_tower, vision_tower
