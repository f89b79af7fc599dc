from gramkd.nets.multimodal import FUSIONS, MultimodalNet
from gramkd.nets.output import MultimodalOutput

__all__ = ["FUSIONS", "MultimodalNet", "MultimodalOutput"]
