"""The parts of a ViltNet: a ViltModel and a classifier head, from sizes or from a saved model."""

from collections.abc import Mapping

import torch
from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.contract import ModalitySpec
from gramkd.nets.hf.loading import load_config, load_pretrained, require_transformers
from gramkd.nets.hf.modalities import check_fits_pretrained

# Fine-tuned ViLT classes whose `classifier` reads the pooled output(s) as ViltNet's head does.
HEAD_CLASSES = ("ViltForImagesAndTextClassification", "ViltForQuestionAnswering")


def vilt_from_sizes(
    specs: Mapping[str, ModalitySpec], text: str, images: list[str], num_classes: int, sizes: dict, joint: bool = False
) -> tuple[nn.Module, nn.Module]:
    """A randomly initialised ViltModel and head (HF's ViltForImagesAndTextClassification's; on
    the one pooled output when the images share one sequence). `sizes` holds the config's sizes,
    `num_channels` included (the image's, or a stem's output)."""
    transformers = require_transformers()
    _, size, _ = specs[images[0]].shape
    length = specs[text].shape[1]
    max_positions = sizes.pop("max_position_embeddings") or length
    if max_positions < length:
        raise GramkdError(
            f"ViltNet: max_position_embeddings={max_positions} is below the {length} positions of tokens modality '{text}': raise it or leave it null"
        )
    if size % sizes["patch_size"]:
        raise GramkdError(
            f"ViltNet: patch_size={sizes['patch_size']} does not divide the {size}x{size} images of '{images[0]}': choose a divisor"
        )
    dropout = sizes.pop("dropout")
    config = transformers.ViltConfig(
        vocab_size=specs[text].vocab_size,
        max_position_embeddings=max_positions,
        image_size=size,
        num_images=len(images),
        modality_type_vocab_size=len(images) + 1,
        num_labels=num_classes,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **sizes,
    )
    model = transformers.ViltForImagesAndTextClassification(config)
    if joint:
        return model.vilt, new_head(config.hidden_size, num_classes, config.initializer_range)
    return model.vilt, model.classifier


def vilt_from_pretrained(
    pretrained: str, specs: Mapping[str, ModalitySpec], text: str, images: list[str], num_classes: int, joint: bool = False
) -> tuple[nn.Module, nn.Module]:
    """The saved ViltModel; its fine-tuned head when it fits the data's classes and images, else a new one."""
    transformers = require_transformers()
    config = load_config(transformers.ViltConfig, pretrained, "vilt", "ViltNet")
    check_fits_pretrained(
        "ViltNet",
        pretrained,
        specs,
        text,
        images[0],
        vocab_size=config.vocab_size,
        max_positions=config.max_position_embeddings,
        image_size=config.image_size,
        num_channels=config.num_channels,
    )
    head_class = None if joint else _reusable_head_class(config, len(images), num_classes)
    if head_class:
        model = load_pretrained(getattr(transformers, head_class), pretrained)
        vilt, classifier = model.vilt, model.classifier
    else:
        vilt = load_pretrained(transformers.ViltModel, pretrained)
        classifier = new_head(config.hidden_size * (1 if joint else len(images)), num_classes, config.initializer_range)
    widen_modality_types(vilt, len(images) + 1)
    return vilt, classifier


def _reusable_head_class(config, num_images: int, num_classes: int) -> str | None:
    architecture = (config.architectures or [None])[0]
    if architecture not in HEAD_CLASSES or config.num_labels != num_classes:
        return None
    images_it_reads = config.num_images if architecture == "ViltForImagesAndTextClassification" else 1
    return architecture if images_it_reads == num_images else None


def new_head(width: int, num_classes: int, std: float) -> nn.Sequential:
    """HF's ViLT classifier (Linear, LayerNorm, GELU, Linear), initialised as HF initialises it."""
    head = nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.GELU(), nn.Linear(width, num_classes))
    for layer in (head[0], head[3]):
        nn.init.normal_(layer.weight, std=std)
        nn.init.zeros_(layer.bias)
    return head


def widen_modality_types(vilt: nn.Module, needed: int) -> None:
    """Give a ViltModel `needed` modality types; new image types start as copies of image type 1,
    as ViLT's NLVR2 fine-tuning starts its second image type."""
    old = vilt.embeddings.token_type_embeddings
    if old.num_embeddings >= needed:
        return
    wider = nn.Embedding(needed, old.embedding_dim).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        wider.weight[: old.num_embeddings] = old.weight
        wider.weight[old.num_embeddings :] = old.weight[1]
    vilt.embeddings.token_type_embeddings = wider
    vilt.config.modality_type_vocab_size = needed
