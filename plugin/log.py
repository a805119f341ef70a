"""The `hotfuse` logger: its own stderr handler, since engines configure only their own loggers."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("hotfuse")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("[hotfuse pid=%(process)d] %(levelname)s %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(os.environ.get("HOTFUSE_LOG_LEVEL", "INFO").upper())
    logger.propagate = False
