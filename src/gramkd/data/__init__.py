from gramkd.data.features import FeaturesDataModule
from gramkd.data.mfeat import MFeatDataModule
from gramkd.data.paired import PairedArrays, PairedMultimodalDataModule
from gramkd.data.synthetic import SyntheticDataModule

__all__ = ["FeaturesDataModule", "MFeatDataModule", "PairedArrays", "PairedMultimodalDataModule", "SyntheticDataModule"]
