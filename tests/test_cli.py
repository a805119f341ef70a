"""`hotfuse` command line: status states and exit codes against the installed vLLM engine."""

import json
import os
import subprocess
import sys

import pytest

from hotfuse._version import __version__

pytestmark = pytest.mark.engine_vllm


def hotfuse(*args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTFUSE")}
    env.update(env_overrides)
    return subprocess.run([sys.executable, "-m", "hotfuse.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def status(**env):
    out = hotfuse("status", "--json", "--engine", "vllm", **env)
    return out.returncode, json.loads(out.stdout)


def test_version():
    out = hotfuse("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"hotfuse {__version__}"


def test_status_inert_when_unset():
    code, doc = status()
    vllm = doc["engines"]["vllm"]
    assert code == 0 and doc["flags"]["inert"]
    assert vllm["engine_version"] == "0.32.0"
    assert {f["state"] for f in vllm["fusions"].values()} == {"inert"}


def test_status_all_on_reports_every_state():
    code, doc = status(HOTFUSE="1")
    vllm = doc["engines"]["vllm"]
    states = {n: f["state"] for n, f in vllm["fusions"].items()}
    assert states == {"sampler": "active", "gemma4_router": "active", "topk_postprocess": "native",
                      "spec_gather": "not applicable", "qk_norm_fp8": "native"}
    assert vllm["infra"]["vllm.compile_cache"].startswith("active")
    assert code == 0, "every requested fusion took effect (active, native or not applicable)"


def test_status_exit_non_zero_when_a_requested_fusion_drifted():
    # Point the sampler adapter at a fingerprint no release has: the requested fusion cannot apply.
    code = subprocess.run(
        [sys.executable, "-c",
         "import dataclasses, sys\n"
         "from hotfuse.patches.vllm import sampler as a\n"
         "a.SAMPLE = dataclasses.replace(a.SAMPLE, fingerprints={'0' * 16: 'x'})\n"
         "from hotfuse import cli\n"
         "sys.exit(cli.main(['status', '--engine', 'vllm']))"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("HOTFUSE")}, "HOTFUSE": "sampler"},
        capture_output=True, text=True, timeout=300)
    assert code.returncode == 1 and "drift" in code.stdout, code.stdout + code.stderr


def test_status_exit_zero_when_everything_requested_took_effect():
    code, doc = status(HOTFUSE="spec_gather,topk_postprocess")
    assert code == 0
    assert doc["engines"]["vllm"]["fusions"]["sampler"]["state"] == "off"


def test_status_kill_switch_on_a_native_fusion_that_cannot_be_reverted_fails():
    code, doc = status(HOTFUSE="spec_gather", HOTFUSE_DISABLE="topk_postprocess")
    report = doc["engines"]["vllm"]["fusions"]["topk_postprocess"]
    assert report["mode"] == "reference" and report["state"] == "native"
    assert "cannot revert" in report["reason"]
    assert code == 1


def test_status_invalid_flags_exit_two_and_name_valid_fusions():
    out = hotfuse("status", "--engine", "vllm", HOTFUSE="sampler,nope")
    assert out.returncode == 2
    assert "nope" in out.stdout and "gemma4_router" in out.stdout and "inert" in out.stdout


def test_status_text_table_lists_every_fusion():
    out = hotfuse("status", "--engine", "vllm", HOTFUSE="1")
    for name in ("sampler", "gemma4_router", "topk_postprocess", "spec_gather", "qk_norm_fp8"):
        assert name in out.stdout
    assert "vllm 0.32.0" in out.stdout
