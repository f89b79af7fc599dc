from gramkd.data.mfeat import MFeatDataModule
from gramkd.data.paired import PairedArrays, PairedMultimodalDataModule
from gramkd.data.synthetic import SyntheticDataModule

__all__ = ["MFeatDataModule", "PairedArrays", "PairedMultimodalDataModule", "SyntheticDataModule"]
