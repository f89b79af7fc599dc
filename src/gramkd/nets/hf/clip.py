import torch
from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.contract import batch_presence, constructor_config, count_parameters, modality_specs
from gramkd.nets.hf.clip_build import (
    clip_towers_from_pretrained,
    clip_towers_from_sizes,
)
from gramkd.nets.hf.modalities import (
    check_layers,
    image_inputs,
    text_and_images,
    text_inputs,
)
from gramkd.nets.output import MultimodalOutput


class ClipDualEncoderNet(nn.Module):
    """A dual encoder: CLIP's text tower and vision tower (shared by every image modality), each
    with its projection into CLIP's common space, then a fusion MLP over the concatenated rows.

    Rows are the towers' projected pooled outputs (D = projection_dim): the text's hidden state at
    its last unmasked token (where CLIP's tokenizer puts the end token, so a pretrained CLIP pools
    as HF does) and each image's pooled class token. Absent modalities give zero rows before the
    fusion MLP, so they cannot influence anything. The modalities meet only in the MLP, so
    `prefusion_features` are the rows themselves. `layers` (indices into the towers'
    `hidden_states`) adds `layer_features`: the hidden state at each tower's pooled position,
    which needs both towers of one width.

    Why CLIP rather than FLAVA: CLIP's towers are standalone HF classes with their projections
    (CLIPTextModelWithProjection, CLIPVisionModelWithProjection) that load straight from a saved
    CLIPModel, so the net holds nothing it does not use (unused parameters break DDP without
    find_unused_parameters) and costs little from sizes. FLAVA's projections live in FlavaModel
    beside a multimodal encoder that would fuse the modalities (not a dual encoder) or sit unused,
    and a FLAVA built from its config is several times larger.

    Built from sizes (random weights; the towers share `hidden_size`, `num_hidden_layers`, ...;
    image size and channels from the data, vocabulary and positions from the tokens spec) or
    `pretrained=DIR_OR_HUB_NAME` (a saved CLIPModel).
    """

    def __init__(
        self,
        modalities: dict,
        num_classes: int,
        hidden_size: int = 64,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        intermediate_size: int | None = None,
        patch_size: int = 4,
        projection_dim: int | None = None,
        head_hidden: int | None = None,
        dropout: float = 0.0,
        layers: list[int] | None = None,
        pretrained: str | None = None,
    ):
        arguments = dict(locals())
        super().__init__()
        specs = modality_specs(modalities)
        self.config = constructor_config(arguments, specs)
        self.modality_names, self.num_classes = list(specs), int(num_classes)
        self.text_name, self.image_names = text_and_images(specs, "ClipDualEncoderNet", max_images=None)
        self.image_shape = specs[self.image_names[0]].shape
        if pretrained:
            self.text_tower, self.vision_tower = clip_towers_from_pretrained(str(pretrained), specs, self.text_name, self.image_names[0])
        else:
            sizes = {
                "hidden_size": hidden_size,
                "intermediate_size": intermediate_size or 4 * hidden_size,
                "num_hidden_layers": num_hidden_layers,
                "num_attention_heads": num_attention_heads,
                "projection_dim": projection_dim or hidden_size,
                "attention_dropout": dropout,
                "patch_size": patch_size,
            }
            self.text_tower, self.vision_tower = clip_towers_from_sizes(specs, self.text_name, self.image_names[0], sizes)
        self.layers = self._check_layers(layers)
        width = self.text_tower.config.projection_dim
        hidden = head_hidden or 2 * width
        self.fusion = nn.Sequential(nn.Linear(len(specs) * width, hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, num_classes)

    def _check_layers(self, layers) -> list[int] | None:
        text, vision = self.text_tower.config, self.vision_tower.config
        layers = check_layers(layers, min(text.num_hidden_layers, vision.num_hidden_layers), "ClipDualEncoderNet")
        if layers and text.hidden_size != vision.hidden_size:
            raise GramkdError(
                f"ClipDualEncoderNet: layers needs towers of one width, but the text tower is {text.hidden_size} wide and the vision tower {vision.hidden_size}: drop layers"
            )
        return layers

    @property
    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> MultimodalOutput:
        mask = batch_presence("ClipDualEncoderNet", self.modality_names, inputs, present)
        tokens = inputs[self.text_name]
        presence = dict(zip(self.modality_names, mask.unbind(1)))
        text_rows, text_layers = self._text(tokens, presence[self.text_name])
        image_rows, image_layers = self._images(inputs, presence)
        by_name = {
            self.text_name: (text_rows, text_layers),
            **{m: (image_rows[i], image_layers[i]) for i, m in enumerate(self.image_names)},
        }
        rows = torch.stack([by_name[m][0] for m in self.modality_names], 1).where(mask.unsqueeze(-1), 0)
        fused = self.fusion(rows.flatten(1))
        layer_features = None
        if self.layers:
            layer_features = torch.stack([by_name[m][1] for m in self.modality_names], 2).where(mask[:, None, :, None], 0)
        return MultimodalOutput(self.head(fused), rows, mask, fused, layer_features=layer_features, prefusion_features=rows)

    def _text(self, tokens: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        ids, attention = text_inputs(tokens, present, self.text_name, self.text_tower.config.vocab_size)
        out = self.text_tower.text_model(input_ids=ids, attention_mask=attention, output_hidden_states=bool(self.layers))
        positions = torch.arange(ids.shape[1], device=ids.device)
        last = (attention * positions).argmax(1)
        batch = torch.arange(ids.shape[0], device=ids.device)
        rows = self.text_tower.text_projection(out.last_hidden_state[batch, last])
        if not self.layers:
            return rows, None
        return rows, torch.stack([out.hidden_states[i][batch, last] for i in self.layers], 1)

    def _images(self, inputs: dict[str, torch.Tensor], presence: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | list]:
        """Every image modality through the one vision tower in one call: rows [n, B, D]."""
        pixels = torch.cat([image_inputs(inputs[m], presence[m], m, self.image_shape) for m in self.image_names])
        out = self.vision_tower(pixel_values=pixels, output_hidden_states=bool(self.layers))
        rows = out.image_embeds.unflatten(0, (len(self.image_names), -1))
        if not self.layers:
            return rows, [None] * len(self.image_names)
        return rows, torch.stack([out.hidden_states[i][:, 0] for i in self.layers], 1).unflatten(0, (len(self.image_names), -1))
