"""Installs an import overlay: engine releases (and their pinned companions) in a folder of their own, which a test
puts first on PYTHONPATH to import the real modules of that release in front of the venv's installed one.

    python ci/overlay.py DEST SPEC [--sources-only]

SPEC is a requirements file (one pinned release a line). Default: `pip install --no-deps --target DEST`.
--sources-only: only the wheels' Python sources, JSON data and dist-info are unpacked (vLLM's CUDA wheel is 480 MB
unpacked, 68 MB of it Python; its compiled CUDA extensions could not load on a CPU machine anyway).
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile
import zipfile

KEEP = (".py", ".json", ".pyi")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dest")
    parser.add_argument("spec")
    parser.add_argument("--sources-only", action="store_true")
    args = parser.parse_args()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    if not args.sources_only:
        return subprocess.call(pip + ["install", "--no-deps", "--target", args.dest, "-r", args.spec])
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call(pip + ["download", "--no-deps", "-d", tmp, "-r", args.spec])
        for wheel in sorted(pathlib.Path(tmp).glob("*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                members = [n for n in zf.namelist() if n.endswith(KEEP) or ".dist-info/" in n]
                zf.extractall(args.dest, members)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
