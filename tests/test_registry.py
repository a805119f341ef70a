"""The fusion registry is complete, consistent, and the README's tables are generated from it."""

import importlib
import re
import tomllib
from pathlib import Path

from hotfuse.docs import sync_readme
from hotfuse.registry import ENGINE_INFRA, ENGINES, FUSION_NAMES, FUSIONS, State

ROOT = Path(__file__).resolve().parent.parent


def test_fusion_names_are_the_documented_five():
    assert FUSION_NAMES == ("sampler", "gemma4_router", "topk_postprocess", "spec_gather", "qk_norm_fp8")


def test_every_fusion_is_described_for_every_engine():
    for f in FUSIONS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name)
        assert f.summary and f.why and f.upstream
        assert sorted(s.engine for s in f.engines) == sorted(ENGINES)
        for s in f.engines:
            assert s.versions
            assert (s.adapter is None) != (s.state is None), f"{f.name}/{s.engine}: adapter xor fixed state"
            if s.state is not None:
                assert s.reason
            if s.state is State.NATIVE:
                assert s.disable_note, f"{f.name}/{s.engine}: say what HOTFUSE_DISABLE does to the native path"
            assert bool(s.retire_when) == bool(s.adapter), f"{f.name}/{s.engine}: every patch says when it can go"


def test_status_can_say_when_each_patch_can_go(capsys, monkeypatch):
    from hotfuse import cli

    monkeypatch.setenv("HOTFUSE", "1")
    cli.main(["status", "--verbose", "--engine", "vllm"])
    text = capsys.readouterr().out  # (core tests run in the vllm venv)
    assert "retire when: never while vLLM has these passes" in text
    assert "retire when: vLLM's V2 sampler divides by the temperature inside its Gumbel kernel" in text


def test_upstream_history_seeds_are_recorded():
    text = " ".join(" ".join(f.upstream) for f in FUSIONS)
    for pr in ("20501", "22046", "16945", "21771", "26502", "21734", "23159", "23227"):
        assert f"#{pr}" in text


def test_every_adapter_declares_fingerprinted_targets_and_a_plan():
    modules = [s.adapter for f in FUSIONS for s in f.engines if s.adapter]
    modules += [m for infra in ENGINE_INFRA.values() for m in infra]
    assert modules
    for name in modules:
        module = importlib.import_module(f"hotfuse.patches.{name}")
        assert callable(module.plan) and module.TARGETS
        for target in module.TARGETS:
            assert target.fingerprints and all(re.fullmatch(r"[0-9a-f]{16}", fp) for fp in target.fingerprints)


def test_states_vocabulary():
    assert {s.value for s in State} >= {"active", "reference", "native", "drift", "not applicable", "inert"}


def test_readme_tables_are_generated_from_the_registry():
    assert not sync_readme(str(ROOT / "README.md"), write=False), "README is stale: run `hotfuse readme`"


def test_package_layout_maps_plugin_and_patches():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-dir"] == {"hotfuse": "plugin", "hotfuse.patches": "patches"}
    eps = pyproject["project"]["entry-points"]
    assert eps["vllm.general_plugins"]["hotfuse"] == "hotfuse.entrypoints:vllm_plugin"
    assert eps["sglang.srt.plugins"]["hotfuse"] == "hotfuse.entrypoints:sglang_plugin"
    assert pyproject["project"]["dependencies"] == ["torch"]
