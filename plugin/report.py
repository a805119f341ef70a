"""Publishing what hotfuse did in this process, so tests and operators can see inside engine workers.

Every process that loads the plugin writes `<dir>/<engine>-<pid>.json` (process identity, engine version,
flags, each fusion's mode/state/reason, the patched targets, the call counters and the safety nets' state)
and a daemon thread rewrites it (checked once a second) when any of that or the process title changes, plus
once more at exit. `<dir>` is `HOTFUSE_REPORT_DIR`; when it is unset and fusions are on (and
prometheus_client is importable, as in both engines), the first process makes a private directory for the
engine's processes, removed at its exit, which feeds the Prometheus metrics (hotfuse.metrics). HOTFUSE off
and no `HOTFUSE_REPORT_DIR`: nothing is written and no thread starts.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import sys
import threading
import time

from hotfuse import counters
from hotfuse._version import __version__
from hotfuse.flags import ENV_REPORT_DIR


def _process_title() -> str | None:
    try:
        import setproctitle

        return setproctitle.getproctitle()
    except Exception:
        return None


def state_dict(state) -> dict:
    """JSON-ready view of an EngineState."""
    return {
        "hotfuse_version": __version__,
        "engine": state.engine,
        "engine_version": state.engine_version,
        "flags": {
            "raw": dict(state.flags.raw),
            "inert": state.flags.inert,
            "error": state.flags.error,
            "cache_key": state.flags.cache_key(),
        },
        "error": state.error,
        "unsupported": state.unsupported,
        "infra": dict(state.infra),
        "fusions": {
            name: {"mode": r.mode.value, "state": r.state.value, "reason": r.reason, "targets": r.targets}
            for name, r in state.fusions.items()
        },
        "patches": [{"fusion": p.fusion, "target": p.target, "via": p.via} for p in state.patches],
    }


def process_doc(state) -> dict:
    """Everything this process reports: flags, states, patches, process identity, counters, safety nets."""
    doc = state_dict(state)
    doc["process"] = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "name": multiprocessing.current_process().name,
        "title": _process_title(),
        "argv": sys.argv[:4],
    }
    doc["counters"] = counters.snapshot()
    safety = sys.modules.get("hotfuse.safety")  # imported only once a fused kernel was called
    doc["safety"] = safety.snapshot() if safety else {}
    return doc


_WRITE_LOCK = threading.Lock()


def _write(path: str, state) -> None:
    """Replace `path` atomically. The report thread and the exit flush may both write (and a forked child
    inherits the exit flush): each writer has its own temporary file, so a reader never sees two interleaved."""
    doc = process_doc(state)
    doc["written_at"] = time.time()
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with _WRITE_LOCK:
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)


def _report_dir(state) -> str | None:
    """HOTFUSE_REPORT_DIR, or (fusions on, prometheus_client present) a private one shared with child processes
    so that the metrics endpoint can read every engine process's counters."""
    from hotfuse import metrics

    directory = state.flags.report_dir
    if directory or state.flags.inert or not metrics.available():
        return directory or None
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="hotfuse-reports-")
    os.environ[ENV_REPORT_DIR] = directory        # engine processes started from here inherit it
    atexit.register(shutil.rmtree, directory, True)
    return directory


def publish(state) -> None:
    """Write this process's report and keep it (and the Prometheus view of it) current."""
    from hotfuse import metrics

    directory = _report_dir(state)
    exporter = None
    if not state.flags.inert and metrics.available():
        if metrics.multiprocess_mode():
            exporter = metrics.MultiprocessExporter()
        elif directory:
            metrics.register_collector(directory)
    if not directory and exporter is None:
        return
    path = None
    if directory:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{state.engine}-{os.getpid()}.json")
        _write(path, state)

    owner = os.getpid()

    def refresh() -> None:
        if os.getpid() != owner:   # a forked child runs the exit flush it inherited: its report is its own
            return
        if path:
            _write(path, state)
        if exporter is not None:
            exporter.update(process_doc(state))

    def flush_while_alive() -> None:
        # Engines set their process titles after plugins load: refresh on a title change too.
        last = None
        while True:
            now = (counters.snapshot(), _safety_snapshot(), _process_title())
            if now != last:
                refresh()
                last = now
            time.sleep(1.0)

    threading.Thread(target=flush_while_alive, name="hotfuse-report", daemon=True).start()
    atexit.register(refresh)


def _safety_snapshot():
    safety = sys.modules.get("hotfuse.safety")
    return safety.snapshot() if safety else None
