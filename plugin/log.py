"""The `hotfuse` logger: its own stderr handler, since engines configure only their own loggers."""

from __future__ import annotations

import logging

from hotfuse.flags import parse_flags

logger = logging.getLogger("hotfuse")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("[hotfuse pid=%(process)d] %(levelname)s %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(parse_flags().log_level)
    logger.propagate = False
