"""A WandbLogger that never blocks: offline (said in one line) when W&B cannot be reached."""

import netrc
import os
import secrets
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

RUN_ID_FILE = "wandb_run_id.txt"


def wandb_logger(save_dir: str, offline: str | bool = "auto", **kwargs) -> WandbLogger:
    """WandbLogger for a gramkd run folder.

    offline: "auto" goes online only with credentials (WANDB_API_KEY or a netrc entry) and a
    reachable server, else offline; true / false force it. The run id is kept in the run folder,
    so a run resumed with `ckpt_path=last` continues the same W&B run.
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    if offline == "auto":
        reason = why_offline()
        offline = reason is not None
        if offline:
            print(f"W&B: {reason}: logging offline to {save_dir / 'wandb'} (upload later with `wandb sync <run dir>`)", file=sys.stderr)
    return WandbLogger(save_dir=str(save_dir), offline=bool(offline), id=run_id(save_dir), resume="allow", **kwargs)


def why_offline() -> str | None:
    """Why this run cannot log online, or None when it can."""
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled"):
        return f"WANDB_MODE={os.environ['WANDB_MODE']}"
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has(host)):
        return "no credentials (set WANDB_API_KEY or run `wandb login`)"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return f"{host} is unreachable"
    return None


def run_id(save_dir: Path) -> str:
    """The W&B run id of this run folder: made once, then reused on resume."""
    path = save_dir / RUN_ID_FILE
    if not path.is_file():
        path.write_text(secrets.token_hex(4) + "\n")
    return path.read_text().strip()


def _netrc_has(host: str) -> bool:
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
