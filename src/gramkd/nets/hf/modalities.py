"""What a vision-language adapter reads from the data's modalities: one text, some images."""

from collections.abc import Mapping

import torch

from gramkd.errors import GramkdError
from gramkd.nets.contract import ModalitySpec, names_of_kind


def text_and_images(specs: Mapping[str, ModalitySpec], net: str, max_images: int | None) -> tuple[str, list[str]]:
    """The name of the one tokens modality and of the image modalities, in the data's order."""
    texts, images = names_of_kind(specs, "tokens"), names_of_kind(specs, "image")
    others = [name for name in specs if name not in texts + images]
    most = max_images if max_images is not None else len(images) or 1
    if len(texts) != 1 or not 1 <= len(images) <= most or others:
        kinds = ", ".join(f"{name} ({spec.kind})" for name, spec in specs.items())
        wanted = f"1 to {most}" if max_images is not None else "at least 1"
        raise GramkdError(f"{net} needs exactly one tokens modality and {wanted} image modalities; the data has: {kinds}")
    _check_text_spec(texts[0], specs[texts[0]])
    for name in images:
        _check_image_spec(name, specs[name], specs[images[0]])
    return texts[0], images


def _check_text_spec(name: str, spec: ModalitySpec) -> None:
    if len(spec.shape) != 2 or spec.shape[0] != 2:
        raise GramkdError(f"tokens modality '{name}' has row shape {list(spec.shape)}; a tokens row must be [2, T] (ids, attention mask)")
    if spec.vocab_size is None or spec.vocab_size < 1:
        raise GramkdError(f"tokens modality '{name}' has no vocab_size: declare it in the modality's spec (ids run below it)")


def _check_image_spec(name: str, spec: ModalitySpec, first: ModalitySpec) -> None:
    if len(spec.shape) != 3 or spec.shape[1] != spec.shape[2]:
        raise GramkdError(f"image modality '{name}' has row shape {list(spec.shape)}; these adapters need square images [C, H, H]")
    if spec.shape != first.shape:
        raise GramkdError(
            f"image modality '{name}' is {list(spec.shape)} but the first image modality is {list(first.shape)}; the images share one encoder, so resize them alike"
        )


def check_fits_pretrained(
    net: str,
    pretrained: str,
    specs: Mapping[str, ModalitySpec],
    text: str,
    image: str,
    *,
    vocab_size: int,
    max_positions: int,
    image_size,
    num_channels: int,
) -> None:
    """A pretrained model declares what it reads; data it cannot read stops here, in one line."""
    channels, size, _ = specs[image].shape
    model_size = image_size if isinstance(image_size, int) else next(iter(image_size))
    if (channels, size) != (num_channels, model_size):
        raise GramkdError(
            f"{net}: pretrained={pretrained} reads {num_channels}x{model_size}x{model_size} images but image modality '{image}' is "
            f"{channels}x{size}x{size}: resize the data's images to the model's size and channels"
        )
    if specs[text].vocab_size > vocab_size:
        raise GramkdError(
            f"{net}: tokens modality '{text}' has vocab_size {specs[text].vocab_size} but pretrained={pretrained} knows {vocab_size} tokens: "
            "tokenize the text with the model's own tokenizer"
        )
    if specs[text].shape[1] > max_positions:
        raise GramkdError(
            f"{net}: tokens modality '{text}' has {specs[text].shape[1]} positions but pretrained={pretrained} takes at most {max_positions}: truncate the text"
        )


def text_inputs(tokens: torch.Tensor, present: torch.Tensor, name: str, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and a 1/0 attention mask ([B, T] each) from a [B, 2, T] tokens batch.

    An absent text keeps only position 0 (the start token) unmasked; masked positions read id 0,
    so nothing an absent or padded position held reaches the model.
    """
    if tokens.dim() != 3 or tokens.shape[1] != 2 or tokens.is_floating_point():
        raise GramkdError(f"tokens modality '{name}' got a {tokens.dtype} batch of shape {list(tokens.shape)}; it needs integer [B, 2, T]")
    mask = tokens[:, 1] > 0
    start_only = torch.zeros_like(mask)
    start_only[:, 0] = True
    mask = torch.where(present.unsqueeze(1), mask, start_only)
    ids = tokens[:, 0].where(mask, 0)
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise GramkdError(f"tokens modality '{name}' holds ids outside [0, {vocab_size}): fix the tokenizer or the modality's vocab_size")
    return ids, mask.long()


def image_inputs(images: torch.Tensor, present: torch.Tensor, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The [B, C, H, W] pixels with absent images zeroed."""
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise GramkdError(
            f"image modality '{name}' got a batch of shape {list(images.shape)}; the net was built for [B, {', '.join(map(str, shape))}]"
        )
    return images.where(present[:, None, None, None], 0)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, S, D] averaged over the positions where `mask` ([B, S]) is nonzero; zero where none are."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def check_layers(layers, num_layers: int, net: str) -> list[int] | None:
    """Validated indices into hidden_states (0 = the embeddings, num_layers = the last layer)."""
    if layers is None:
        return None
    layers = [int(layer) for layer in ([layers] if isinstance(layers, int) else layers)]
    bad = [layer for layer in layers if not -(num_layers + 1) <= layer <= num_layers]
    if bad or not layers:
        raise GramkdError(
            f"{net}: layers={layers} must be a non-empty list of indices in [{-(num_layers + 1)}, {num_layers}] (0 = embeddings, {num_layers} = last layer)"
        )
    return layers
