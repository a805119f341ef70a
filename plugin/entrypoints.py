"""The functions the engines call through their plugin entry points (see pyproject.toml).

Both are idempotent per process and never raise. When HOTFUSE is unset or 0 they return after one
environment lookup, importing nothing beyond the standard library (unless HOTFUSE_REPORT_DIR asks
for a report).
"""

from __future__ import annotations


def vllm_plugin() -> None:
    """vllm.general_plugins: runs in the main process, EngineCore and every worker."""
    from hotfuse.flags import quick_inert

    if quick_inert():
        return
    from hotfuse.runtime import load

    load("vllm")


def sglang_plugin() -> None:
    """sglang.srt.plugins: runs in every scheduler process, the DP controller and the detokenizer."""
    from hotfuse.flags import quick_inert

    if quick_inert():
        return
    from hotfuse.runtime import load

    load("sglang")
