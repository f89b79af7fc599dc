"""Texts to token ids `[N, T]` and attention masks, by a word-level tokenizer fitted on the training
split (`tokenizer: null`) or by a pretrained Hugging Face tokenizer (`tokenizer: PATH`).

The word-level tokenizer lowercases, splits on whitespace and punctuation, reserves [PAD]=0
[UNK]=1 [CLS]=2 [SEP]=3 and frames every text as "[CLS] words [SEP]". It is saved as
`tokenizer-<hash of the training texts>.json` in the cache folder and loaded from there next time.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from gramkd.errors import GramkdError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")  # ids 0, 1, 2, 3
TOKENIZER_VERSION = 1


@dataclass
class EncodedTexts:
    ids: np.ndarray  # [N, T] int32
    mask: np.ndarray  # [N, T] bool, True on tokens
    words: np.ndarray  # [N] int, tokens that are not special ([CLS], [SEP], padding)


def vocabulary_key(vocabulary: dict[str, int]) -> str:
    """A short hash of a tokenizer's word -> id mapping: equal keys, equal token ids."""
    return hashlib.sha256(json.dumps(sorted(vocabulary.items())).encode()).hexdigest()[:16]


class WordTokenizer:
    def __init__(self, tokenizer, max_length: int):
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=max_length)
        tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def vocabulary_key(self) -> str:
        return vocabulary_key(self.tokenizer.get_vocab())

    def encode(self, texts: list[str]) -> EncodedTexts:
        return in_chunks(self._encode, texts)

    def _encode(self, texts: list[str]) -> EncodedTexts:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int32).reshape(len(texts), -1)
        mask = np.array([e.attention_mask for e in encodings], dtype=bool).reshape(ids.shape)
        special = np.array([e.special_tokens_mask for e in encodings], dtype=bool).reshape(ids.shape)
        return EncodedTexts(ids, mask, (mask & ~special).sum(1))


class PretrainedTokenizer:
    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def vocabulary_key(self) -> str:
        return vocabulary_key(self.tokenizer.get_vocab())

    def encode(self, texts: list[str]) -> EncodedTexts:
        return in_chunks(self._encode, texts)

    def _encode(self, texts: list[str]) -> EncodedTexts:
        out = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=True,
            return_special_tokens_mask=True,
            return_tensors="np",
        )
        mask = out["attention_mask"].astype(bool)
        return EncodedTexts(out["input_ids"].astype(np.int32), mask, (mask & ~out["special_tokens_mask"].astype(bool)).sum(1))


def in_chunks(encode, texts: list[str], chunk: int = 1000) -> EncodedTexts:
    """Encode `chunk` texts at a time into arrays sized once: one batch of every text holds hundreds
    of MB of Python objects at 50 000 texts, which the allocator then keeps."""
    first = encode(texts[:chunk])
    if len(texts) <= chunk:
        return first
    fields = EncodedTexts.__dataclass_fields__
    out = EncodedTexts(*(np.empty((len(texts), *getattr(first, name).shape[1:]), getattr(first, name).dtype) for name in fields))
    for start in range(0, len(texts), chunk):
        part = first if start == 0 else encode(texts[start : start + chunk])
        for name in fields:
            getattr(out, name)[start : start + chunk] = getattr(part, name)
    return out


def text_tokenizer(source: str | None, train_texts: list[str], max_length: int, cache_dir: Path):
    if max_length < 3:
        raise GramkdError(f"data.max_text_length is {max_length}; it needs room for [CLS], [SEP] and at least one word (3 or more)")
    if source is None:
        return WordTokenizer(_word_tokenizer(train_texts, cache_dir), max_length)
    return PretrainedTokenizer(_pretrained(str(source)), max_length)


def _word_tokenizer(train_texts: list[str], cache_dir: Path):
    from tokenizers import Tokenizer

    digest = hashlib.sha256(repr(TOKENIZER_VERSION).encode())
    for text in train_texts:
        digest.update(text.encode("utf-8") + b"\0")
    file = cache_dir / f"tokenizer-{digest.hexdigest()[:16]}.json"
    if file.is_file():
        return Tokenizer.from_file(str(file))
    tokenizer = fit_word_tokenizer(train_texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{file}.lock"):
        temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        tokenizer.save(str(temporary))
        os.replace(temporary, file)
    return tokenizer


def fit_word_tokenizer(texts: list[str]):
    """A word-level tokenizer whose vocabulary is every word of `texts` (lowercased) after the special tokens."""
    from tokenizers import (
        Tokenizer,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        texts, trainers.WordLevelTrainer(vocab_size=2**31 - 1, min_frequency=1, special_tokens=list(SPECIAL_TOKENS))
    )
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tokenizer


def _pretrained(source: str):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise GramkdError("data.tokenizer names a pretrained tokenizer, which needs transformers: pip install 'gramkd[hf]'") from None
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise GramkdError(
            f"cannot load the tokenizer at data.tokenizer={source} ({str(err).splitlines()[0]}); give a folder saved with save_pretrained"
        ) from None
