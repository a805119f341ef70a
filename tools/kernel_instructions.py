"""Registers, spills and instructions per loop iteration of hotfuse's Triton kernels compiled for an NVIDIA GPU, on a
machine without one: the counting passes and races of filtered sampling are limited by the instructions they issue
per token (docs/experiments/2026-12-08-instruction-counts.md), which this measures before a GPU times them.

    python3 tools/kernel_instructions.py search_pass_first_vllm race_window settle [--set search_bins=128]
        [--capability 9.0] [--lines 6]

(with hotfuse importable, from the repository's root: the cases are tests/kernels/compile_targets.py's, compiled as
the launch code compiles them on a GPU of that capability, with the plan.Tuning fields of --set). For each case:
ptxas -v's registers and spill bytes, and from nvdisasm (both ship with Triton) each loop of the SASS (a branch
back to a label) with its instruction count and the source lines that take the most of them.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import replace

INSTRUCTION = re.compile(r"^\s+/\*[0-9a-f]{4,}\*/\s+(\S.*?)\s*;")
SOURCE = re.compile(r'//## File "([^"]+)", line (\d+)')
LABEL = re.compile(r"^(\.L_x_\d+):")
BRANCH = re.compile(r"BRA\s+`?\(?(\.L_x_\d+)")


def loops(sass: str) -> list[tuple[str, int, Counter]]:
    """(label, instructions, Counter of 'file:line' -> instructions) of each loop: from a label to a branch back to
    it."""
    labels, found = {}, []
    source, body = "?", []  # body: the source line of every instruction so far
    for line in sass.splitlines():
        if m := SOURCE.search(line):
            source = f"{os.path.basename(m.group(1))}:{m.group(2)}"
        elif m := LABEL.match(line):
            labels[m.group(1)] = len(body)
        elif m := INSTRUCTION.match(line):
            body.append(source)
            target = BRANCH.search(m.group(1))
            if target and target.group(1) in labels:
                lines = body[labels[target.group(1)]:]
                found.append((target.group(1), len(lines), Counter(lines)))
    return found


def nvdisasm() -> str:
    import triton
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "nvdisasm")
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: this Triton does not ship nvdisasm")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--set", nargs="*", default=[], help="tuning fields (plan.Tuning), as name=python-literal")
    parser.add_argument("--capability", default="9.0")
    parser.add_argument("--lines", type=int, default=6, help="source lines shown per loop")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kernels"))
    import compile_targets
    from triton.backends.nvidia.compiler import get_ptxas
    compile_targets.DEFAULT_TUNING = replace(compile_targets.DEFAULT_TUNING, **{
        name: ast.literal_eval(value) for name, value in (field.split("=", 1) for field in args.set)})
    capability = tuple(int(part) for part in args.capability.split("."))
    _flags, cases = compile_targets.cases_for(capability)
    arch = f"sm_{capability[0]}{capability[1]}{'a' if capability[0] >= 9 else ''}"
    for name in args.cases:
        if name not in cases:
            raise SystemExit(f"no case {name!r}; the cases: {sorted(cases)}")
        kernel, signature, constants, options = cases[name]
        compiled = compile_targets.compile_for(kernel, signature, constants, capability, **options)
        with tempfile.TemporaryDirectory() as folder:
            ptx, cubin = os.path.join(folder, "k.ptx"), os.path.join(folder, "k.cubin")
            with open(ptx, "w") as f:
                f.write(compiled.asm["ptx"])
            with open(cubin, "wb") as f:
                f.write(compiled.asm["cubin"])
            ptxas = get_ptxas(capability[0] * 10 + capability[1]).path  # the one Triton compiled with
            usage = subprocess.run([ptxas, "-v", f"--gpu-name={arch}", ptx, "-o", os.devnull], capture_output=True,
                                   text=True).stderr
            sass = subprocess.run([nvdisasm(), "-c", "-gi", cubin], capture_output=True, text=True).stdout
        registers = re.search(r"Used (\d+) registers", usage)
        spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", usage)
        total = sum(1 for line in sass.splitlines() if INSTRUCTION.match(line))
        print(f"{name} ({arch}, {' '.join(args.set) or 'default tuning'}): "
              f"{registers.group(1) if registers else '?'} registers, spill stores/loads {'/'.join(spills) or '?'} "
              f"bytes, {total} instructions")
        for label, count, sources in loops(sass):
            top = ", ".join(f"{source} {n}" for source, n in sources.most_common(args.lines))
            print(f"  loop {label}: {count} instructions; {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
