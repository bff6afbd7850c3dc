//! Where a served request's time goes inside the runtime (docs/PERFORMANCE.md, Serving): the
//! iris predictor loaded from its after-`load` snapshot, then
//!
//! - `fresh_instance_create_drop`: a fresh instance (Store, WASI context, instantiate) dropped
//!   unused: what per-request isolation adds to every request;
//! - `fresh_instance_infer`: one request in a fresh instance, the default way of serving;
//! - `warm_instance_infer`: the same request in an instance kept warm (the `--pool` mode).
//!
//! One thread; the HTTP and JSON work around the call is in the serve bench.
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;
use weft_runtime::predictor::{Datatype, InferRequest, Tensor};
use weft_runtime::{InputArtifact, Runtime, RuntimeConfig, StepRequest};

fn request() -> InferRequest {
    let data = [-0.9f32, 1.0, -1.3, -1.3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    InferRequest {
        id: None,
        inputs: vec![Tensor {
            name: "input".into(),
            datatype: Datatype::Fp32,
            shape: vec![1, 4],
            data,
        }],
        outputs: vec![],
        parameters: "{}".into(),
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("model.json"),
        r#"{"kind":"logistic-regression","features":["a","b","c","d"],"classes":["setosa","versicolor","virginica"],"weights":[[-1.0,1.2,-1.8,-1.7],[0.4,-0.9,-0.1,-0.6],[0.6,-0.3,1.9,2.3]],"bias":[-0.2,1.5,-1.3]}"#,
    )
    .unwrap();
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let mut grants = StepRequest::new("bench", "iris");
    grants.inputs.push(InputArtifact {
        name: "model".into(),
        path: dir.path().to_path_buf(),
    });
    let predictor = rt
        .preload_predictor(
            Path::new(weft_test_programs::IRIS_PREDICTOR),
            &grants,
            Some("/inputs/model"),
        )
        .unwrap();
    // As the server does: a snapshot instance is granted nothing.
    grants.inputs.clear();
    let exec = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let req = request();

    c.bench_function("fresh_instance_create_drop", |b| {
        b.iter(|| {
            exec.block_on(rt.instantiate_predictor(&predictor, &grants, None))
                .unwrap()
        })
    });
    c.bench_function("fresh_instance_infer", |b| {
        b.iter(|| {
            exec.block_on(async {
                let mut i = rt
                    .instantiate_predictor(&predictor, &grants, None)
                    .await
                    .unwrap();
                i.infer(&req).await.unwrap().unwrap()
            })
        })
    });
    let mut warm = exec
        .block_on(rt.instantiate_predictor(&predictor, &grants, None))
        .unwrap();
    c.bench_function("warm_instance_infer", |b| {
        b.iter(|| exec.block_on(warm.infer(&req)).unwrap().unwrap())
    });
}

criterion_group!(predictor, benches);
criterion_main!(predictor);
