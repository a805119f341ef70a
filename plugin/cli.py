"""The `hotfuse` command line.

  hotfuse status [--json] [--engine E] [--verbose] what each fusion would do in each installed engine
  hotfuse fusions [--markdown]                      the fusion registry
  hotfuse readme [--check]                          regenerate (or check) the README's generated tables
  hotfuse fingerprint WHEEL...                      adapter targets checked against engine wheels
  hotfuse matrix WHEEL... [--write PATH]            fusion states per engine release, from engine wheels
  hotfuse matrix --new [--no-download]              releases on PyPI that docs/compat-matrix.json does not cover
  hotfuse bench [--fusion F] [--out DIR]            GPU timings (CUDA graphs) vs roofline; CPU: correctness only
  hotfuse demo [--engine vllm|sglang] [--disable F] a real engine on a tiny model: fusions off, on, one disabled
  hotfuse verify [--json]                           every kernel vs its torch reference on this machine's device
  hotfuse --version

`status` runs the same decisions as the engine plugin (flags, adapters, target validation) in this
process without patching anything, for the engines installed next to hotfuse.
Exit codes: 0 fine; 1 a requested fusion could not be applied (drift, error, pending); 2 invalid flags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from hotfuse._version import __version__
from hotfuse.registry import ENGINES


def _status(args) -> int:
    from hotfuse.docs import retire_when
    from hotfuse.flags import parse_flags
    from hotfuse.report import state_dict
    from hotfuse.runtime import engine_version, plan_engine

    flags = parse_flags()
    engines = [args.engine] if args.engine else list(ENGINES)
    states = {e: plan_engine(e, flags, install=False) for e in engines if engine_version(e)}
    code = 2 if flags.error else (1 if any(s.failed for s in states.values()) else 0)
    if args.json:
        doc = {
            "hotfuse_version": __version__,
            "flags": {"raw": dict(flags.raw), "inert": flags.inert, "error": flags.error},
            "engines": {e: {**state_dict(s), "retire_when": retire_when(e)} for e, s in states.items()},
            "not_installed": [e for e in engines if e not in states],
            "exit_code": code,
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return code
    from hotfuse.docs import status_table

    print(status_table(flags, states, [e for e in engines if e not in states], verbose=args.verbose))
    return code


def _fusions(args) -> int:
    from hotfuse.docs import fusions_table

    print(fusions_table())
    return 0


def _readme(args) -> int:
    from hotfuse.docs import sync_readme

    changed = sync_readme(args.path, write=not args.check)
    if args.check and changed:
        print(f"{args.path} is out of date with the fusion registry: run `hotfuse readme`", file=sys.stderr)
        return 1
    print(f"{args.path}: {'updated' if changed else 'up to date'}")
    return 0


def _fingerprint(args) -> int:
    from hotfuse.compat import check_wheel, wheel_engine
    from hotfuse.registry import unsupported_reason

    bad = 0
    for path in args.wheels:
        engine, version = wheel_engine(path)
        unsupported = unsupported_reason(engine, version)
        if unsupported:
            print(f"{engine} {version}\tunsupported: {unsupported}")
            continue
        for row in check_wheel(path):
            if row.not_applicable:
                print(f"{engine} {version}\t{row.target}\t-\tnot applicable: {row.not_applicable}")
                continue
            mark = "validated" if row.validated else "NOT VALIDATED"
            bad += not row.validated
            print(f"{engine} {version}\t{row.target}\t{row.fingerprint}\t{mark}")
    return 1 if bad else 0


def _download_wheel(dist: str, version: str, directory: str) -> str:
    import glob
    import subprocess

    pattern = os.path.join(directory, f"{dist.replace('-', '_')}-{version}-*.whl")
    if not glob.glob(pattern):
        os.makedirs(directory, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"{dist}=={version}", "-d",
                        directory], check=True)
    return sorted(glob.glob(pattern))[0]


def _matrix(args) -> int:
    from hotfuse.compat import MATRIX_FILE, matrix_document, missing_releases, resolve_wheel, write_matrix
    from hotfuse.docs import render_matrix

    from hotfuse.flags import ENV_ALLOW_DRIFT, parse_flags

    if parse_flags().raw.get(ENV_ALLOW_DRIFT, "").strip() not in ("", "0"):
        print("note: HOTFUSE_ALLOW_DRIFT is ignored here: the matrix shows the states with validated fingerprints, "
              "as engines get them without it", file=sys.stderr)
    wheels = list(args.wheels)
    if args.new:
        with open(args.matrix, encoding="utf-8") as fh:
            committed = json.load(fh)
        missing = missing_releases(committed, args.index)
        if not missing:
            print(f"{args.matrix} covers every release on {args.index} from the oldest watched one on")
            return 0
        print(f"{len(missing)} release(s) on {args.index} that {args.matrix} does not cover: "
              + ", ".join(f"{d} {v}" for d, v in missing))
        if args.no_download:
            return 1
        wheels += [_download_wheel(dist, version, args.wheels_dir) for dist, version in missing]
    elif not wheels:
        print("hotfuse matrix: give engine wheels, or --new", file=sys.stderr)
        return 2
    if args.write:
        doc = write_matrix(wheels, args.write)
    else:
        doc = matrix_document([resolve_wheel(w) for w in wheels])
    print(render_matrix(doc))
    return 1 if args.new else 0


def _bench(args) -> int:
    from hotfuse.bench import BENCH_MODULES, run

    upstream = dict(item.split("=", 1) for item in args.upstream)
    fusions = args.fusion or list(BENCH_MODULES)
    doc = run(fusions, args.out, upstream, quick=args.quick, skip_variants=set(args.skip_variant))
    return 0 if all(c["ok"] for c in doc["checks"]) else 1


def _verify(args) -> int:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module defines its Triton functions
    from hotfuse.safety import verify

    rows = verify()
    failed = [r for r in rows if r["result"] == "FAILED"]
    if args.json:
        print(json.dumps({"hotfuse_version": __version__, "torch": torch.__version__, "device":
                          torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "rows": rows,
                          "ok": not failed}, indent=2))
        return 1 if failed else 0
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (Triton interpreter, small shapes)"
    print(f"hotfuse {__version__} verify on {device}, torch {torch.__version__}")
    print(f"{'fusion':<17} {'kernel':<31} {'dtype':<9} {'max error':>10} {'tolerance':>10}  result")
    for r in rows:
        if r["result"] == "skipped":
            print(f"{r['fusion']:<17} {r['kernel']:<31} {r['dtype']:<9} {'':>10} {'':>10}  skipped: {r['why']}")
            continue
        note = "" if r["kernel_ran"] else " (reference only: the kernel does not run here)"
        print(f"{r['fusion']:<17} {r['kernel']:<31} {r['dtype']:<9} {r['max_error']:>10.3g} {r['tolerance']:>10.3g}"
              f"  {r['result']}{note}")
    print(f"{len(rows) - len(failed)} of {len(rows)} rows passed or skipped" if not failed
          else f"{len(failed)} row(s) FAILED")
    return 1 if failed else 0


def _demo(args) -> int:
    from hotfuse.demo import render, run_demo

    doc = run_demo(args.engine, args.disable, max_tokens=args.max_tokens, sampled=args.sampled,
                   interpreter=False if args.no_interpreter else None, workdir=args.workdir)
    print(render(doc))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
    return 0 if doc["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    """The `hotfuse` command line (also what the README's commands are checked against)."""
    parser = argparse.ArgumentParser(prog="hotfuse", description="Fused kernels for SGLang and vLLM.")
    parser.add_argument("--version", action="version", version=f"hotfuse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("status", help="what each fusion does in each installed engine")
    p.add_argument("--json", action="store_true")
    p.add_argument("--engine", choices=ENGINES)
    p.add_argument("--verbose", action="store_true", help="also say, per patch, when it can be retired")
    p.set_defaults(func=_status)
    p = sub.add_parser("fusions", help="the fusion registry as a table")
    p.set_defaults(func=_fusions)
    p = sub.add_parser("readme", help="regenerate the README's tables from the registry")
    p.add_argument("--check", action="store_true", help="exit 1 if the README is out of date")
    p.add_argument("--path", default="README.md")
    p.set_defaults(func=_readme)
    p = sub.add_parser("fingerprint", help="check adapter targets against engine wheels")
    p.add_argument("wheels", nargs="+")
    p.set_defaults(func=_fingerprint)
    p = sub.add_parser("matrix", help="fusion states per engine release, read from engine wheels (no install)")
    p.add_argument("wheels", nargs="*")
    p.add_argument("--write", metavar="PATH", help="write the matrix JSON there (docs/compat-matrix.json)")
    p.add_argument("--new", action="store_true", help="ask the package index for releases the matrix file does not "
                   "cover, download their wheels and show their states (exit 1 when there are any)")
    p.add_argument("--no-download", action="store_true", help="with --new: only list the missing releases")
    p.add_argument("--matrix", default="docs/compat-matrix.json", help="with --new: the matrix file to compare with")
    p.add_argument("--index", default="https://pypi.org/simple", help="with --new: the package index (PEP 691 JSON)")
    p.add_argument("--wheels-dir", default=os.path.expanduser("~/.cache/hotfuse/wheels"),
                   help="with --new: where the missing releases' wheels are downloaded")
    p.set_defaults(func=_matrix)
    p = sub.add_parser("bench", help="time fused vs reference vs alternatives (GPU); correctness only on CPU")
    p.add_argument("--fusion", action="append", help="fusion to bench (repeatable; default: all with cases)")
    p.add_argument("--out", default="bench-out", help="directory for bench.json, bench.md, bench.png")
    p.add_argument("--upstream", action="append", default=[], metavar="NAME=PATH",
                   help="engine kernel source file to time side by side, e.g. sglang_sampler=.upstream/x.py")
    p.add_argument("--quick", action="store_true", help="small shapes only")
    p.add_argument("--skip-variant", action="append", default=[], metavar="NAME",
                   help="leave this variant untimed (repeatable), e.g. compile where inductor takes long")
    p.set_defaults(func=_bench)
    p = sub.add_parser("verify", help="every kernel against its torch reference on this machine's device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_verify)
    p = sub.add_parser("demo", help="run a real engine on an embedded tiny model with the fusions off, on, "
                       "and one disabled; print what hotfuse did")
    p.add_argument("--engine", choices=ENGINES, default="vllm")
    p.add_argument("--disable", metavar="FUSION", help="the fusion of the third run (HOTFUSE_DISABLE); default: "
                   "gemma4_router on vLLM, topk_postprocess on SGLang")
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--sampled", type=int, default=2, help="sampled requests per run after the greedy ones")
    p.add_argument("--no-interpreter", action="store_true",
                   help="on CPU, use the torch references instead of Triton's interpreter")
    p.add_argument("--workdir", help="where engine logs and reports go (default: a new temp dir)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
