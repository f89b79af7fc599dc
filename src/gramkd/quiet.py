"""Keep Lightning's advertising out of what gramkd's users see."""

import logging

LIGHTNING_INFO_LOGGER = "lightning.pytorch.utilities.rank_zero"


class NoLightningTips(logging.Filter):
    """Drops Lightning's "💡 Tip: …" lines (litlogger, litmodels); its other messages pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith("💡 Tip")


NO_TIPS = NoLightningTips()


def hide_lightning_tips() -> None:
    logging.getLogger(LIGHTNING_INFO_LOGGER).addFilter(NO_TIPS)  # the same filter twice is one filter
