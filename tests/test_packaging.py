"""`pip install .` ships the core as `hotfuse` and the adapters as `hotfuse.patches` (package-dir mapping)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_core_and_adapters_under_hotfuse(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT), "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("hotfuse-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"hotfuse/{p.relative_to(ROOT / 'plugin')}" for p in (ROOT / "plugin").rglob("*.py")}
    expected |= {f"hotfuse/patches/{p.relative_to(ROOT / 'patches')}" for p in (ROOT / "patches").rglob("*.py")}
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("plugin/", "patches/", "tests/")) for n in names)
    meta = next(n for n in names if n.endswith("METADATA"))
    requires = [ln for ln in zipfile.ZipFile(wheel).read(meta).decode().splitlines() if ln.startswith("Requires-Dist")]
    assert [r for r in requires if "extra ==" not in r] == ["Requires-Dist: torch"]
