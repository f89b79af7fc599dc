"""Keep Lightning's advertising, and the deprecation notes its own code triggers, out of what
gramkd's users see."""

import logging
import warnings

LIGHTNING_INFO_LOGGER = "lightning.pytorch.utilities.rank_zero"
# torch 2.13 deprecates constructing `LeafSpec`, which Lightning 2.6's _pytree still does every fit,
# and torch.distributed.nn's all_gather, which Lightning's `all_gather` calls (under DDP)
LIGHTNING_DEPRECATIONS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
)


# the tips (litlogger, litmodels); the note that gramkd's own model summary replaces Lightning's
LIGHTNING_NOISE = ("💡 Tip", "Trainer already configured with model summary callbacks")


class NoLightningTips(logging.Filter):
    """Drops Lightning's "💡 Tip: …" lines and its note on gramkd's model summary; its other messages pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(LIGHTNING_NOISE)


NO_TIPS = NoLightningTips()


def hide_lightning_tips() -> None:
    logging.getLogger(LIGHTNING_INFO_LOGGER).addFilter(NO_TIPS)  # the same filter twice is one filter
    for message in LIGHTNING_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


def lightning_logs_once() -> None:
    """Lightning's messages ("GPU available: …") once each, as plain lines, as when Lightning is
    imported before anything set up logging. Imported after Hydra has (the CLI loads it only once
    a config has composed), Lightning leaves them to propagate instead: to its "INFO: " handler and
    again to Hydra's console handler."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        if logger.propagate:
            logger.addHandler(logging.StreamHandler())
            logger.propagate = False
