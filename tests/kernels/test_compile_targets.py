"""The sampler's kernels compile for the NVIDIA GPUs the engines run on, Hopper and before, with the
compile-time flags the launch code picks for each (tests/kernels/compile_targets.py, in a process without the
interpreter; Triton's own ptxas, no GPU needed). griddepcontrol (programmatic dependent launch) and thread-block
clusters are sm_90 PTX: an A100 (sm_80) or an L4 (sm_89) must never be given them."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("triton")

SCRIPT = pathlib.Path(__file__).with_name("compile_targets.py")


@pytest.fixture(scope="module")
def report():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(SCRIPT), "8.0", "8.9", "9.0"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("capability", ["8.0", "8.9"], ids=["sm80-A100", "sm89-L4"])
def test_kernels_compile_before_hopper_without_dependent_launch(report, capability):
    got = report[capability]
    assert got["flags"] == {"dependent_launch": False, "entry_wait": [], "trigger": False, "cluster": False,
                            "sample_cluster": False}
    kernels = {name: r for name, r in got["kernels"].items() if name != "softmax_partials_with_griddepcontrol"}
    assert set(kernels) == {"softmax_partials", "softmax_normalize", "sample"}
    for name, result in kernels.items():
        assert result == {"ok": True, "griddepcontrol": False}, (name, result)


def test_griddepcontrol_is_what_breaks_the_compile_before_hopper(report):
    """The check above can fail: the first softmax pass as it shipped before (griddepcontrol always on a GPU)
    does not assemble for sm_80."""
    result = report["8.0"]["kernels"]["softmax_partials_with_griddepcontrol"]
    assert not result["ok"] and "griddepcontrol" in result["error"]


def test_kernels_compile_for_hopper_with_dependent_launch_and_clusters(report):
    from hotfuse.kernels.sampling import GRID_DEPENDENCY

    got = report["9.0"]
    waits, trigger = GRID_DEPENDENCY["entry_wait"], GRID_DEPENDENCY["trigger_next"]
    assert got["flags"] == {"dependent_launch": True, "entry_wait": sorted(waits), "trigger": trigger,
                            "cluster": True, "sample_cluster": True}
    # the two softmax passes always use it (the second launches as the first's dependent); the others as set
    expected = {"softmax_partials": True, "softmax_normalize": True, "sample": "sample" in waits or trigger,
                "softmax_cluster": "softmax_cluster" in waits or trigger, "sample_cluster": "sample" in waits}
    assert {name: r["ok"] for name, r in got["kernels"].items()} == dict.fromkeys(expected, True), got["kernels"]
    assert {name: r["griddepcontrol"] for name, r in got["kernels"].items()} == expected
