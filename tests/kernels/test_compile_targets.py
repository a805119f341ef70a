"""Every hotfuse kernel compiles for the NVIDIA GPUs the engines run on, Hopper and before, with the compile-time
flags the launch code picks for each (tests/kernels/compile_targets.py, in a process without the interpreter;
Triton's own ptxas, no GPU needed), with the venv's Triton and with every Triton release the supported engines
bring with their torch (ci/triton-overlays.txt, installed as overlays of the venv by ci/setup_envs.sh).
griddepcontrol (programmatic dependent launch) and thread-block clusters are sm_90 PTX: an A100 (sm_80) or an L4
(sm_89) must never be given them. Where a launch with either fails at run time anyway, the launch code falls back
(tests/kernels/test_sampling.py shows both fallbacks)."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("triton")

SCRIPT = pathlib.Path(__file__).with_name("compile_targets.py")
ROOT = pathlib.Path(__file__).resolve().parents[2]
ENGINE_TRITONS = re.findall(r"^triton==(\S+)", (ROOT / "ci" / "triton-overlays.txt").read_text(), re.M)
OTHER_GPUS = {"softmax_partials", "softmax_normalize", "sample", "sample_combine", "gemma4_route_tile",
              "gemma4_route_lanes", "topk_postprocess", "gather_rows", "filtered_sample_vllm",
              "filtered_sample_sglang_bf16", "search_top", "search_pass_first_vllm", "search_pass_last_sglang_bf16",
              "race_window", "settle"}


@pytest.fixture(scope="module", params=["venv"] + ENGINE_TRITONS)
def report(request):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if request.param != "venv":
        overlay = pathlib.Path(sys.prefix) / f"overlay-triton-{request.param}"
        assert overlay.is_dir(), f"run ci/setup_envs.sh: it installs the Triton {request.param} overlay"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(overlay), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, str(SCRIPT), "8.0", "8.9", "9.0"], capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if request.param != "venv":
        assert got["triton"] == request.param, "the overlay's Triton was not the one imported"
    return got


def test_the_engines_tritons_are_the_ones_their_torch_pins():
    assert ENGINE_TRITONS == ["3.6.0", "3.7.1", "3.8.0"]


@pytest.mark.parametrize("capability", ["8.0", "8.9"], ids=["sm80-A100", "sm89-L4"])
def test_kernels_compile_before_hopper_without_dependent_launch(report, capability):
    got = report[capability]
    assert got["flags"] == {"dependent_launch": False, "entry_wait": [], "trigger": False, "cluster": False,
                            "sample_cluster": False}
    kernels = {name: r for name, r in got["kernels"].items() if name != "softmax_partials_with_griddepcontrol"}
    assert set(kernels) == OTHER_GPUS
    for name, result in kernels.items():
        assert result == {"ok": True, "griddepcontrol": False}, (name, result)


def test_griddepcontrol_is_what_breaks_the_compile_before_hopper(report):
    """The check above can fail: the first softmax pass as it shipped before (griddepcontrol always on a GPU)
    does not assemble for sm_80."""
    result = report["8.0"]["kernels"]["softmax_partials_with_griddepcontrol"]
    assert not result["ok"] and "griddepcontrol" in result["error"]


def test_kernels_compile_for_hopper_with_dependent_launch_and_clusters(report):
    from hotfuse.kernels.sampling.plan import DEFAULT_TUNING

    got = report["9.0"]
    waits, trigger = DEFAULT_TUNING.entry_wait, DEFAULT_TUNING.trigger_next
    assert got["flags"] == {"dependent_launch": True, "entry_wait": sorted(waits), "trigger": trigger,
                            "cluster": True, "sample_cluster": True}
    # the two softmax passes always use it (the second launches as the first's dependent), the separate combine too;
    # the others as set
    expected = {"softmax_partials": True, "softmax_normalize": True, "sample": "sample" in waits or trigger,
                "sample_combine": True, "softmax_cluster": "softmax_cluster" in waits or trigger,
                "sample_cluster": "sample" in waits, "gemma4_route_tile": False, "gemma4_route_lanes": False,
                "topk_postprocess": False, "gather_rows": False, "filtered_sample_vllm": False,
                "filtered_sample_sglang_bf16": False, "search_top": False, "search_pass_first_vllm": False,
                "search_pass_last_sglang_bf16": False, "race_window": False, "settle": False}
    assert {name: r["ok"] for name, r in got["kernels"].items()} == dict.fromkeys(expected, True), got["kernels"]
    assert {name: r["griddepcontrol"] for name, r in got["kernels"].items()} == expected
