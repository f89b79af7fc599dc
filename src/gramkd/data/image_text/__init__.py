"""Raw images and texts in the layouts of the public benchmarks (Hateful Memes, SNLI-VE, NLVR2)."""

from gramkd.data.image_text.datamodule import ImageTextDataModule
from gramkd.data.image_text.formats import FORMATS
from gramkd.data.image_text.image_cache import decode_image
from gramkd.data.image_text.tokenizer import SPECIAL_TOKENS, fit_word_tokenizer

__all__ = ["FORMATS", "SPECIAL_TOKENS", "ImageTextDataModule", "decode_image", "fit_word_tokenizer"]
