"""Figures for docs/PERFORMANCE.md (issue 17), measured, not asserted:

1. `wasm-run notebook` to a ready server (`/api/status` answering with the token), warm venv;
2. a `%%weft_component` cell's round trip (component cached → run by wasm-run → result)
   against the same function called in the kernel.

    WEFT_WASM_RUN=target/debug/wasm-run [WEFT_NOTEBOOK_VENV=...] python bench/notebook_bench.py [N]
"""

import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import weft.notebook  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5
WASM_RUN = os.environ["WEFT_WASM_RUN"]
tmp = pathlib.Path(tempfile.mkdtemp())
os.environ["WEFT_HOME"] = str(tmp / "home")


def server_start() -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = uuid.uuid4().hex
    env = dict(os.environ)
    env.setdefault("WEFT_NOTEBOOK_VENV", str(pathlib.Path(WASM_RUN).resolve().parents[1] / "test-tools/notebook-venv"))
    started = time.perf_counter()
    proc = subprocess.Popen([WASM_RUN, "notebook", str(tmp), "--port", str(port), "--token", token, "--no-browser"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"})
                json.load(urllib.request.urlopen(req))
                return time.perf_counter() - started
            except OSError:
                time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


CELL = '''
def mean_square(n: int, metrics: Metrics) -> float:
    total = 0.0
    for i in range(n):
        total += i * i
    metrics.log_metric("mean_square", total / n)
    return total / n
'''

ns = {name: getattr(weft.types, name) for name in ("Metrics",)}
client = weft.Client(wasm_run=WASM_RUN)

starts = [server_start() for _ in range(N)]
print(f"wasm-run notebook -> /api/status ready (warm venv): median {statistics.median(starts):.2f} s "
      f"(min {min(starts):.2f}, max {max(starts):.2f}, n={N})")

t = time.perf_counter()
weft.notebook.weft_component("mean-square --inputs n=1000", CELL, ns, client)
print(f"first cell run (build the component, cold): {time.perf_counter() - t:.1f} s")
trips, runs = [], []
for i in range(N):
    t = time.perf_counter()
    r = weft.notebook.weft_component(f"mean-square --inputs n={1000 + i}", CELL, ns, client)
    trips.append(time.perf_counter() - t)
    runs.append(r.elapsed)
print(f"cell round trip (component cached -> wasm-run -> result): median {statistics.median(trips) * 1000:.0f} ms "
      f"(of which build check + run {statistics.median(runs) * 1000:.0f} ms), n={N}")
fn = ns["mean_square"].python_func


class _M:
    def log_metric(self, *a, **k):
        pass


t = time.perf_counter()
for _ in range(1000):
    fn(1000, _M())
print(f"the same function called in the kernel: {(time.perf_counter() - t) / 1000 * 1e6:.0f} µs")
