"""Entry points: registered under both engines' groups, cheap and silent when HOTFUSE is unset."""

import subprocess
import sys
from importlib.metadata import entry_points

import pytest


@pytest.mark.parametrize("group, func", [("vllm.general_plugins", "vllm_plugin"), ("sglang.srt.plugins", "sglang_plugin")])
def test_entry_point_is_registered(group, func):
    eps = {ep.name: ep for ep in entry_points(group=group)}
    assert "hotfuse" in eps, f"hotfuse not registered in {group}"
    assert eps["hotfuse"].value == f"hotfuse.entrypoints:{func}"
    assert callable(eps["hotfuse"].load())


def test_unset_hotfuse_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from hotfuse.entrypoints import vllm_plugin, sglang_plugin\n"
        "vllm_plugin(); sglang_plugin(); vllm_plugin()\n"
        "heavy = [m for m in ('torch', 'hotfuse.runtime', 'vllm', 'sglang') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('OK')\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr


def test_invalid_flags_log_one_error_and_patch_nothing():
    code = (
        "from hotfuse.runtime import load\n"
        "s1 = load('vllm'); s2 = load('vllm')\n"
        "assert s1 is s2 and not s1.patches\n"
        "assert {r.state.value for r in s1.fusions.values()} == {'inert'}\n"
        "print('OK')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOTFUSE": "sampler,warp_drive"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr
    errors = [ln for ln in out.stderr.splitlines() if "ERROR" in ln]
    assert len(errors) == 1, out.stderr
    assert "warp_drive" in errors[0] and "topk_postprocess" in errors[0] and "stock" in errors[0]
