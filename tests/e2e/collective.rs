//! `weft:tensor/collective` from components: workers are instances on threads of one process,
//! each with its rank of an in-process group; every collective through the WIT against a
//! direct computation, data-parallel training equal to one worker on all the rows, and the
//! gang's failures (a worker that fails, a call outside a job) errors, not hangs.

use crate::support::*;
use std::path::Path;
use std::sync::Arc;
use weft_collective::LocalGroup;
use weft_runtime::{
    InputArtifact, ParamValue, Runtime, RuntimeConfig, StepError, StepOutcome, StepRequest,
};

/// Runs `component` as `world` workers on threads, worker r with rank r; `setup` fills each
/// request.
fn gang(
    component: &str,
    world: usize,
    setup: impl Fn(usize, &mut StepRequest) + Sync,
) -> Vec<Result<StepOutcome, StepError>> {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let c = rt.load(component.as_ref()).unwrap();
    std::thread::scope(|s| {
        let workers: Vec<_> = LocalGroup::ranks(world)
            .into_iter()
            .enumerate()
            .map(|(r, rank)| {
                let mut req = StepRequest::new("train-1", format!("worker-{r}"));
                setup(r, &mut req);
                req.collective = Some(Arc::new(rank));
                let (rt, c) = (&rt, &c);
                s.spawn(move || rt.run(c, &req))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

fn out<'a>(o: &'a StepOutcome, name: &str) -> &'a ParamValue {
    &o.params
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

fn floats(o: &StepOutcome, name: &str) -> Vec<f32> {
    let ParamValue::Json(v) = out(o, name) else {
        panic!("{name}")
    };
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The probe's tensor at rank r: [2, 4] of r * 10 + i, alternating signs.
fn data(r: usize) -> Vec<f32> {
    (0..8)
        .map(|i| (r * 10 + i) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect()
}

#[test]
fn every_collective_through_the_wit_matches_a_direct_computation() {
    for world in [1, 2, 4] {
        let outcomes = gang(COLLECTIVE_PROBE, world, |_, _| {});
        let elementwise = |f: fn(&[f32]) -> f32| -> Vec<f32> {
            (0..8)
                .map(|i| f(&(0..world).map(|r| data(r)[i]).collect::<Vec<_>>()))
                .collect()
        };
        let sum = elementwise(|xs| xs.iter().sum());
        let mean: Vec<f32> = sum.iter().map(|s| s / world as f32).collect();
        let max = elementwise(|xs| xs.iter().cloned().fold(f32::MIN, f32::max));
        let min = elementwise(|xs| xs.iter().cloned().fold(f32::MAX, f32::min));
        let gathered: Vec<f32> = (0..world).flat_map(data).collect();
        for (r, o) in outcomes.into_iter().enumerate() {
            let o = o.unwrap_or_else(|e| panic!("world {world} rank {r}: {e}"));
            assert_eq!(out(&o, "rank"), &ParamValue::Int(r as i64));
            assert_eq!(out(&o, "world_size"), &ParamValue::Int(world as i64));
            assert_eq!(floats(&o, "all_reduce_sum"), sum, "world {world}");
            assert_eq!(floats(&o, "all_reduce_mean"), mean, "world {world}");
            assert_eq!(floats(&o, "all_reduce_max"), max, "world {world}");
            assert_eq!(floats(&o, "all_reduce_min"), min, "world {world}");
            assert_eq!(floats(&o, "broadcast"), data(world - 1), "world {world}");
            assert_eq!(floats(&o, "all_gather"), gathered, "world {world}");
            assert_eq!(
                out(&o, "all_gather_shape"),
                &ParamValue::Json(serde_json::json!([2 * world, 4]))
            );
            // Every rank reduce-scatters the same gathered tensor: rank r's part is world
            // times its own rows.
            let own: Vec<f32> = data(r).iter().map(|v| v * world as f32).collect();
            assert_eq!(floats(&o, "reduce_scatter"), own, "world {world} rank {r}");
        }
    }
}

/// Outside a training job a component is rank 0 of 1, and a collective is an error at once.
#[test]
fn a_collective_outside_a_training_job_is_an_error_not_a_hang() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let c = rt.load(COLLECTIVE_PROBE.as_ref()).unwrap();
    let mut req = StepRequest::new("run-1", "probe");
    req.params
        .push(("mode".into(), ParamValue::String("barrier".into())));
    let e = rt.run(&c, &req).unwrap_err().to_string();
    assert!(
        e.contains("not-in-job: this component is not running as a worker of a training job"),
        "{e}"
    );
}

/// A worker that fails leaves the job: the others' collectives fail naming it, instead of
/// waiting for it until their time runs out.
#[test]
fn a_worker_that_fails_fails_its_peers_at_once() {
    let started = std::time::Instant::now();
    let outcomes = gang(COLLECTIVE_PROBE, 3, |_, req| {
        req.params
            .push(("mode".into(), ParamValue::String("fail".into())));
        req.params.push(("fail_rank".into(), ParamValue::Int(1)));
    });
    for (r, o) in outcomes.iter().enumerate() {
        let e = o.as_ref().unwrap_err().to_string();
        let want = if r == 1 {
            "rank 1 fails on purpose"
        } else {
            "peer: rank 1 left the job"
        };
        assert!(e.contains(want), "rank {r}: {e}");
    }
    // Not the step time limit (minutes): the failure reached the peers.
    assert!(started.elapsed() < StepRequest::new("x", "y").limits.timeout / 2);
}

fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let engine = weft_tensor::Engine::new(weft_tensor::Cpu, 1 << 24);
    let bytes = std::fs::read(path).unwrap();
    let mut named: Vec<(String, Vec<f32>)> = weft_tensor::io::load(&engine, &bytes)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, engine.to_vec(&t).unwrap()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// N workers, each on its shard of the rows with gradients summed across ranks, end with the
/// parameters one worker reaches on all the rows (within float rounding), and every rank's
/// parameters are the same.
#[test]
fn data_parallel_training_equals_one_worker_on_all_the_rows() {
    let s = Scratch::new();
    let data = repo_file("examples/data/iris.csv");
    // SGD as well as Adam: SGD's step is proportional to the gradient, so a gradient summed
    // wrongly (averaged, a shard weighted wrongly) shows; Adam's normalisation hides a scale.
    for optimizer in ["sgd", "adam"] {
        data_parallel_equals_one_worker(&s, &data, optimizer);
    }
}

fn data_parallel_equals_one_worker(s: &Scratch, data: &Path, optimizer: &str) {
    let train = |world: usize| -> Vec<Vec<(String, Vec<f32>)>> {
        let dirs: Vec<_> = (0..world)
            .map(|r| s.path(&format!("{optimizer}-w{world}-r{r}")))
            .collect();
        let outcomes = gang(TRAIN_MLP, world, |r, req| {
            let mut p = |n: &str, v: ParamValue| req.params.push((n.into(), v));
            p("label", ParamValue::String("species".into()));
            p("epochs", ParamValue::Int(60));
            p("learning_rate", ParamValue::Float(0.05));
            p("optimizer", ParamValue::String(optimizer.into()));
            req.inputs.push(InputArtifact {
                name: "train".into(),
                path: data.to_path_buf(),
            });
            std::fs::create_dir_all(&dirs[r]).unwrap();
            req.output_dir = Some(dirs[r].clone());
            req.outputs = vec!["model".into()];
        });
        for (r, o) in outcomes.iter().enumerate() {
            let o = o
                .as_ref()
                .unwrap_or_else(|e| panic!("{optimizer}, world {world} rank {r}: {e}"));
            assert_eq!(out(o, "world_size"), &ParamValue::Int(world as i64));
        }
        dirs.iter()
            .map(|d| weights(&d.join("model/model.safetensors")))
            .collect()
    };
    let one = train(1).remove(0);
    for world in [2, 4] {
        let ranks = train(world);
        for (r, w) in ranks.iter().enumerate() {
            assert_eq!(
                w, &ranks[0],
                "{optimizer}, world {world}: rank {r} differs from rank 0"
            );
            for ((name, got), (_, want)) in w.iter().zip(&one) {
                let worst = got
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst < 1e-3,
                    "{optimizer}, world {world}: {name} differs from one worker's by {worst}"
                );
            }
        }
    }
}
