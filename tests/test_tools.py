"""The GPU tools in tools/ on the CPU: each imports (so a name removed from hotfuse fails here, not on the device
machine), does nothing at import, and says how to run it; the tunings the tools build from a setting name make the
plan take what the name says. (The frozen experiments in docs/experiments/ are not imported: they are kept as they
ran.)"""

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hotfuse.kernels import KERNEL_FAILURES, gemma4_router, interpreting
from hotfuse.kernels.sampling import plan, temperature_sample
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING, ENTRY_WAIT_KERNELS

TOOLS = Path(__file__).resolve().parents[1] / "tools"
STEMS = sorted(path.stem for path in TOOLS.glob("*.py"))
CPU = torch.device("cpu")


@functools.cache
def load(stem):
    """tools/<stem>.py imported as the module tools_<stem> (once per test process)."""
    spec = importlib.util.spec_from_file_location(f"tools_{stem}", TOOLS / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_tools():
    assert {"tune_sampler", "sample_variants", "dependent_launch"} <= set(STEMS)


@pytest.mark.parametrize("stem", STEMS)
def test_tool_imports_without_side_effects_and_says_how_to_run_it(stem):
    cuda_before = torch.cuda.is_initialized()
    failures_before = KERNEL_FAILURES.snapshot()
    module = load(stem)
    assert torch.cuda.is_initialized() == cuda_before, "importing the tool started CUDA"
    assert KERNEL_FAILURES.snapshot() == failures_before
    doc = module.__doc__ or ""
    assert f"tools/{stem}.py" in doc, "the docstring says how to run the tool (its command line)"
    assert callable(getattr(module, "main", None)), "the work is in main(), run under __main__ only"


# ---- tunings built from setting names --------------------------------------------------------------------------

def variant(rows, vocab, tuning=DEFAULT_TUNING):
    return plan.softmax_variant(rows, vocab, CPU, tuning)[0]


def test_dependent_launch_settings():
    tool = load("dependent_launch")
    # shapes where the shipped plan takes the other kernel than the forced one
    assert variant(4, 262144) == "two_pass" and variant(1, 32000) == "cluster"
    for setting, (entry_wait, trigger_next) in tool.SETTINGS.items():
        cluster = tool.tuning_for(setting, "cluster")
        assert variant(4, 262144, cluster) == "cluster"
        assert variant(1, 32000, tool.tuning_for(setting, "two_pass")) == "two_pass"
        for kernel in ("cluster", "two_pass", None, "two_launches"):
            tuning = tool.tuning_for(setting, kernel)
            assert (tuning.entry_wait, tuning.trigger_next) == (entry_wait, trigger_next)
            assert tuning.one_launch_sampling == (kernel != "two_launches")
        assert tool.tuning_for(setting).cluster_softmax == DEFAULT_TUNING.cluster_softmax
    assert tool.SETTINGS["off"] == (frozenset(), False)
    assert tool.SETTINGS["wait+trigger"] == (frozenset(ENTRY_WAIT_KERNELS), True)


def test_tune_gemma4_forces_the_kernel_and_geometry_it_names():
    tool = load("tune_gemma4")
    lanes, tile = tool.forced_geometry("lanes", 8, 2), tool.forced_geometry("tile", 4, 1)
    assert lanes.lanes_geometry == ((0, 8, 2),) and lanes.use_lanes
    assert tile.tile_geometry == ((0, 4, 1),) and not tile.use_lanes
    assert gemma4_router.DEFAULT_ROUTE_TUNING.use_lanes, "the shipped tuning is untouched"
    if interpreting():  # the forced tile kernel routes lanes-kernel logits alike
        x, scale = torch.randn(9, 64).half(), torch.rand(64) + 0.5
        assert gemma4_router.lanes_kernel_takes(x, 4)
        for tuning in (lanes, tile):
            assert torch.equal(gemma4_router.gemma4_route(x, scale, 4, tuning=tuning)[1],
                               gemma4_router.gemma4_route_reference(x, scale, 4)[1])


def test_sample_variants_tunings():
    tool = load("sample_variants")
    f32 = torch.float32
    # the shipped plan: the cluster race at 4 x 128256, the column race at 64 x 262144
    assert plan.cluster_race_geometry(4, 128256, f32, CPU) is not None
    assert plan.cluster_race_geometry(64, 262144, f32, CPU) is None
    assert plan.cluster_race_geometry(4, 128256, f32, CPU, tool.variant_tuning("race", 128256)) is None
    for rows, vocab in ((1, 65537), (64, 262144), (256, 128256), (5, 200000)):
        cluster = tool.variant_tuning("cluster", vocab)
        assert plan.cluster_race_geometry(rows, vocab, f32, CPU, cluster) is not None, (rows, vocab)


def test_tune_sampler_softmax_configs():
    tool = load("tune_sampler")
    assert variant(1, 32000) == "cluster"
    for cfg in tool.softmax_configs():
        tuning = tool.softmax_tuning(cfg)
        assert variant(1, 32000, tuning) == "two_pass", "the sweep times the two-pass kernels"
        for rows in (1, 256):  # one config at every size
            assert plan.softmax_plan(rows, 262144, CPU, tuning).config == plan.Config(cfg["block"], cfg["warps"],
                                                                                    cfg["waves"])
        assert tuning.normalize_block_max == cfg["normalize_block_max"]
    assert variant(4, 262144, tool.CLUSTER_EVERY_BATCH) == "cluster"
    assert variant(1, 32000, tool.TWO_PASS) == "two_pass"
    assert tool.sampling_tuning(False).one_launch_sampling is False


@pytest.mark.skipif(not interpreting(), reason="runs the kernels on CPU tensors: TRITON_INTERPRET=1 only")
def test_tune_sampler_launches_what_it_times(fresh_hotfuse):
    """What tune_sampler times reaches the kernels through private launch functions: the calls still fit them."""
    tool = load("tune_sampler")
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 20000, generator=g) * 4
    temps = torch.rand(2, 1, generator=g) + 0.5
    seeds = torch.arange(2, dtype=torch.int64) * 1000
    expected = torch.softmax(logits.double() / temps.double(), dim=-1)
    for warps in (8, 16):
        work = logits.clone()
        tool.cluster_softmax(work, temps, warps)()
        assert (work.double() - expected).abs().max().item() <= 1e-6
    tokens = temperature_sample(logits, temps, seeds)
    for cfg in tool.sample_configs():  # the program length never changes the tokens
        assert torch.equal(tool.make_sample(cfg, logits, temps, seeds)(), tokens), cfg
    assert not KERNEL_FAILURES.snapshot()


def test_filtered_tunings_name_fields_and_constants_that_exist():
    """Each tuning of tools/filtered_tunings.py is a plan.Tuning with settle.py constants it overrides for its run: a
    misspelt constant would be set beside the module's and change nothing."""
    from hotfuse.kernels.sampling import settle
    tool = load("filtered_tunings")
    assert next(iter(tool.TUNINGS)) == "default" and tool.TUNINGS["default"] == (DEFAULT_TUNING, {})
    for name, (tuning, constants) in tool.TUNINGS.items():
        assert isinstance(tuning, plan.Tuning), name
        assert all(isinstance(getattr(settle, c, None), int) for c in constants), (name, constants)
        assert tuning != DEFAULT_TUNING or constants or name == "default", f"{name} changes nothing"


SASS = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        //## File "/x/search.py", line 10
.L_x_0:
        /*0010*/                   FADD R2, R2, R3 ;
        /*0020*/              @P0 BRA `(.L_x_1) ;
        //## File "/x/search.py", line 11
        /*0030*/                   FMUL R2, R2, R3 ;
        /*0040*/              @!P1 BRA `(.L_x_0) ;
.L_x_1:
        /*0050*/                   EXIT ;
"""


def test_kernel_instructions_finds_loops_and_their_source_lines():
    """A loop is the code from a label to a branch back to it (a branch forward is not one), counted by the source
    line each instruction comes from."""
    found = load("kernel_instructions").loops(SASS)
    assert found == [(".L_x_0", 4, {"search.py:10": 2, "search.py:11": 2})]


def test_kernel_instructions_compiles_a_case_for_hopper():
    """The tool compiles a case of tests/kernels/compile_targets.py without a GPU (outside the interpreter, as
    test_compile_targets does) and reports its registers and its loops."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(TOOLS / "kernel_instructions.py"), "race_window"], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout.splitlines()
    assert report[0].startswith("race_window (sm_90a, default tuning): ") and " registers" in report[0], report
    loop_sizes = [int(line.split(": ")[1].split()[0]) for line in report[1:] if line.startswith("  loop ")]
    assert max(loop_sizes) > 100, report  # the race's loop over a tile's 8 x 512 tokens
