//! The end-to-end script on a real cluster (`operator/e2e/kind.sh`): needs docker, kind, kubectl
//! and helm, none of which CI has, so it is ignored there. Run it by hand:
//! `cargo test -p weft-operator --test cluster -- --ignored`.

#[test]
#[ignore = "needs a container engine and a Kubernetes cluster (kind or k3d)"]
fn the_example_pipeline_and_model_run_on_a_real_cluster() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/kind.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success());
}
