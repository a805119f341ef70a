#!/usr/bin/env python3
"""Build a small folder of wheels that brings FlashInfer's sampling kernels to the GPU machine.

What it is for
--------------
hotfuse's sampler is benchmarked against FlashInfer's sampling kernels
(``flashinfer.sampling.top_k_top_p_sampling_from_logits``, ``top_k_top_p_sampling_from_probs``,
``min_p_sampling_from_probs``, ``top_k_renorm_probs``, ``top_p_renorm_probs``,
``top_p_sampling_from_probs``, ``top_k_sampling_from_probs``, ``sampling_from_logits``) on the
GPU machine, which has torch, Triton and nvcc but no network and no package index. Everything
carried there travels with the working tree, at most 64 MiB in all, while the flashinfer-python
wheel alone is about 100 MB (about 700 MB unpacked). This script downloads the pinned wheel and
writes a trimmed copy of it that keeps:

* the whole Python package (every module, so ``import flashinfer`` and ``import
  flashinfer.sampling`` run unchanged) and its small data files (JSON tables and the like), but
  none of the C++/CUDA sources and headers of the other features' JIT modules;
* from ``flashinfer/data/`` only the files that the ``sampling`` JIT module needs, plus those of
  the ``topk`` JIT module, which ``top_k_top_p_sampling_from_{logits,probs}`` use for their
  default ``filter_apply_order="top_k_first"`` fast path (vocabulary >= 65536, k <= 256): the
  sources named in ``flashinfer/jit/sampling.py`` and ``flashinfer/jit/topk.py``, and every header
  their ``#include``s reach, transitively, in FlashInfer's own headers and the vendored
  CCCL/CUTLASS/spdlog copies, resolved in the compiler's include order. Conditional includes are
  followed too (whatever the ``#if`` around them), so the set is a superset of what one
  configuration needs;
* the dist-info, with RECORD rewritten to list exactly the kept files (sha256 and size).

It also downloads, unchanged, the dependency wheels that the GPU machine lacks and that
``import flashinfer.sampling`` and the sampling JIT build/load need (for 0.7.4 only
``apache-tvm-ffi``: the JIT builder imports ``tvm_ffi``, compiles against its headers and loads
the module through it). The other Requires-Dist entries are either on the GPU machine already
(see ``ON_GPU_MACHINE``) or used only by other FlashInfer features and not imported on this path
(see ``NOT_CARRIED``); both tables were checked for 0.7.4 by reading the code and by importing
with those packages absent.

Usage, here (needs pip and the package index; no GPU)::

    python ci/trim_flashinfer_wheel.py .whl/flashinfer [--version 0.7.4]

OUT_DIR is emptied of ``*.whl`` first (pip refuses two versions of one package). The script prints
each wheel with its size and the total, and fails if the total is over 60 MiB (the transfer to
the GPU machine is at most 64 MiB, working tree included).

On the GPU machine: name the folder in the device tool's ``carry`` (``.whl/`` is git-ignored,
so it travels only when carried) and begin the command with::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/flashinfer/*.whl && export PYTHONPATH=/tmp/site

FlashInfer ships no compiled kernels: the first call of a sampling function JIT-compiles the
``sampling`` module (and the ``topk`` module, for the fast path above) with the machine's nvcc
and ninja, for the GPU's architecture (sm_90a on an H200), and caches the shared objects under
``$FLASHINFER_WORKSPACE_BASE/.cache/flashinfer/<version>/<arch>/cached_ops/`` (the base defaults
to ``$HOME``). That first call takes a minute or more: each module's .cu files compile in
parallel, one core each; on a 2-core CPU machine here the ``sampling`` module took about 3.5
minutes and the ``topk`` module about 21, its ``cub_topk.cu`` alone 14 minutes on one core, which
may not fit in one 10-minute device call (see ``--aot-dir`` below; ``FLASHINFER_JIT_VERBOSE=1``
shows the nvcc lines).
Later calls on the same machine load the cached .so; a fresh machine starts with an empty cache,
so warm up (call each function once) before timing anything. ``FLASHINFER_CUDA_ARCH_LIST=9.0a``
pins the target architecture instead of probing the GPU. If that first build fails:

* the toolkit root is taken from ``which nvcc``; if nvcc is a wrapper outside it (as on the CPU
  machines here: ``/usr/local/bin/nvcc``), set ``CUDA_HOME=/usr/local/cuda``;
* ``curand.h: No such file``: the toolkit has no cuRAND headers; torch's nvidia-curand wheel has
  them (``python3 -c 'import nvidia; print(list(nvidia.__path__)[0])'`` gives NV)::

      export FLASHINFER_EXTRA_CUDAFLAGS="-isystem NV/cu13/include"

* ``cannot find -lcuda`` at the link: point ``FLASHINFER_EXTRA_LDFLAGS=-L<dir>`` at a folder
  holding ``libcuda.so`` (the toolkit's ``lib64/stubs``, or a link named ``libcuda.so`` to the
  driver's ``libcuda.so.1``).

Optional, prebuilt modules (``--aot-dir DIR``): FlashInfer loads
``flashinfer/data/aot/<name>/<name>.so`` when it exists and then compiles nothing. ``--aot-dir``
puts ``DIR/sampling/sampling.so`` and ``DIR/topk/topk.so`` there (about 10 MiB more, compressed; a module
not built in DIR is left out and JIT-compiles there on first use: ``sampling`` alone takes about 3.5 minutes
here, and is all that calls with a per-row ``top_k`` tensor and no ``top_k_max`` need),
DIR being FlashInfer's JIT folder ``cached_ops`` after building the two modules for sm_90a on a
CPU machine, in a Python with torch and the trimmed wheel installed. The three fixes above were
all needed on the CPU machines here: CURAND is a folder with CUDA 13.0's cuRAND headers (the
``nvidia/cu13/include`` of the nvidia-curand==10.4.0.35 wheel), and /tmp/stub holds an empty
``libcuda.so`` (the modules do not end up linked to it)::

    FLASHINFER_CUDA_ARCH_LIST=9.0a FLASHINFER_WORKSPACE_BASE=/tmp/fiws CUDA_HOME=/usr/local/cuda \
    FLASHINFER_EXTRA_CUDAFLAGS="-isystem CURAND" FLASHINFER_EXTRA_LDFLAGS=-L/tmp/stub \
    python -c "from flashinfer.jit import build_jit_specs as b; \
    from flashinfer.jit.sampling import gen_sampling_module as s; \
    from flashinfer.jit.topk import gen_topk_module as t; b([s(), t()])"
    python ci/trim_flashinfer_wheel.py .whl/flashinfer \
        --aot-dir /tmp/fiws/.cache/flashinfer/0.7.4/90a/cached_ops

That build took about 25 minutes on 2 cores. The modules need only libcudart.so.13 (loaded by
torch there), libstdc++ and glibc 2.34 or newer.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

DEFAULT_VERSION = "0.7.4"
MAX_TOTAL_MIB = 60.0

# Dependency wheels to carry, pinned per FlashInfer version (an unlisted version takes the
# specifier from the wheel's own Requires-Dist). Only what `import flashinfer.sampling` and the
# sampling/topk JIT build and load need, and the GPU machine lacks.
CARRIED_DEPS = ["apache-tvm-ffi"]
DEP_PINS = {"0.7.4": {"apache-tvm-ffi": "==0.1.15.post2"}}

# Requires-Dist entries that the GPU machine has already (KINDS.md, "Python packages already
# there"). cuda-python is a meta-package with no code of its own; the machine has what it pulls
# in (cuda-bindings, cuda-core, cuda-pathfinder), which is what FlashInfer imports.
ON_GPU_MACHINE = {
    "click", "einops", "ninja", "numpy", "nvidia-ml-py", "packaging", "requests", "tabulate",
    "torch", "tqdm", "cuda-python",
}
# Requires-Dist entries that the GPU machine lacks but that this path does not import.
NOT_CARRIED = {
    "cuda-tile": "cuTile kernels of other features; imported lazily, not by flashinfer.sampling",
    "nccl-extensions": "communication kernels only; imported lazily (22 MB wheel)",
    "nccl4py": "communication kernels only; imported lazily",
    "nvidia-cudnn-frontend": "cuDNN attention/GEMM backends only; imported lazily (12 MB wheel)",
    "nvidia-cutlass-dsl": "CuTe-DSL kernels only; its libs are hundreds of MB; "
    "flashinfer's own imports of it are optional (ImportError suppressed)",
}

# Download options for the GPU machine's Python (3.12, x86-64), as in the device tool's notes.
PLATFORM_ARGS = [
    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_27_x86_64",
    "--platform", "manylinux_2_24_x86_64", "--platform", "manylinux_2_17_x86_64",
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64",
]

# The JIT spec modules whose CUDA sources are kept; their `FLASHINFER_CSRC_DIR / "x.cu"` entries
# are read from the wheel.
JIT_SPEC_FILES = ["flashinfer/jit/sampling.py", "flashinfer/jit/topk.py"]
JIT_SOURCE_RE = re.compile(r'FLASHINFER_CSRC_DIR\s*/\s*"([^"]+)"')
# The modules --aot-dir takes, and where FlashInfer looks for them (flashinfer/jit/env.py,
# FLASHINFER_AOT_DIR / name / f"{name}.so").
AOT_MODULES = ["sampling", "topk"]
AOT_PREFIX = "flashinfer/data/aot"

DATA = "flashinfer/data"
# Include search order of FlashInfer's JIT builds (flashinfer/jit/cpp_ext.py,
# build_common_cflags): the vendored CCCL with -I, then -isystem: Python's and CUDA's include
# dirs and tvm-ffi's (not in this wheel), then these. The first directory holding a name wins.
INCLUDE_DIRS = [
    f"{DATA}/cccl/cub",
    f"{DATA}/cccl/libcudacxx/include",
    f"{DATA}/cccl/thrust",
    f"{DATA}/include",
    f"{DATA}/csrc",
    f"{DATA}/cutlass/include",
    f"{DATA}/cutlass/tools/util/include",
    f"{DATA}/spdlog/include",
]
# Headers the CUDA toolkit's own headers include (cuda_fp16.h, cuda_bf16.h, cuda_fp8.hpp,
# cooperative_groups.h, cuda_awbarrier_helpers.h): with the vendored CCCL first on the include
# path these resolve to it, so they are kept as roots too.
TOOLKIT_INCLUDED = ["nv/target", "cuda/atomic"]

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include(_next)?[ \t]*(?:([<"])([^>"]+)[>"]|(\S.*))', re.M)
# Includes through a macro, in the headers that the closure reaches: each maps to every name it
# can expand to (CUTLASS's CUDA_STD_HEADER; Thrust's device and host system headers, for each
# system it can be configured with), so all of them are kept.
MACRO_INCLUDES = [
    (re.compile(r"CUDA_STD_HEADER\(\s*([\w./]+)\s*\)"), ["cuda/std/{0}", "{0}"]),
    (re.compile(r"__THRUST_DEVICE_SYSTEM_ALGORITH_DETAIL_HEADER_INCLUDE\(\s*([\w./]+)\s*\)"),
     [f"thrust/system/{s}/detail/{{0}}" for s in ("cuda", "omp", "tbb", "cpp")]),
    (re.compile(r"__THRUST_HOST_SYSTEM_ALGORITH_DETAIL_HEADER_INCLUDE\(\s*([\w./]+)\s*\)"),
     [f"thrust/system/{s}/detail/{{0}}" for s in ("cpp", "omp", "tbb")]),
]
SOURCE_SUFFIXES = {".cu", ".cuh", ".h", ".hpp", ".hh", ".c", ".cc", ".cpp", ".cxx", ".inl", ".inc",
                   ".tcc", ".ipp"}


def log(msg: str) -> None:
    print(msg, flush=True)


def pip_download(spec: str, dest: Path, platform: bool) -> Path:
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-d", str(dest), spec]
    if platform:
        cmd[4:4] = PLATFORM_ARGS
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True)
    name = re.split(r"[<>=!~;\s]", spec, maxsplit=1)[0]
    norm = re.sub(r"[-_.]+", "_", name).lower()
    found = [p for p in dest.glob("*.whl") if p.name.lower().startswith(norm + "-")]
    new = [p for p in found if p not in before] or found
    if not new:
        raise SystemExit(f"pip download left no wheel for {spec} in {dest}")
    # A download dir reused across versions can hold several; take the newest file.
    return max(new, key=lambda p: p.stat().st_mtime)


def requires_dist(metadata: str) -> dict[str, str]:
    """Name -> full requirement line, for the non-extra Requires-Dist entries."""
    out = {}
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        if "extra ==" in req:
            continue
        name = re.split(r"[<>=!~;\[\s(]", req, maxsplit=1)[0]
        out[re.sub(r"[-_.]+", "-", name).lower()] = req
    return out


def check_spec(name: str, version: str, requirement: str) -> None:
    try:
        from packaging.requirements import Requirement
    except ImportError:
        log(f"  (packaging not importable: not checking {name} {version} against {requirement!r})")
        return
    if not Requirement(requirement).specifier.contains(version, prereleases=True):
        raise SystemExit(f"{name} {version} does not satisfy flashinfer's {requirement!r}")


class IncludeClosure:
    """Files under flashinfer/data that the given sources reach through #include."""

    def __init__(self, names: set[str], read):
        self.names = names
        self.read = read
        self.kept: set[str] = set()
        self.unresolved_macros: dict[str, set[str]] = {}

    def resolve(self, target: str, quoted: bool, includer: str, include_next: bool) -> list[str]:
        dirs = list(INCLUDE_DIRS)
        if quoted:
            dirs.insert(0, str(PurePosixPath(includer).parent))
        hits = []
        for d in dirs:
            cand = str(PurePosixPath(d) / target)
            # normalise "a/../b" without touching the file system
            parts: list[str] = []
            for part in cand.split("/"):
                if part == "..":
                    if parts:
                        parts.pop()
                elif part not in ("", "."):
                    parts.append(part)
            cand = "/".join(parts)
            if cand in self.names:
                hits.append(cand)
                if not include_next:
                    break
        # #include_next continues the search after the includer's own directory: keep every
        # match (a superset), which is the conservative reading.
        return hits

    def add(self, path: str) -> None:
        stack = [path]
        while stack:
            cur = stack.pop()
            if cur in self.kept:
                continue
            self.kept.add(cur)
            text = self.read(cur).decode("utf-8", "replace")
            for m in INCLUDE_RE.finditer(text):
                include_next = bool(m.group(1))
                if m.group(3) is not None:
                    targets = [(m.group(3).strip(), m.group(2) == '"')]
                else:
                    expr = m.group(4).split("//")[0].strip()
                    targets = []
                    for macro_re, templates in MACRO_INCLUDES:
                        macro = macro_re.search(expr)
                        if macro:
                            targets = [(t.format(macro.group(1)), False) for t in templates]
                            break
                    if not targets:
                        self.unresolved_macros.setdefault(expr, set()).add(cur)
                        continue
                for target, quoted in targets:
                    stack.extend(self.resolve(target, quoted, cur, include_next))

    def add_name(self, target: str) -> None:
        for hit in self.resolve(target, False, DATA, False):
            self.add(hit)


def keep_outside_data(name: str) -> bool:
    """Python package files: everything but C/C++/CUDA sources and headers."""
    if name.endswith("/"):
        return False
    return PurePosixPath(name).suffix.lower() not in SOURCE_SUFFIXES


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def trim_wheel(src: Path, dest: Path, aot: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(src) as zin:
        infos = {i.filename: i for i in zin.infolist() if not i.filename.endswith("/")}
        names = set(infos)
        tops = {n.split("/", 1)[0] for n in names}
        dist_info = sorted(t for t in tops if t.endswith(".dist-info"))
        if len(dist_info) != 1:
            raise SystemExit(f"{src.name}: expected one .dist-info, found {dist_info}")
        dist_info = dist_info[0]
        record_name = f"{dist_info}/RECORD"

        keep: set[str] = set()
        for n in names:
            if n.startswith(dist_info + "/"):
                if n != record_name:
                    keep.add(n)
            elif n.startswith(DATA + "/"):
                # Python files at the top of data/ (build helpers); the rest is chosen below.
                if "/" not in n[len(DATA) + 1:] and n.endswith(".py"):
                    keep.add(n)
            elif keep_outside_data(n):
                keep.add(n)

        closure = IncludeClosure(names, zin.read)
        roots = []
        for spec_file in JIT_SPEC_FILES:
            if spec_file not in names:
                raise SystemExit(f"{src.name} has no {spec_file}: check JIT_SPEC_FILES")
            found = JIT_SOURCE_RE.findall(zin.read(spec_file).decode())
            if not found:
                raise SystemExit(f"no FLASHINFER_CSRC_DIR sources found in {spec_file}")
            roots += [f"{DATA}/csrc/{s}" for s in found]
        for root in roots:
            if root not in names:
                raise SystemExit(f"{src.name} lacks JIT source {root}")
            closure.add(root)
        for target in TOOLKIT_INCLUDED:
            closure.add_name(target)
        # Licenses of the third-party trees the closure reaches into.
        for tree in ("cccl", "cutlass", "spdlog"):
            if any(k.startswith(f"{DATA}/{tree}/") for k in closure.kept):
                keep |= {n for n in names if n.startswith(f"{DATA}/{tree}/")
                         and "/" not in n[len(f"{DATA}/{tree}/"):]
                         and re.match(r"(LICENSE|NOTICE|COPYING)", n.rsplit("/", 1)[1], re.I)}
        keep |= closure.kept

        for expr, where in sorted(closure.unresolved_macros.items()):
            log(f"  note: macro include {expr!r} not followed (in {len(where)} kept file(s), "
                f"e.g. {sorted(where)[0]})")

        order = [n for n in (i.filename for i in zin.infolist()) if n in keep]
        rows = []
        with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
            for n in order:
                data = zin.read(n)
                info = zipfile.ZipInfo(n, date_time=infos[n].date_time)
                info.external_attr = infos[n].external_attr
                info.compress_type = zipfile.ZIP_DEFLATED
                zout.writestr(info, data, compresslevel=9)
                rows.append(f"{n},{record_hash(data)},{len(data)}")
            for name, data in sorted((aot or {}).items()):
                arc = f"{AOT_PREFIX}/{name}/{name}.so"
                info = zipfile.ZipInfo(arc, date_time=infos[record_name].date_time)
                info.external_attr = 0o100755 << 16
                zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
                rows.append(f"{arc},{record_hash(data)},{len(data)}")
            rows.append(f"{record_name},,")
            info = zipfile.ZipInfo(record_name, date_time=infos[record_name].date_time)
            info.external_attr = infos[record_name].external_attr
            zout.writestr(info, "\n".join(rows) + "\n", compress_type=zipfile.ZIP_DEFLATED)

        data_kept = sorted(k for k in keep if k.startswith(DATA + "/"))
        by_tree: dict[str, int] = {}
        for k in data_kept:
            tree = k[len(DATA) + 1:].split("/", 1)[0]
            by_tree[tree] = by_tree.get(tree, 0) + 1
        log(f"  kept {len(keep)} of {len(names)} files "
            f"({sum(infos[k].file_size for k in keep) / 2**20:.1f} of "
            f"{sum(i.file_size for i in infos.values()) / 2**20:.1f} MiB unpacked); "
            f"JIT sources {', '.join(r.rsplit('/', 1)[1] for r in roots)}; "
            f"from data/: {', '.join(f'{t} {c}' for t, c in sorted(by_tree.items()))}")


def verify_wheel(path: Path) -> None:
    """Re-read the written wheel: every RECORD row matches its file, and nothing is unlisted."""
    with zipfile.ZipFile(path) as z:
        if z.testzip() is not None:
            raise SystemExit(f"{path.name}: corrupt zip")
        record = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
        rows = z.read(record[0]).decode().splitlines()
        listed = set()
        for row in rows:
            name, digest, size = row.rsplit(",", 2)
            listed.add(name)
            if name == record[0]:
                continue
            data = z.read(name)
            if record_hash(data) != digest or int(size) != len(data):
                raise SystemExit(f"{path.name}: RECORD mismatch for {name}")
        if listed != set(z.namelist()):
            raise SystemExit(f"{path.name}: RECORD and archive differ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path, help="folder for the wheels (its *.whl are replaced)")
    ap.add_argument("--version", default=DEFAULT_VERSION, help="flashinfer-python version")
    ap.add_argument("--download-dir", type=Path, default=None,
                    help="keep downloaded wheels here (default: a temporary folder)")
    ap.add_argument("--wheel", type=Path, default=None,
                    help="use this flashinfer-python wheel instead of downloading it")
    ap.add_argument("--aot-dir", type=Path, default=None,
                    help="also add prebuilt DIR/{sampling,topk}/*.so (those built) as flashinfer/data/aot/ "
                    "modules (see the docstring)")
    args = ap.parse_args()

    aot = {}
    if args.aot_dir is not None:
        for name in AOT_MODULES:
            so = args.aot_dir / name / f"{name}.so"
            if not so.is_file():  # that module then JIT-compiles on first use there
                log(f"prebuilt {name}: none ({so} is missing)")
                continue
            ninja = so.parent / "build.ninja"
            gencode = []
            if ninja.is_file():
                gencode = sorted(set(re.findall(r"-gencode=\S+", ninja.read_text())))
            log(f"prebuilt {name}: {so} ({so.stat().st_size / 2**20:.1f} MiB; "
                f"{' '.join(gencode) or 'no build.ninja beside it: targets unknown'})")
            if gencode and not any("sm_90a" in g for g in gencode):
                raise SystemExit(f"--aot-dir: {so} was not built for sm_90a")
            aot[name] = so.read_bytes()
        if not aot:
            raise SystemExit(f"--aot-dir: none of {', '.join(AOT_MODULES)} was built in {args.aot_dir}")

    tmp = tempfile.TemporaryDirectory(prefix="trim-flashinfer-")
    dl = args.download_dir or Path(tmp.name)
    dl.mkdir(parents=True, exist_ok=True)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    src = args.wheel or pip_download(f"flashinfer-python=={args.version}", dl, platform=False)
    if f"-{args.version}-" not in src.name:
        raise SystemExit(f"{src.name} is not flashinfer-python {args.version}")
    with zipfile.ZipFile(src) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        reqs = requires_dist(z.read(meta_name).decode())

    log(f"flashinfer-python {args.version} Requires-Dist:")
    for name, req in sorted(reqs.items()):
        if name in CARRIED_DEPS:
            why = "carried"
        elif name in ON_GPU_MACHINE:
            why = "on the GPU machine"
        elif name in NOT_CARRIED:
            why = "left out: " + NOT_CARRIED[name]
        else:
            why = "UNKNOWN: not classified; check whether the import needs it"
        log(f"  {req:45s} {why}")
    unknown = [n for n in reqs if n not in CARRIED_DEPS and n not in ON_GPU_MACHINE
               and n not in NOT_CARRIED]
    if unknown:
        log(f"error: Requires-Dist not classified: {', '.join(sorted(unknown))}; add each to "
            "CARRIED_DEPS, ON_GPU_MACHINE or NOT_CARRIED after checking the import")
        return 1

    wheels: list[Path] = []
    trimmed = out / src.name
    staging = Path(tmp.name) / ("trimmed-" + src.name)
    log(f"trimming {src.name} ({src.stat().st_size / 2**20:.1f} MiB)")
    trim_wheel(src, staging, aot)
    verify_wheel(staging)

    dep_files = []
    pins = DEP_PINS.get(args.version, {})
    for name in CARRIED_DEPS:
        if name not in reqs:
            raise SystemExit(f"flashinfer-python {args.version} no longer requires {name}: "
                             "review CARRIED_DEPS")
        requirement = reqs[name].split(";")[0]
        spec = name + pins[name] if name in pins else requirement
        whl = pip_download(spec, dl, platform=True)
        version = whl.name.split("-")[1]
        check_spec(name, version, requirement)
        dep_files.append(whl)

    for old in out.glob("*.whl"):
        old.unlink()
    shutil.copy2(staging, trimmed)
    wheels.append(trimmed)
    for whl in dep_files:
        shutil.copy2(whl, out / whl.name)
        wheels.append(out / whl.name)

    total = 0
    log(f"wheels in {out}:")
    for w in sorted(wheels):
        size = w.stat().st_size
        total += size
        log(f"  {size / 2**20:8.2f} MiB  {w.name}")
    log(f"  {total / 2**20:8.2f} MiB  total ({total} bytes)")
    if total > MAX_TOTAL_MIB * 2**20:
        log(f"error: {total / 2**20:.2f} MiB is over the {MAX_TOTAL_MIB:.0f} MiB limit")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
