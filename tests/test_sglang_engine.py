"""hotfuse inside the real SGLang 0.5.23 engine on CPU (CI platform plugin, tiny config-only Mixtral)."""

import pytest

from helpers import clean_env, model_dir, read_reports, report_with_title, run_engine

pytestmark = pytest.mark.engine_sglang

TOPK_TARGET = "sglang.srt.layers.moe.topk._biased_grouped_topk_postprocess"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for label, flags in {
        "on": {"HOTFUSE": "1"},
        "off": {},
        "fault": {"HOTFUSE": "1", "HOTFUSE_TEST_FAULTS": "install:topk_postprocess"},
    }.items():
        tmp = tmp_path_factory.mktemp(f"sglang-{label}")
        env = clean_env(tmp, HOTFUSE_REPORT_DIR=str(tmp / "reports"), **flags)
        tokens, log = run_engine("sglang", model_dir("mixtral-tiny", tmp), env)
        out[label] = (tokens, read_reports(tmp / "reports"), log)
    return out


def test_plugin_runs_in_the_scheduler_process(runs):
    tokens, reports, _ = runs["on"]
    assert len(tokens) == 2 and all(len(t) == 6 for t in tokens)
    scheduler = report_with_title(reports, "sglang::scheduler")
    assert scheduler["engine_version"] == "0.5.23"
    assert scheduler["patches"] == [
        {"fusion": "topk_postprocess", "target": TOPK_TARGET, "via": "sglang HookRegistry"}
    ]
    states = {n: f["state"] for n, f in scheduler["fusions"].items()}
    assert states["topk_postprocess"] == "active"
    assert states["spec_gather"] == "native" and states["gemma4_router"] == "native"


def test_unset_hotfuse_stays_inert_in_the_scheduler(runs):
    tokens, reports, log = runs["off"]
    assert len(tokens) == 2
    scheduler = report_with_title(reports, "sglang::scheduler")
    for report in reports:
        assert report["flags"]["inert"] and report["patches"] == []
    assert {f["state"] for f in scheduler["fusions"].values()} == {"inert"}
    assert "[hotfuse" not in log


def test_generation_is_identical_with_and_without_the_plugin(runs):
    assert runs["on"][0] == runs["off"][0]


def test_failing_adapter_leaves_the_engine_generating_stock(runs):
    tokens, reports, log = runs["fault"]
    assert tokens == runs["off"][0]
    scheduler = report_with_title(reports, "sglang::scheduler")
    assert scheduler["patches"] == []
    assert scheduler["fusions"]["topk_postprocess"]["state"] == "error"
    assert "InjectedFault" in scheduler["error"]
    assert "every patch was reverted" in log
