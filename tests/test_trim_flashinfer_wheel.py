"""ci/trim_flashinfer_wheel.py on a small wheel laid out like FlashInfer's: the trimmed wheel keeps the Python
package, the JIT sources of the sampling and top-k modules and every header they reach (quoted includes next to
the includer, angle includes on FlashInfer's include path, includes through CUTLASS's CUDA_STD_HEADER macro), drops
every other source and header, and lists exactly what it holds in RECORD. No network: the wheel is built here."""

import importlib.util
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "ci" / "trim_flashinfer_wheel.py"
DATA = "flashinfer/data"
DIST_INFO = "flashinfer_python-0.7.4.dist-info"

FILES = {
    "flashinfer/__init__.py": "from . import sampling\n",
    "flashinfer/sampling.py": "def top_k_sampling_from_probs(): ...\n",
    "flashinfer/jit/sampling.py": 'sources = [FLASHINFER_CSRC_DIR / "sampling.cu", FLASHINFER_CSRC_DIR / "renorm.cu"]\n',
    "flashinfer/jit/topk.py": 'sources = [FLASHINFER_CSRC_DIR / "topk.cu"]\n',
    "flashinfer/jit/gemm.py": 'sources = [FLASHINFER_CSRC_DIR / "gemm.cu"]\n',
    "flashinfer/tables/config.json": "{}\n",
    "flashinfer/stray_kernel.cu": "// a source outside data/: dropped\n",
    f"{DATA}/__init__.py": "",
    f"{DATA}/csrc/sampling.cu": '#include "flashinfer/sampling.cuh"\n#include <cub/block/block_scan.cuh>\n',
    f"{DATA}/csrc/renorm.cu": '  #  include "flashinfer/sampling.cuh"\n',
    f"{DATA}/csrc/topk.cu": "#include <flashinfer/topk.cuh>\n",
    f"{DATA}/csrc/gemm.cu": '#include "flashinfer/gemm.cuh"\n',
    f"{DATA}/include/flashinfer/sampling.cuh": '#include "utils.cuh"\n#if 0\n#include "vec_dtypes.cuh"\n#endif\n',
    f"{DATA}/include/flashinfer/utils.cuh": "#include CUDA_STD_HEADER(cstdint)\n",
    f"{DATA}/include/flashinfer/vec_dtypes.cuh": "// reached only under #if 0: kept all the same\n",
    f"{DATA}/include/flashinfer/topk.cuh": "// top-k\n",
    f"{DATA}/include/flashinfer/gemm.cuh": "// only gemm.cu includes this\n",
    f"{DATA}/cccl/LICENSE": "license text\n",
    f"{DATA}/cccl/cub/cub/block/block_scan.cuh": '#include "../util_type.cuh"\n',
    f"{DATA}/cccl/cub/cub/util_type.cuh": "// reached through ..\n",
    f"{DATA}/cccl/cub/cub/device/device_radix_sort.cuh": "// not reached\n",
    f"{DATA}/cccl/libcudacxx/include/cuda/std/cstdint": "// reached through the macro\n",
    f"{DATA}/cccl/libcudacxx/include/nv/target": "// a toolkit header's include\n",
    f"{DATA}/cutlass/include/cutlass/gemm.h": "// not reached\n",
    f"{DIST_INFO}/METADATA": "Metadata-Version: 2.1\nName: flashinfer-python\nVersion: 0.7.4\n",
    f"{DIST_INFO}/WHEEL": "Wheel-Version: 1.0\n",
}
DROPPED = {"flashinfer/stray_kernel.cu", f"{DATA}/csrc/gemm.cu", f"{DATA}/include/flashinfer/gemm.cuh",
           f"{DATA}/cccl/cub/cub/device/device_radix_sort.cuh", f"{DATA}/cutlass/include/cutlass/gemm.h"}


@pytest.fixture(scope="module")
def trim():
    spec = importlib.util.spec_from_file_location("trim_flashinfer_wheel", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def wheel(tmp_path):
    path = tmp_path / "flashinfer_python-0.7.4-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in FILES.items():
            z.writestr(name, text)
        z.writestr(f"{DIST_INFO}/RECORD", "".join(f"{name},,\n" for name in FILES))
    return path


def test_keeps_the_package_and_the_sampling_headers_only(trim, wheel, tmp_path):
    out = tmp_path / "out" / wheel.name
    out.parent.mkdir()
    trim.trim_wheel(wheel, out, aot={"sampling": b"\x7fELF sampling", "topk": b"\x7fELF topk"})
    trim.verify_wheel(out)
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        record = {row.split(",", 1)[0] for row in z.read(f"{DIST_INFO}/RECORD").decode().splitlines()}
        assert z.read(f"{DATA}/aot/topk/topk.so") == b"\x7fELF topk"
    aot = {f"{DATA}/aot/sampling/sampling.so", f"{DATA}/aot/topk/topk.so"}
    assert names == (set(FILES) - DROPPED) | aot | {f"{DIST_INFO}/RECORD"}
    assert record == names


def test_verify_wheel_catches_a_record_that_does_not_match(trim, wheel, tmp_path):
    out = tmp_path / "trimmed.whl"
    trim.trim_wheel(wheel, out)
    tampered = tmp_path / "tampered.whl"
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(tampered, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info, data + b"// changed\n" if info.filename.endswith("sampling.cuh") else data)
    with pytest.raises(SystemExit, match="RECORD mismatch"):
        trim.verify_wheel(tampered)


def test_a_wheel_without_the_jit_specs_is_refused(trim, tmp_path):
    path = tmp_path / "flashinfer_python-9.9-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("flashinfer/__init__.py", "")
        z.writestr(f"{DIST_INFO}/RECORD", "")
    with pytest.raises(SystemExit, match="no flashinfer/jit/sampling.py"):
        trim.trim_wheel(path, tmp_path / "out.whl")
