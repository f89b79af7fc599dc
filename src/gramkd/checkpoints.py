from pathlib import Path

import torch

from gramkd.errors import GramkdError, first_line


def safe_load(path: str | Path, what: str = "checkpoint", if_missing: str = "") -> object:
    """`torch.load(weights_only=True)` on CPU, or one line saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise GramkdError(f"{what} {path} does not exist{if_missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or pickled objects that weights_only refuses
        raise GramkdError(f"cannot load {what} {path} safely (weights_only=True): {first_line(err)}") from None


def load_checkpoint(path: str | Path) -> dict:
    """Load a gramkd checkpoint safely (`weights_only=True`), or say in one line what is wrong."""
    checkpoint = safe_load(path)
    if not isinstance(checkpoint, dict) or "gramkd" not in checkpoint:
        raise GramkdError(f"{path} is not a gramkd checkpoint (no 'gramkd' entry); pass one written by `gramkd fit`")
    return checkpoint


def without_net_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `net.*` entries of a module's state_dict, keyed as the net's own."""
    return {k[len("net.") :]: v for k, v in state_dict.items() if k.startswith("net.")}


def net_state_dict(checkpoint: dict, path) -> dict[str, torch.Tensor]:
    """The trained net's weights (`net.*` in a Lightning checkpoint), without the prefix."""
    weights = without_net_prefix(checkpoint.get("state_dict", {}))
    if not weights:
        raise GramkdError(f"checkpoint {path} holds no net weights (no 'net.*' keys in its state_dict)")
    return weights


def check_vocabulary(checkpoint: dict, datamodule, path) -> None:
    """Refuse a net trained on text whose token ids meant other words than the data's do now."""
    saved = (checkpoint.get("gramkd") or {}).get("vocabulary")
    current = getattr(datamodule, "vocabulary_key", None)
    if saved and current and saved != current:
        raise GramkdError(
            f"{path} was trained on text tokenised with another vocabulary (key {saved}; the data's is {current}), so its token ids "
            "would stand for other words: tokenise as it was trained (the same data.tokenizer, or the same training texts)"
        )
