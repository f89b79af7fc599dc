from pathlib import Path

import torch

from gramkd.errors import GramkdError


def load_checkpoint(path: str | Path) -> dict:
    """Load a gramkd checkpoint safely (`weights_only=True`), or say in one line what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise GramkdError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or pickled objects that weights_only refuses
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GramkdError(f"cannot load checkpoint {path} safely (weights_only=True): {first_line}") from None
    if not isinstance(checkpoint, dict) or "gramkd" not in checkpoint:
        raise GramkdError(f"{path} is not a gramkd checkpoint (no 'gramkd' entry); pass one written by `gramkd fit`")
    return checkpoint


def net_state_dict(checkpoint: dict, path) -> dict[str, torch.Tensor]:
    """The trained net's weights (`net.*` in a Lightning checkpoint), without the prefix."""
    prefix = "net."
    weights = {k[len(prefix) :]: v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith(prefix)}
    if not weights:
        raise GramkdError(f"checkpoint {path} holds no net weights (no 'net.*' keys in its state_dict)")
    return weights
