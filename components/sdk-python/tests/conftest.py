"""The SDK's tests run against the real `wasm-run` (WEFT_WASM_RUN, set by `cargo xtask test`)
and the repository's schema; with `CI` set a missing tool fails, it never skips."""

import os
import pathlib
import shutil

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
