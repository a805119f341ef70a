"""The functions the engines call through their plugin entry points (see pyproject.toml).

Both are idempotent per process and never raise. When HOTFUSE is unset or 0 they return after one
environment lookup, importing nothing beyond the standard library (unless HOTFUSE_REPORT_DIR asks
for a report).
"""

from __future__ import annotations

import os


def _quick_inert() -> bool:
    return os.environ.get("HOTFUSE", "").strip() in ("", "0") and not os.environ.get("HOTFUSE_REPORT_DIR")


def vllm_plugin() -> None:
    """vllm.general_plugins: runs in the main process, EngineCore and every worker."""
    if _quick_inert():
        return
    from hotfuse.runtime import load

    load("vllm")


def sglang_plugin() -> None:
    """sglang.srt.plugins: runs in every scheduler process, the DP controller and the detokenizer."""
    if _quick_inert():
        return
    from hotfuse.runtime import load

    load("sglang")
