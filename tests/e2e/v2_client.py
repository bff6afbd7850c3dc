"""An independently written Open Inference Protocol client (Triton's, from PyPI) against
`wasm-run serve`: health, metadata, and inference over both binary and JSON tensors.

usage: python v2_client.py HOST:PORT MODEL  (the iris predictor; exits non-zero on any mismatch)
"""
import sys

import numpy as np
import tritonclient.http as httpclient

url, model = sys.argv[1], sys.argv[2]
client = httpclient.InferenceServerClient(url=url)
assert client.is_server_live(), "server not live"
assert client.is_server_ready(), "server not ready"
assert client.is_model_ready(model), "model not ready"
meta = client.get_model_metadata(model)
assert meta["name"] == model, meta
assert meta["inputs"][0]["name"] == "input" and meta["inputs"][0]["datatype"] == "FP32", meta

# Standardized iris rows: a setosa-like and a virginica-like flower.
x = np.array([[-0.9, 1.0, -1.3, -1.3], [1.0, 0.0, 1.0, 1.2]], dtype=np.float32)
for binary in (True, False):
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outs = [
        httpclient.InferRequestedOutput("probabilities", binary_data=binary),
        httpclient.InferRequestedOutput("label", binary_data=binary),
    ]
    result = client.infer(model, [inp], outputs=outs, request_id="py-1")
    probs = result.as_numpy("probabilities")
    labels = [l.decode() if isinstance(l, bytes) else l for l in result.as_numpy("label")]
    assert probs.shape == (2, 3), probs.shape
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5), probs
    assert labels == ["setosa", "virginica"], labels
    assert result.get_response()["id"] == "py-1"
print("ok")
