"""Publishing what hotfuse did in this process, so tests and operators can see inside engine workers.

When `HOTFUSE_REPORT_DIR` is set, every process that loads the plugin writes
`<dir>/<engine>-<pid>.json` (process identity, engine version, flags, each fusion's mode/state/reason,
the patched targets and the call counters) and a daemon thread rewrites it (checked once a second) when the
counters or the process title change, plus once more at exit. Without the variable nothing is written and no thread starts.
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

ENV_REPORT_DIR = "HOTFUSE_REPORT_DIR"


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
        "infra": dict(state.infra),
        "fusions": {
            name: {"mode": r.mode.value, "state": r.state.value, "reason": r.reason, "targets": r.targets}
            for name, r in state.fusions.items()
        },
        "patches": [{"fusion": p.fusion, "target": p.target, "via": p.via} for p in state.patches],
    }


def _write(path: str, state) -> None:
    doc = state_dict(state)
    doc["process"] = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "name": multiprocessing.current_process().name,
        "title": _process_title(),
        "argv": sys.argv[:4],
    }
    doc["counters"] = counters.snapshot()
    doc["written_at"] = time.time()
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def publish(state) -> None:
    directory = os.environ.get(ENV_REPORT_DIR)
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{state.engine}-{os.getpid()}.json")
    _write(path, state)

    def flush_while_alive() -> None:
        # Engines set their process titles after plugins load: refresh on a title change too.
        last = (counters.snapshot(), _process_title())
        while True:
            time.sleep(1.0)
            now = (counters.snapshot(), _process_title())
            if now != last:
                _write(path, state)
                last = now

    threading.Thread(target=flush_while_alive, name="hotfuse-report", daemon=True).start()
    atexit.register(_write, path, state)
