"""The SDK's tests run against the real `wasm-run` (WEFT_WASM_RUN, set by `cargo xtask test`)
and the repository's schema; with `CI` set a missing tool fails, it never skips."""

import json
import os
import pathlib
import shutil
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def wasm_run():
    found = os.environ.get("WEFT_WASM_RUN") or shutil.which("wasm-run")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("CI: wasm-run not found (set WEFT_WASM_RUN)")
        pytest.skip("wasm-run not found (set WEFT_WASM_RUN)")
    return found


@pytest.fixture
def schema():
    import json

    return json.loads((REPO / "schemas" / "pipeline.schema.json").read_text())


PREFIX = "/apis/weft.dev/v1alpha1/namespaces/"


class FakeCluster:
    """Objects by (namespace, plural, name); every request is recorded."""

    def __init__(self):
        self.objects = {}
        self.requests = []
        self.lock = threading.Lock()

    def handle(self, method, path, body):
        self.requests.append((method, path))
        if not path.startswith(PREFIX):
            return 404, {"kind": "Status", "code": 404}
        parts = path[len(PREFIX):].split("?")[0].split("/")
        ns, plural, name = parts[0], parts[1], (parts[2] if len(parts) > 2 else None)
        with self.lock:
            if method == "POST":
                meta = body["metadata"]
                meta.setdefault("name", meta.get("generateName", "x-") + uuid.uuid4().hex[:5])
                key = (ns, plural, meta["name"])
                if key in self.objects:
                    return 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
                meta.update(namespace=ns, resourceVersion="1")
                self.objects[key] = body
                return 201, body
            if method == "GET" and name is None:
                items = [o for (n, p, _), o in self.objects.items() if (n, p) == (ns, plural)]
                return 200, {"apiVersion": "weft.dev/v1alpha1", "kind": "List", "items": items}
            obj = self.objects.get((ns, plural, name))
            if obj is None:
                return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
            if method == "GET":
                return 200, obj
            if method == "PUT":
                if body["metadata"].get("resourceVersion") != obj["metadata"]["resourceVersion"]:
                    return 409, {"kind": "Status", "code": 409, "reason": "Conflict"}
                body["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
                self.objects[(ns, plural, name)] = body
                return 200, body
        return 405, {"kind": "Status", "code": 405}


@pytest.fixture
def cluster(tmp_path):
    fake = FakeCluster()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            code, out = fake.handle(self.command, self.path, body)
            data = json.dumps(out).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "fake", "user": {"token": "t"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))
    yield fake, str(kubeconfig)
    server.shutdown()
