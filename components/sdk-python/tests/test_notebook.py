"""Notebooks: the example notebook executed end to end by nbclient in a real Jupyter kernel
(ipykernel), and `wasm-run notebook` started for real: JupyterLab answers with its token and a
kernel started through its REST API imports the SDK, set to wasm-run's home. With `CI` set a
missing tool fails, it never skips."""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import REPO


def _need(module):
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"CI: {module} is not installed (cargo xtask test installs it)")
        pytest.skip(f"{module} is not installed")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tags(nb):
    return {t: c for c in nb.cells for t in c.get("metadata", {}).get("tags", [])}


def _text(cell):
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o["text"])
        elif "data" in o:
            out.append(o["data"].get("text/html", "") + o["data"].get("text/plain", ""))
        elif o.get("output_type") == "error":
            out.append("\n".join(o.get("traceback", [])))
    return "\n".join(out)


def test_the_example_notebook_runs_end_to_end(tmp_path, wasm_run, monkeypatch):
    nbformat = _need("nbformat")
    nbclient = _need("nbclient")
    _need("ipykernel")
    for c in ("iris-predictor", "train-logreg", "train-mlp"):
        if not (REPO / f"target/wasm-guests/components/{c}.wasm").exists():
            pytest.fail(f"{c}.wasm is not built (cargo xtask components)")
    home = tmp_path / "home"
    monkeypatch.setenv("WEFT_HOME", str(home))
    monkeypatch.setenv("WEFT_WASM_RUN", wasm_run)
    monkeypatch.setenv("PYTHONPATH", str(REPO / "components/sdk-python"))
    path = REPO / "examples/notebooks/iris.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    cells = _tags(nb)
    assert "SUCCEEDED, accuracy" in _text(cells["train"]), _text(cells["train"])
    assert "<span style='color:#2ca02c'>SUCCEEDED</span>" in _text(cells["train"])
    metrics = _text(cells["metrics"])
    assert "accuracy" in metrics, metrics
    tune = _text(cells["tune"])
    assert "Succeeded, 4 trials" in tune and "best: {" in tune, tune
    serve = _text(cells["serve"])
    assert "served model answered: [{" in serve and "'name'" in serve, serve
    magic = _text(cells["magic"])
    assert "component species-means" in magic and "SUCCEEDED" in magic, magic
    assert "virginica_petal_length" in magic and "<svg class='weft-series'" in magic, magic
    assert "rows counted in the sandbox: 150" in _text(cells["after-magic"])

    # The notebook's runs are wasm-run's: the CLI lists them in the same home.
    runs = json.loads(subprocess.run([wasm_run, "--home", str(home), "runs", "list", "--output", "json"],
                                     check=True, capture_output=True, text=True).stdout)
    pipelines = {r.get("pipeline") for r in runs}
    assert "iris-classifier" in pipelines and "cell-species-means" in pipelines, pipelines


def test_a_failing_cell_component_shows_the_sandbox_error(tmp_path, wasm_run, monkeypatch):
    _need("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    import weft.notebook

    monkeypatch.setenv("WEFT_HOME", str(tmp_path / "home"))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "weft")
    client = weft.Client(wasm_run=wasm_run)
    ns = ip.user_ns
    with pytest.raises(weft.notebook.WeftCellError, match="ZeroDivisionError: division by zero"):
        weft.notebook.weft_component("inverse --inputs x=1", "def inverse(x: int) -> int:\n    return 1 // (x - 1)\n",
                                     ns, client)
    with pytest.raises(weft.notebook.WeftCellError, match="line 1: .*\n    def broken"):
        weft.notebook.weft_component("broken", "def broken(x: int -> int:\n    return x\n", ns, client)
    with pytest.raises(weft.notebook.WeftCellError, match="needs --inputs for x"):
        weft.notebook.weft_component("inverse", "def inverse(x: int) -> int:\n    return x\n", ns, client)
    with pytest.raises(weft.notebook.WeftCellError, match="has no input y"):
        weft.notebook.weft_component("inverse --inputs x=2 y=3", "def inverse(x: int) -> int:\n    return x\n", ns, client)
    # A good one binds its output and leaves a component for pipelines in the namespace.
    run = weft.notebook.weft_component("twice --inputs x=21 --outputs y=Output",
                                       "def twice(x: int) -> int:\n    return 2 * x\n", ns, client)
    assert ns["y"] == 42 and run.result.state == "SUCCEEDED"
    assert isinstance(ns["twice"], weft.dsl.Component)


def _notebook_venv(wasm_run):
    return os.environ.get("WEFT_NOTEBOOK_VENV") or str(
        pathlib.Path(wasm_run).resolve().parents[1] / "test-tools" / "notebook-venv")


def test_wasm_run_notebook_serves_jupyterlab_with_weft_importable(tmp_path, wasm_run):
    websocket = _need("websocket")
    if not shutil.which("python3"):
        pytest.fail("python3 is needed to make the notebook venv")
    home, port, token = tmp_path / "home", _free_port(), uuid.uuid4().hex
    env = dict(os.environ, WEFT_NOTEBOOK_VENV=_notebook_venv(wasm_run))
    env.pop("DISPLAY", None)
    log = open(tmp_path / "notebook.log", "w")
    proc = subprocess.Popen([wasm_run, "--home", str(home), "notebook", str(tmp_path), "--port", str(port),
                             "--token", token, "--no-browser"], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"token {token}"}
    try:
        deadline = time.time() + 900  # the first start installs JupyterLab from PyPI
        while True:
            assert proc.poll() is None, (tmp_path / "notebook.log").read_text()
            try:
                status = json.load(urllib.request.urlopen(urllib.request.Request(base + "/api/status", headers=auth)))
                break
            except OSError:
                assert time.time() < deadline, (tmp_path / "notebook.log").read_text()
                time.sleep(0.5)
        assert "started" in status
        # Without the token: refused.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/api/kernels")
        assert refused.value.code == 403
        kernel = json.load(urllib.request.urlopen(urllib.request.Request(
            base + "/api/kernels", data=b"{}", headers=auth, method="POST")))
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}",
                                         timeout=120)
        msg_id = uuid.uuid4().hex
        code = ("import os, weft, weft.notebook; "
                "print('WEFT', weft.__file__, os.environ['WEFT_HOME'], os.environ['WEFT_WASM_RUN'])")
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t", "session": uuid.uuid4().hex,
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        printed, errors = "", []
        while True:
            m = json.loads(ws.recv())
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "stream":
                printed += m["content"]["text"]
            elif m["msg_type"] == "error":
                errors.append(m["content"])
            elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                break
        ws.close()
        assert not errors, errors
        _, sdk, kernel_home, kernel_wasm_run = printed.split()
        assert "weft-sdk" in sdk and kernel_home == str(home), printed
        assert os.path.samefile(kernel_wasm_run, wasm_run), printed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_cells_of_one_name_take_turns_in_their_package_directory(tmp_path):
    """Two kernels building a cell component of the same name share its package directory
    (and its cached build): the lock makes one wait for the other."""
    import threading

    from weft.notebook import exclusive

    lock = str(tmp_path / "cells" / "add.lock")
    entered = threading.Event()

    def second():
        with exclusive(lock):
            entered.set()

    with exclusive(lock):
        t = threading.Thread(target=second)
        t.start()
        assert not entered.wait(0.3), "the second kernel entered while the first held the directory"
    assert entered.wait(10), "the second kernel never entered"
    t.join()
