"""Nets from Hydra nodes: wired to the data, and rebuilt from what a checkpoint recorded."""

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gramkd.errors import GramkdError, first_line
from gramkd.nets.contract import check_network, modality_specs

LEGACY_TARGET = "gramkd.nets.MultimodalNet"  # checkpoints written before nets recorded `_target_`


def net_node(net_cfg: DictConfig | dict, datamodule, **extra) -> dict:
    """The net's resolved node with the data's modalities and classes filled in: all it takes to
    build the net again (checkpoints record it)."""
    node = OmegaConf.to_container(net_cfg, resolve=True) if isinstance(net_cfg, DictConfig) else dict(net_cfg)
    modalities = {name: spec.as_config() for name, spec in modality_specs(datamodule.modalities).items()}
    node.update(modalities=modalities, num_classes=int(datamodule.num_classes), **{k: v for k, v in extra.items() if v is not None})
    return node


def build_net(net_cfg: DictConfig | dict, datamodule, role: str = "net", **extra) -> nn.Module:
    """A net wired to the data: its modalities and classes come from the data module."""
    return instantiate_net(net_node(net_cfg, datamodule, **extra), role)


def instantiate_net(node: dict, role: str = "net") -> nn.Module:
    """Instantiate a net node; a constructor's complaint becomes one line naming the role."""
    node = dict(node)
    node.setdefault("_target_", LEGACY_TARGET)
    try:
        net = instantiate(node, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, GramkdError):
            raise GramkdError(f"{role}: {cause}") from None
        raise GramkdError(f"cannot build the {role} ({node['_target_']}): {first_line(cause)}") from None
    check_network(net, role)
    return net
