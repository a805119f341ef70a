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
    expected = {f"hotfuse/{p.relative_to(ROOT / 'plugin')}" for pattern in ("*.py", "*.json")
                for p in (ROOT / "plugin").rglob(pattern)}
    expected |= {f"hotfuse/patches/{p.relative_to(ROOT / 'patches')}" for p in (ROOT / "patches").rglob("*.py")}
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("plugin/", "patches/", "tests/")) for n in names)
    meta = next(n for n in names if n.endswith("METADATA"))
    requires = [ln for ln in zipfile.ZipFile(wheel).read(meta).decode().splitlines() if ln.startswith("Requires-Dist")]
    assert [r for r in requires if "extra ==" not in r] == ["Requires-Dist: torch"]


def test_wheel_from_python_m_build_installs_into_a_clean_venv_with_only_its_dependencies(tmp_path):
    """`python -m build`, then a new venv with nothing but the wheel and what it declares (torch)."""
    dist = tmp_path / "dist"
    out = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (wheel,) = dist.glob("hotfuse-*.whl")
    assert "hotfuse/demo/configs/gemma4-moe-tiny.json" in zipfile.ZipFile(wheel).namelist()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "-c", str(ROOT / "ci" / "constraints.txt"), str(wheel)],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    check = subprocess.run([str(py), "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout
    from hotfuse._version import __version__

    version = subprocess.run([str(venv / "bin" / "hotfuse"), "--version"], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)
    assert version.stdout.strip() == f"hotfuse {__version__}"
    status = subprocess.run([str(venv / "bin" / "hotfuse"), "status", "--json"], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOTFUSE": "1"})
    doc = __import__("json").loads(status.stdout)
    assert doc["not_installed"] == ["sglang", "vllm"] and status.returncode == 0
    config = subprocess.run([str(py), "-c", "from hotfuse.demo.models import config_dict; "
                             "print(config_dict('mixtral-tiny')['model_type'])"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert config.stdout.strip() == "mixtral", config.stderr[-2000:]
