"""Hugging Face vision-language models behind gramkd's network contract.

Importing this package does not import transformers; building an adapter does, and says
`pip install 'gramkd[hf]'` when it is missing.
"""

from gramkd.nets.hf.clip import ClipDualEncoderNet
from gramkd.nets.hf.vilt import ViltNet

__all__ = ["ClipDualEncoderNet", "ViltNet"]
