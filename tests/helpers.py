"""Shared helpers for the integration tests: run a real engine in a subprocess, read hotfuse's reports."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MODELS = TESTS / "models"
HOTFUSE_VARS = ("HOTFUSE", "HOTFUSE_DISABLE", "HOTFUSE_ALLOW_DRIFT", "HOTFUSE_REPORT_DIR", "HOTFUSE_TEST_FAULTS",
                "TRITON_INTERPRET")


def clean_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The test process's environment without hotfuse variables (nor the kernel tests' TRITON_INTERPRET),
    caches kept under tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in HOTFUSE_VARS}
    env.update(
        VLLM_CACHE_ROOT=str(tmp_path / "vllm-cache"),
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor-cache"),
        TMPDIR=str(tmp_path),
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_NO_USAGE_STATS="1",
        SGLANG_PLATFORM="hotfuse_ci_cpu",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def model_dir(name: str, tmp_path: Path) -> str:
    """A copy of tests/models/NAME (a config-only model), or NAME itself when it is an absolute path."""
    if Path(name).is_absolute():
        return name
    dst = tmp_path / name
    if not dst.exists():
        shutil.copytree(MODELS / name, dst)
    return str(dst)


def make_tiny_gemma4(directory: Path) -> str:
    """Write the demo's tiny Gemma4 MoE model with saved random weights (hotfuse.demo.models)."""
    out = subprocess.run([sys.executable, "-m", "hotfuse.demo.models", "gemma4-moe-tiny", str(directory)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return str(directory)


def run_engine(engine: str, model: str, env: dict[str, str], timeout: int = 400, **kw) -> tuple[list, str]:
    """Run hotfuse's engine driver; return (tokens per prompt, combined output). Fails the test on error."""
    cmd = [sys.executable, "-m", "hotfuse.demo.driver", engine, model]
    for key, value in kw.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{engine} driver failed (rc={proc.returncode}):\n{out[-6000:]}"
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("HOTFUSE_DRIVER_RESULT "))
    return json.loads(line.split(" ", 1)[1])["tokens"], out


def run_cases(tmp_path_factory, engine: str, model: str, cases: dict) -> dict:
    """One real engine run per case, each in its own temp dir with a report dir.

    cases: {label: (environment overrides, driver options)}. Returns {label: (tokens, reports, log)}.
    """
    out = {}
    for label, (overrides, options) in cases.items():
        tmp = tmp_path_factory.mktemp(f"{engine}-{label}")
        env = clean_env(tmp, HOTFUSE_REPORT_DIR=str(tmp / "reports"), **overrides)
        tokens, log = run_engine(engine, model_dir(model, tmp), env, **options)
        out[label] = (tokens, read_reports(tmp / "reports"), log)
    return out


def read_reports(directory: Path, settle: float = 2.5) -> list[dict]:
    """Every process report in `directory`, after letting report threads flush."""
    time.sleep(settle)
    reports = []
    for path in sorted(glob.glob(str(directory / "*.json"))):
        with open(path) as fh:
            reports.append(json.load(fh))
    return reports


def report_with_title(reports: list[dict], needle: str) -> dict:
    found = [r for r in reports if needle in (r["process"]["title"] or "")]
    titles = [r["process"]["title"] for r in reports]
    assert found, f"no hotfuse report from a process titled *{needle}*; got {titles}"
    return found[0]
