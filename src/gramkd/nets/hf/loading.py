"""transformers, imported only when an adapter is built, and `from_pretrained` with one-line errors."""

from pathlib import Path

from gramkd.errors import GramkdError, first_line


def require_transformers():
    """The transformers module, or a one-line GramkdError saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise GramkdError("the Hugging Face adapters (gramkd.nets.hf) need transformers: pip install 'gramkd[hf]'") from None
    return transformers


def load_pretrained(model_class, name_or_path: str, **kwargs):
    """`model_class.from_pretrained(name_or_path)`; a missing model or unreachable hub is one line."""
    try:
        return model_class.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError) as err:
        raise GramkdError(_cannot_load(name_or_path, err)) from None


def load_config(config_class, name_or_path: str, model_type: str, net: str):
    """The saved model's config; refuses one of another model type."""
    config = load_pretrained(config_class, name_or_path)
    if config.model_type != model_type:
        raise GramkdError(f"{net}: pretrained={name_or_path} holds a '{config.model_type}' model; it needs a saved '{model_type}' model")
    return config


def _cannot_load(name_or_path: str, err: Exception) -> str:
    reason = first_line(err)[:200]
    if Path(name_or_path).is_dir():
        return f"cannot load pretrained={name_or_path}: {reason}"
    return (
        f"pretrained={name_or_path} is not a local directory and the Hugging Face hub could not provide it "
        f"(offline or unreachable: {reason}); save the model with save_pretrained or `hf download` it where the hub is reachable, "
        "then pass its directory"
    )
