//! `wasm-run ui` driven by the real `model-registry` client from PyPI (installed by `cargo
//! xtask test` into the Python WEFT_TEST_PYTHON names): a model registered with its version
//! and artifact, read back, archived, and its versions paged; the rows land in the home's
//! metadata database. And the API's OpenAPI document, as `wasm-run ui` serves it, checked by
//! an independent validator (`openapi-spec-validator`, in the same Python).

use crate::support::*;
use std::process::{Child, Command};

/// The Python with `model_registry`, or None (said) when this machine has none.
fn registry_python() -> Option<String> {
    let Ok(python) = std::env::var("WEFT_TEST_PYTHON") else {
        tool_missing("WEFT_TEST_PYTHON unset: the model registry client test did not run (cargo xtask test installs model-registry)");
        return None;
    };
    let has = Command::new(&python)
        .args(["-c", "import model_registry"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        tool_missing(&format!(
            "{python} has no model_registry: the client test did not run (pip install 'model-registry==0.3.*')"
        ));
        return None;
    }
    Some(python)
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `wasm-run ui` on a free loopback port, once it answers; its port.
fn start_ui(s: &Scratch) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = s
        .wasm_run()
        .args(["ui", "--listen", &format!("127.0.0.1:{port}")])
        .spawn()
        .unwrap();
    let server = Server(child);
    let url = format!("http://127.0.0.1:{port}/api/model_registry/v1alpha3/registered_models");
    for _ in 0..200 {
        if ureq::get(&url).call().is_ok() {
            return (server, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("wasm-run ui did not answer on port {port}");
}

const CLIENT: &str = r#"
import sys
from model_registry import ModelRegistry
from model_registry.types import ModelVersionState, RegisteredModelState

port = int(sys.argv[1])
r = ModelRegistry("http://127.0.0.1", port, author="ann", is_secure=False)
rm = r.register_model("iris", "oci://registry.example/iris@sha256:" + "0" * 64,
    model_format_name="onnx", model_format_version="1", version="v1",
    version_description="first", metadata={"accuracy": 0.97, "epochs": 10, "tag": "x"})
assert rm.name == "iris" and rm.owner == "ann", rm
for i in range(2, 6):
    r.register_model("iris", f"s3://b/iris/{i}", model_format_name="onnx",
        model_format_version="1", version=f"v{i}")
got = r.get_registered_model("iris")
assert got.id == rm.id and got.state == RegisteredModelState.LIVE, got
mv = r.get_model_version("iris", "v1")
assert mv.author == "ann" and mv.description == "first", mv
assert mv.custom_properties == {"accuracy": 0.97, "epochs": 10, "tag": "x"}, mv.custom_properties
ma = r.get_model_artifact("iris", "v1")
assert ma.uri.startswith("oci://") and ma.model_format_name == "onnx", ma
mv.state = ModelVersionState.ARCHIVED
r.update(mv)
assert r.get_model_version("iris", "v1").state == ModelVersionState.ARCHIVED
got.state = RegisteredModelState.ARCHIVED
r.update(got)
assert r.get_registered_model("iris").state == RegisteredModelState.ARCHIVED
names = [v.name for v in r.get_model_versions("iris").page_size(2)]
assert names == ["v1", "v2", "v3", "v4", "v5"], names
names = [v.name for v in r.get_model_versions("iris").order_by_id().descending().page_size(3)]
assert names == ["v5", "v4", "v3", "v2", "v1"], names
assert r.get_model_version("iris", "v9") is None
print("ok")
"#;

#[test]
fn the_pypi_model_registry_client_registers_reads_archives_and_pages() {
    let Some(python) = registry_python() else {
        return;
    };
    let s = Scratch::new();
    let (_server, port) = start_ui(&s);
    let out = succeed(Command::new(python).args(["-c", CLIENT, &port.to_string()]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    // The same rows over HTTP: five versions, stored in the home's metadata database.
    let url = format!("http://127.0.0.1:{port}/api/model_registry/v1alpha3/model_versions");
    let list: serde_json::Value = ureq::get(&url).call().unwrap().into_json().unwrap();
    assert_eq!(list["size"], 5);
    assert!(s.path("home/metadata.db").exists());
}

/// The Python with `openapi_spec_validator`, or None (said) when this machine has none.
fn validator_python() -> Option<String> {
    let Ok(python) = std::env::var("WEFT_TEST_PYTHON") else {
        tool_missing("WEFT_TEST_PYTHON unset: the OpenAPI document was not validated (cargo xtask test installs openapi-spec-validator)");
        return None;
    };
    let has = Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        tool_missing(&format!(
            "{python} has no openapi_spec_validator: the OpenAPI document was not validated (pip install 'openapi-spec-validator==0.7.*')"
        ));
        return None;
    }
    Some(python)
}

#[test]
fn the_served_openapi_document_validates_as_openapi_3() {
    let Some(python) = validator_python() else {
        return;
    };
    let s = Scratch::new();
    let (_server, port) = start_ui(&s);
    for prefix in ["v1alpha3", "v1"] {
        for ext in ["json", "yaml"] {
            let url = format!("http://127.0.0.1:{port}/api/model_registry/{prefix}/openapi.{ext}");
            let text = ureq::get(&url).call().unwrap().into_string().unwrap();
            if ext == "json" {
                let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert!(
                    doc["openapi"].as_str().unwrap().starts_with("3."),
                    "{}",
                    doc["openapi"]
                );
                assert!(doc["paths"]["/registered_models/{id}"]["delete"].is_object());
            }
            let file = s.path(&format!("openapi-{prefix}.{ext}"));
            std::fs::write(&file, text).unwrap();
            let out = succeed(
                Command::new(&python)
                    .args(["-m", "openapi_spec_validator"])
                    .arg(&file),
            );
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(said.contains("OK"), "{url}: {said}");
        }
    }
}
