from gramkd.data.digits_nlvr import DigitsNLVRDataModule, generate_digits_nlvr
from gramkd.data.features import FeaturesDataModule
from gramkd.data.image_text import ImageTextDataModule
from gramkd.data.mfeat import MFeatDataModule
from gramkd.data.paired import PairedArrays, PairedMultimodalDataModule
from gramkd.data.synthetic import SyntheticDataModule

__all__ = [
    "DigitsNLVRDataModule",
    "FeaturesDataModule",
    "ImageTextDataModule",
    "MFeatDataModule",
    "PairedArrays",
    "PairedMultimodalDataModule",
    "SyntheticDataModule",
    "generate_digits_nlvr",
]
