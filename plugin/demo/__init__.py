"""`hotfuse demo`: a real installed engine on an embedded tiny model, with the fusions off, on, and one disabled.

Each run is a fresh engine process tree (`hotfuse.demo.driver`) with its own HOTFUSE flags and a report
directory (`HOTFUSE_REPORT_DIR`), so the demo sees what hotfuse did inside every engine process (vLLM's
EngineCore / worker, SGLang's scheduler): fusion states, fused and fallback call counts. It then prints
one report: per run the flags, greedy throughput, whether the greedy tokens agree with the run without
hotfuse, and per process the state and counters of every fusion.

Greedy requests first (timed, compared across runs), then a few sampled requests (temperature 0.8, and Qwen3's
default top-k 20 / top-p 0.95 at temperature 0.6, so the sampler fusion has work on both of its paths; not
compared, sampling is random). On a machine without a CUDA GPU the Triton
kernels run in Triton's CPU interpreter (`TRITON_INTERPRET=1`, `--no-interpreter` to use the torch
references instead, counted as fallbacks): tokens per second there are CPU figures and say nothing about
GPU speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hotfuse.registry import FUSION_NAMES

ENGINE_MODELS = {"vllm": "gemma4-moe-tiny", "sglang": "mixtral-tiny"}
DEFAULT_DISABLE = {"vllm": "gemma4_router", "sglang": "topk_postprocess"}
HOTFUSE_VARS = ("HOTFUSE", "HOTFUSE_DISABLE", "HOTFUSE_ALLOW_DRIFT", "HOTFUSE_REPORT_DIR", "HOTFUSE_TEST_FAULTS")


@dataclass
class Run:
    label: str
    flags: dict[str, str]
    ok: bool = False
    tokens: list = field(default_factory=list)
    sampled: list = field(default_factory=list)
    startup_s: float = 0.0
    generate_s: float = 0.0
    generated_tokens: int = 0
    processes: list = field(default_factory=list)   # hotfuse reports of the engine processes
    log: str = ""
    error: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.generate_s if self.generate_s > 0 else 0.0

    def describe_flags(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.flags.items()) or "HOTFUSE unset"


class Progress:
    """One line of progress while an engine starts and generates (redrawn on a terminal, else every 20 s)."""

    def __init__(self, text: str, stream=sys.stderr):
        self.text, self.stream, self.start = text, stream, time.monotonic()
        self.tty = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        spin, i, last = "|/-\\", 0, 0.0
        while not self._stop.wait(0.25):
            elapsed = time.monotonic() - self.start
            if self.tty:
                self.stream.write(f"\r{spin[i % 4]} {self.text} {elapsed:5.0f} s")
                self.stream.flush()
                i += 1
            elif elapsed - last >= 20:
                last = elapsed
                print(f"  ... {self.text} {elapsed:.0f} s", file=self.stream, flush=True)

    def __enter__(self):
        if not self.tty:
            print(f"{self.text}", file=self.stream, flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        elapsed = time.monotonic() - self.start
        if self.tty:
            self.stream.write(f"\r{self.text} done in {elapsed:.0f} s\n")
        else:
            print(f"  done in {elapsed:.0f} s", file=self.stream, flush=True)


def _engine_env(base: dict[str, str], flags: dict[str, str], report_dir: Path, interpreter: bool) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in HOTFUSE_VARS}
    env.update(flags)
    env["HOTFUSE_REPORT_DIR"] = str(report_dir)
    env.setdefault("PYTHONWARNINGS", "ignore")
    if interpreter:
        env["TRITON_INTERPRET"] = "1"
    return env


def _read_reports(directory: Path, settle: float = 2.0) -> list[dict]:
    time.sleep(settle)  # report threads rewrite once a second; the driver also waits before shutdown
    reports = []
    for path in sorted(directory.glob("*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return reports


def run_engine(engine: str, model: Path, run: Run, workdir: Path, interpreter: bool, max_tokens: int,
               sampled: int, timeout: int) -> Run:
    report_dir = workdir / run.label / "reports"
    report_dir.mkdir(parents=True, exist_ok=True)
    env = _engine_env(dict(os.environ), run.flags, report_dir, interpreter)
    cmd = [sys.executable, "-m", "hotfuse.demo.driver", engine, str(model), "--load-format", "auto",
           "--max-tokens", str(max_tokens), "--sampled", str(sampled)]
    with Progress(f"[{run.label}] {engine} with {run.describe_flags()}: starting, generating"):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            out, rc = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out, rc = f"{exc.stdout or ''}{exc.stderr or ''}", None
    run.log = str(workdir / run.label / "engine.log")
    Path(run.log).write_text(out if isinstance(out, str) else out.decode(errors="replace"))
    line = next((ln for ln in out.splitlines() if ln.startswith("HOTFUSE_DRIVER_RESULT ")), None)
    if rc != 0 or line is None:
        run.error = f"engine run failed (exit {rc}); log: {run.log}"
        return run
    result = json.loads(line.split(" ", 1)[1])
    run.ok = True
    run.tokens, run.sampled = result["tokens"], result["sampled"]
    run.startup_s, run.generate_s = result["startup_s"], result["generate_s"]
    run.generated_tokens = result["generated_tokens"]
    run.processes = [r for r in _read_reports(report_dir) if r.get("engine") == engine]
    return run


def _cell(fusion: dict, counts: dict) -> str:
    fallbacks = sum(counts.get("fallbacks", {}).values())
    text = fusion["state"]
    if counts.get("fused") or fallbacks:
        text += f" {counts.get('fused', 0)}/{fallbacks}"
    return text


# Engine helper processes without a title of their own, by the module they run (their argv[0] under `python -m`)
HELPER_ROLES = {"vllm/model_executor/models/registry.py": "vLLM model inspection"}


def _title(report: dict) -> str:
    """The engine's process title (VLLM::Worker, sglang::scheduler, ...); 'main' for the driver itself; the role of
    an engine helper process that has no title (vLLM inspects the model's architecture in a subprocess)."""
    process = report.get("process") or {}
    title = process.get("title") or ""
    if "hotfuse.demo.driver" in title:
        return f"main (pid {process.get('pid')})"
    if title and not title.startswith("/"):
        return title
    program = ((process.get("argv") or [""])[0]).replace("\\", "/")
    role = next((name for path, name in HELPER_ROLES.items() if program.endswith(path)), None)
    return f"{role} (pid {process.get('pid')})" if role else f"pid {process.get('pid')}"


def render(doc: dict) -> str:
    lines = []
    device = doc["device"]
    lines.append(f"hotfuse {doc['hotfuse_version']} demo: {doc['engine']} {doc['engine_version']} on {device}, "
                 f"model {doc['model']} (random weights, {doc['model_path']})")
    if doc["interpreter"]:
        lines.append("Triton kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1).")
    unit = "tokens/s (CPU)" if device == "cpu" else "tokens/s"
    lines.append("")
    lines.append(f"{'run':<10} {'flags':<46} {unit:>15}  greedy tokens vs 'off'")
    for run in doc["runs"]:
        if not run["ok"]:
            lines.append(f"{run['label']:<10} {run['flags_text']:<46} {'failed':>15}  {run['error']}")
            continue
        agree = "-" if run["label"] == "off" else ("same" if run["agrees_with_off"] else "DIFFERENT")
        lines.append(f"{run['label']:<10} {run['flags_text']:<46} {run['tokens_per_s']:>15.1f}  {agree}")
    if doc["interpreter"]:
        lines.append("(Runs with HOTFUSE on execute the Triton kernels in the interpreter, slow by design: compare "
                     "throughput on a GPU only.)")
    lines.append("")
    lines.append("What hotfuse did in each engine process (state, then fused/fallback calls where any):")
    width = max(len(n) for n in FUSION_NAMES) + 2
    header = f"{'run':<10} {'process':<37}" + "".join(f"{n:<{max(width, 18)}}" for n in FUSION_NAMES)
    lines.append(header)
    for run in doc["runs"]:
        for proc in run["processes"]:
            cells = "".join(f"{_cell(proc['fusions'][n], proc['counters'].get(n, {})):<{max(width, 18)}}"
                            for n in FUSION_NAMES)
            lines.append(f"{run['label']:<10} {proc['title'][:36]:<37}{cells}")
    lines.append("")
    fallback_reasons = {}
    for run in doc["runs"]:
        for proc in run["processes"]:
            for name, counts in proc["counters"].items():
                for reason, n in counts.get("fallbacks", {}).items():
                    fallback_reasons.setdefault((run["label"], name, reason), 0)
                    fallback_reasons[(run["label"], name, reason)] += n
    if fallback_reasons:
        lines.append("Fallbacks by reason:")
        for (label, name, reason), n in sorted(fallback_reasons.items()):
            lines.append(f"  {label}: {name}: {reason} ({n})")
        lines.append("")
    lines.append(f"Verdict: {doc['verdict']}")
    return "\n".join(lines)


def run_demo(engine: str = "vllm", disable: str | None = None, max_tokens: int = 8, sampled: int = 2,
             interpreter: bool | None = None, workdir: str | None = None, timeout: int = 600) -> dict:
    from hotfuse._version import __version__
    from hotfuse.demo.models import ensure_model
    from hotfuse.runtime import engine_version

    version = engine_version(engine)
    if version is None:
        raise SystemExit(f"hotfuse demo: {engine} is not installed in this Python environment ({sys.executable})")
    disable = disable or DEFAULT_DISABLE[engine]
    if disable not in FUSION_NAMES:
        raise SystemExit(f"hotfuse demo: unknown fusion {disable!r}; valid: {', '.join(FUSION_NAMES)}")
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if interpreter is None:
        interpreter = device == "cpu"
    model_name = ENGINE_MODELS[engine]
    with Progress(f"making the tiny {model_name} model (first use only)"):
        model = ensure_model(model_name)
    work = Path(workdir or tempfile.mkdtemp(prefix="hotfuse-demo-"))
    runs = [Run("off", {}), Run("on", {"HOTFUSE": "1"}),
            Run("disabled", {"HOTFUSE": "1", "HOTFUSE_DISABLE": disable})]
    for run in runs:
        run_engine(engine, model, run, work, interpreter, max_tokens, sampled, timeout)
    off = runs[0]
    doc_runs = []
    for run in runs:
        doc_runs.append({
            "label": run.label, "flags": run.flags, "flags_text": run.describe_flags(), "ok": run.ok,
            "error": run.error, "log": run.log, "tokens": run.tokens, "sampled": run.sampled,
            "startup_s": run.startup_s, "generate_s": run.generate_s, "tokens_per_s": run.tokens_per_s,
            "agrees_with_off": run.ok and off.ok and run.tokens == off.tokens,
            "processes": [{"title": _title(p), "pid": p["process"]["pid"], "fusions": p["fusions"],
                           "counters": p["counters"], "patches": p["patches"]} for p in run.processes],
        })
    problems = [f"{r['label']} run failed" for r in doc_runs if not r["ok"]]
    problems += [f"{r['label']} greedy tokens differ from 'off'" for r in doc_runs[1:] if r["ok"] and off.ok
                 and not r["agrees_with_off"]]
    on = doc_runs[1]
    if on["ok"] and not any(p["patches"] for p in on["processes"]):
        problems.append("no engine process reported a hotfuse patch with HOTFUSE=1")
    doc = {
        "hotfuse_version": __version__, "engine": engine, "engine_version": version, "device": device,
        "model": model_name, "model_path": str(model), "interpreter": interpreter, "disabled_fusion": disable,
        "workdir": str(work), "runs": doc_runs, "ok": not problems,
        "verdict": "; ".join(problems) if problems else
        "all runs generated; greedy tokens identical with hotfuse off, on, and with "
        f"{disable} disabled",
    }
    return doc
