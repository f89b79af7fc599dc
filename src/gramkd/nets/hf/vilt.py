import torch
from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.contract import batch_presence, constructor_config, count_parameters, modality_specs
from gramkd.nets.hf.modalities import (
    check_layers,
    image_inputs,
    masked_mean,
    text_and_images,
    text_inputs,
)
from gramkd.nets.hf.vilt_build import vilt_from_pretrained, vilt_from_sizes
from gramkd.nets.output import MultimodalOutput

PAIRINGS = ("separate", "joint")


class ViltNet(nn.Module):
    """ViLT, a single-stream vision-language transformer: text tokens then image patches in one encoder.

    The data has one `tokens` modality and one image modality (Hateful Memes, SNLI-VE style) or two
    (NLVR2 style, as HF's ViltForImagesAndTextClassification: the encoder sees the text with each
    image in turn, image i with modality type i+1, and the head classifies the pooled outputs
    concatenated; here the passes run as one batched encoder call).

    A modality's row is the mean of the hidden states over its segment of the sequence: the text's
    unmasked tokens (with two images, the mean of the two passes' text rows), or one image's
    positions (ViLT's image token and its patches). `layer` picks the hidden state (an index into
    HF's `hidden_states`: 0 = the embeddings, -1 = the last layer); `layers` adds `layer_features`;
    `prefusion_features` are the rows of the embeddings. Absent modalities are masked out of
    attention (an absent text keeps only its start token), so they cannot influence the rest.

    Built from sizes (random weights; image size and channels from the data, vocabulary from the
    tokens spec, `max_position_embeddings` null = the data's T) or `pretrained=DIR_OR_HUB_NAME`
    (a saved ViltModel or fine-tuned ViLT; its head is kept when its label count equals
    `num_classes`). `max_image_length` > 0 keeps that many random patches per image in training,
    as ViLT does; evaluation always reads every patch, so it is deterministic.

    `image_pairing=joint` puts both images in one sequence (text, left, right; image i with type
    i+1) so that attention compares them directly, with a head on the one pooled output; the
    default `separate` is HF's NLVR2 model.

    `conv_stem=C` > 0 puts two 3x3 convolutions (C channels, image size kept) before ViLT's patch
    projection, which then cuts the C-channel feature map into patches (a hybrid ViT: a convolutional
    front end learns small strokes better than a linear patch projection on few images).
    """

    def __init__(
        self,
        modalities: dict,
        num_classes: int,
        hidden_size: int = 64,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int | None = None,
        patch_size: int = 4,
        dropout: float = 0.0,
        initializer_range: float = 0.02,
        max_position_embeddings: int | None = None,
        max_image_length: int = -1,
        layer: int = -1,
        layers: list[int] | None = None,
        image_pairing: str = "separate",
        conv_stem: int = 0,
        pretrained: str | None = None,
    ):
        arguments = dict(locals())
        super().__init__()
        specs = modality_specs(modalities)
        if image_pairing not in PAIRINGS:
            raise GramkdError(f"ViltNet: image_pairing={image_pairing!r} is not one of {', '.join(PAIRINGS)}")
        self.joint = image_pairing == "joint"
        self.config = constructor_config(arguments, specs)
        self.modality_names, self.num_classes = list(specs), int(num_classes)
        self.text_name, self.image_names = text_and_images(specs, "ViltNet", max_images=2)
        self.image_shape = specs[self.image_names[0]].shape
        if conv_stem and pretrained:
            raise GramkdError("ViltNet: conv_stem builds a new image front end; it needs a ViLT built from sizes, not pretrained=")
        self.stem = conv_stem_layers(self.image_shape[0], conv_stem) if conv_stem else None
        if pretrained:
            self.vilt, self.classifier = vilt_from_pretrained(
                str(pretrained), specs, self.text_name, self.image_names, self.num_classes, self.joint
            )
        else:
            sizes = {
                "hidden_size": hidden_size,
                "num_hidden_layers": num_hidden_layers,
                "num_attention_heads": num_attention_heads,
                "intermediate_size": intermediate_size or 4 * hidden_size,
                "patch_size": patch_size,
                "dropout": dropout,
                "initializer_range": initializer_range,
                "max_position_embeddings": max_position_embeddings,
                "num_channels": conv_stem or self.image_shape[0],
            }
            self.vilt, self.classifier = vilt_from_sizes(specs, self.text_name, self.image_names, self.num_classes, sizes, self.joint)
        depth = self.vilt.config.num_hidden_layers
        self.layer = check_layers([layer], depth, "ViltNet")[0]
        self.layers = check_layers(layers, depth, "ViltNet")
        self.max_image_length = int(max_image_length)

    @property
    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> MultimodalOutput:
        mask = batch_presence("ViltNet", self.modality_names, inputs, present)
        tokens = inputs[self.text_name]
        presence = dict(zip(self.modality_names, mask.unbind(1)))
        ids, text_mask = text_inputs(tokens, presence[self.text_name], self.text_name, self.vilt.config.vocab_size)
        image_embeds, image_mask = self._image_embeddings(inputs, presence)
        passes = len(self.image_names)
        if self.joint:  # [n·B, 1+P, ·] -> [B, n·(1+P), ·]: every image in one sequence
            image_embeds, image_mask = (x.unflatten(0, (passes, -1)).transpose(0, 1).flatten(1, 2) for x in (image_embeds, image_mask))
            passes = 1
        out = self.vilt(
            input_ids=ids.repeat(passes, 1),
            attention_mask=text_mask.repeat(passes, 1),
            image_embeds=image_embeds,
            pixel_mask=image_mask,
            image_token_type_idx=1,
            output_hidden_states=True,
        )
        fused = out.pooler_output.unflatten(0, (passes, -1)).transpose(0, 1).flatten(1)

        def rows(hidden: torch.Tensor) -> torch.Tensor:
            return self._modality_rows(hidden, text_mask.repeat(passes, 1), image_mask, mask)

        layer_features = torch.stack([rows(out.hidden_states[i]) for i in self.layers], 1) if self.layers else None
        return MultimodalOutput(
            self.classifier(fused),
            rows(out.hidden_states[self.layer]),
            mask,
            fused,
            layer_features=layer_features,
            prefusion_features=rows(out.hidden_states[0]),
        )

    def _image_embeddings(self, inputs: dict[str, torch.Tensor], presence: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image's patch embeddings, stacked image after image ([n·B, 1+P, H]), and their masks.

        What ViltEmbeddings.visual_embed computes for full-size images, without its per-sample
        loops and with the patch choice ours. Image i's modality type (i+1) is set here as a
        shift from type 1, which the encoder call adds to every image.
        """
        embeddings = self.vilt.embeddings
        pixels = torch.cat([image_inputs(inputs[m], presence[m], m, self.image_shape) for m in self.image_names])
        if self.stem is not None:
            pixels = self.stem(pixels)
        patches = embeddings.patch_embeddings(pixels).flatten(2).transpose(1, 2) + embeddings.position_embeddings[:, 1:]
        if self.training and 0 < self.max_image_length < patches.shape[1]:
            keep = torch.rand(patches.shape[:2], device=patches.device).argsort(1)[:, : self.max_image_length]
            patches = patches.gather(1, keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        start = (embeddings.cls_token + embeddings.position_embeddings[:, :1]).expand(patches.shape[0], -1, -1)
        embeds = embeddings.dropout(torch.cat([start, patches], 1))
        types = embeddings.token_type_embeddings.weight
        shifts = torch.stack([types[i + 1] - types[1] for i in range(len(self.image_names))])
        embeds = embeds + shifts.repeat_interleave(embeds.shape[0] // len(self.image_names), 0).unsqueeze(1)
        present = torch.cat([presence[m] for m in self.image_names]).long()
        return embeds, present.unsqueeze(1).expand(-1, embeds.shape[1])

    def _modality_rows(self, hidden: torch.Tensor, text_mask: torch.Tensor, image_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[n·B, S, H] hidden states of the n passes (or [B, S, H] of the joint pass) -> [B, M, H]
        rows, zero where absent."""
        count, length = len(self.image_names), text_mask.shape[1]
        passes = 1 if self.joint else count
        text = masked_mean(hidden[:, :length], text_mask).unflatten(0, (passes, -1)).mean(0)
        if self.joint:  # the image segments of the one sequence, image after image
            images = masked_mean(
                hidden[:, length:].unflatten(1, (count, -1)).transpose(0, 1).flatten(0, 1),
                image_mask.unflatten(1, (count, -1)).transpose(0, 1).flatten(0, 1),
            )
        else:
            images = masked_mean(hidden[:, length:], image_mask)
        images = images.unflatten(0, (count, -1))
        by_name = {self.text_name: text, **dict(zip(self.image_names, images))}
        rows = torch.stack([by_name[m] for m in self.modality_names], 1)
        return rows.where(mask.unsqueeze(-1), 0)


def conv_stem_layers(in_channels: int, channels: int) -> nn.Sequential:
    """Two 3x3 convolutions with GELUs, [B, in, H, W] -> [B, channels, H, W]."""
    if channels < 0:
        raise GramkdError(f"ViltNet: conv_stem={channels}; give a channel count > 0, or 0 for none")
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1), nn.GELU())
