//! Serving figures for docs/PERFORMANCE.md, in one process: the iris predictor behind
//! `wasm-run serve` with a fresh instance per request and with a warm pool, against the same
//! model compiled natively into a plain axum handler that parses the same V2 JSON. A closed-loop
//! load generator on loopback prints throughput, p50/p99 latency and ratios to native.
//!
//! `cargo bench -p weft-serve --bench serve [-- CLIENTS REQUESTS_PER_CLIENT ROUNDS]`; with
//! `WEFT_BENCH_ONLY=NAME` only the modes whose name contains NAME run (for a profiler).
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_runtime::{Limits, Runtime, RuntimeConfig};
use weft_serve::{ModelConfig, ServerConfig};

const WEIGHTS: [[f64; 4]; 3] = [
    [-1.0, 1.2, -1.8, -1.7],
    [0.4, -0.9, -0.1, -0.6],
    [0.6, -0.3, 1.9, 2.3],
];
const BIAS: [f64; 3] = [-0.2, 1.5, -1.3];

fn model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = WEIGHTS
        .iter()
        .map(|w| {
            format!(
                "[{}]",
                w.iter()
                    .map(|v| format!("{v:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    let model = format!(
        "{{\"kind\":\"logistic-regression\",\"features\":[\"a\",\"b\",\"c\",\"d\"],\"classes\":[\"setosa\",\"versicolor\",\"virginica\"],\"weights\":[{}],\"bias\":[{}]}}\n",
        rows.join(","),
        BIAS.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(",")
    );
    std::fs::write(dir.path().join("model.json"), model).unwrap();
    dir
}

/// The same model, natively: parse the V2 request, softmax, answer.
async fn native(Json(req): Json<Value>) -> Json<Value> {
    let data: Vec<f64> = req["inputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_else(|| vec![r.clone()]))
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut probs = Vec::new();
    let mut labels = Vec::new();
    for x in data.chunks_exact(4) {
        let logits: Vec<f64> = (0..3)
            .map(|c| BIAS[c] + (0..4).map(|j| WEIGHTS[c][j] * x[j]).sum::<f64>())
            .collect();
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        let p: Vec<f32> = e.iter().map(|v| (v / sum) as f32).collect();
        let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        labels.push(["setosa", "versicolor", "virginica"][best]);
        probs.extend(p);
    }
    let n = labels.len();
    Json(
        json!({"model_name": "iris", "model_version": "1", "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [n, 3], "data": probs},
            {"name": "label", "datatype": "BYTES", "shape": [n], "data": labels},
        ]}),
    )
}

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time of the whole process (servers and clients) per request: unlike throughput, not
    /// moved by other load on the machine, so ratios of it are steadier.
    cpu_per_request: Duration,
}

/// User plus system CPU time this process has used so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn load(url: &str, clients: usize, per_client: usize) -> Figures {
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [[-0.9, 1.0, -1.3, -1.3]]}]}).to_string();
    // Wait for the models to load (readiness), then warm up connections and caches.
    let agent = ureq::Agent::new();
    let ready = url.replace("/models/iris/infer", "/health/ready");
    while let Err(ureq::Error::Status(503, _)) = agent.get(&ready).call() {
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..50 {
        agent
            .post(url)
            .set("Content-Type", "application/json")
            .send_string(&body)
            .unwrap();
    }
    let started = Instant::now();
    let cpu_started = cpu_time();
    let mut all: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let agent = ureq::Agent::new();
                    (0..per_client)
                        .map(|_| {
                            let t = Instant::now();
                            let r = agent
                                .post(url)
                                .set("Content-Type", "application/json")
                                .send_string(&body)
                                .unwrap();
                            assert_eq!(r.status(), 200);
                            let _ = r.into_string().unwrap();
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    let cpu = cpu_time() - cpu_started;
    all.sort();
    Figures {
        cpu_per_request: cpu / all.len() as u32,
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let clients = args.first().copied().unwrap_or(4);
    let per_client = args.get(1).copied().unwrap_or(2000);
    let rounds = args.get(2).copied().unwrap_or(5).max(1);
    let dir = model_dir();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: None,
            max_concurrent_steps: 32,
            ..Default::default()
        })
        .unwrap(),
    );

    let mut urls = Vec::new();
    // (pool, snapshot): load per request, the default (snapshot after load), warm pool.
    for (pool, snapshot) in [(0usize, false), (0, true), (8, true)] {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        urls.push(format!(
            "http://{}/v2/models/iris/infer",
            listener.local_addr().unwrap()
        ));
        let config = ServerConfig {
            addr: listener.local_addr().unwrap(),
            admin_addr: None,
            admin_token: None,
            models: vec![ModelConfig {
                name: "iris".into(),
                version: "1".into(),
                component: weft_test_programs::IRIS_PREDICTOR.into(),
                model_dir: Some(dir.path().to_path_buf()),
            }],
            limits: Limits::default(),
            max_body_bytes: 1 << 20,
            concurrency: 16,
            queue: 1024,
            pool,
            snapshot,
            splits: Default::default(),
        };
        let listeners = weft_serve::Listeners {
            data: listener,
            admin: None,
        };
        rt.spawn(weft_serve::serve_on(listeners, config, runtime.clone()));
    }
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let native_url = format!(
        "http://{}/v2/models/iris/infer",
        listener.local_addr().unwrap()
    );
    rt.spawn(async move {
        axum::serve(
            listener,
            Router::new().route("/v2/models/iris/infer", post(native)),
        )
        .await
    });
    std::thread::sleep(Duration::from_millis(500));

    // The machine's own noise (other load, frequency changes) drifts over seconds: every round
    // runs each mode once, back to back, and each figure is the median over the rounds, the
    // ratio being the median of the rounds' own ratios to that round's native run.
    let modes = [
        ("native axum handler (baseline)", native_url.as_str()),
        ("fresh instance, load per request", urls[0].as_str()),
        ("fresh instance from snapshot", urls[1].as_str()),
        ("warm pool (8)", urls[2].as_str()),
    ];
    // For profiling one mode: `WEFT_BENCH_ONLY=snapshot` runs just the modes whose name has it.
    if let Ok(only) = std::env::var("WEFT_BENCH_ONLY") {
        for (name, url) in modes
            .iter()
            .filter(|(name, _)| name.contains(only.as_str()))
        {
            for _ in 0..rounds {
                let f = load(url, clients, per_client);
                println!(
                    "{name:<34} {:>10.0} {:>10.1?} {:>10.1?} {:>10.1?}",
                    f.rps, f.p50, f.p99, f.cpu_per_request
                );
            }
        }
        return;
    }
    let runs: Vec<Vec<Figures>> = (0..rounds)
        .map(|_| {
            modes
                .iter()
                .map(|(_, url)| load(url, clients, per_client))
                .collect()
        })
        .collect();
    println!(
        "serving iris, {clients} clients x {per_client} requests, {rounds} rounds, loopback, keep-alive"
    );
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9} {:>12} {:>9} {:>9} {:>12}",
        "mode", "req/s", "p50", "p99", "vs native", "range", "CPU/req", "vs native", "range"
    );
    // Two ratios per mode, each the median of the rounds' own ratios to that round's native
    // run: of throughput, and of CPU time per request (native's over the mode's, so both read
    // "fraction of native"; the machine is saturated, so they measure the same thing, the CPU
    // one without the drift of other load).
    let spread = |ratios: Vec<f64>| {
        let lo = ratios.iter().cloned().fold(f64::MAX, f64::min);
        let hi = ratios.iter().cloned().fold(f64::MIN, f64::max);
        (median(ratios), lo, hi)
    };
    for (i, (name, _)) in modes.iter().enumerate() {
        let (rps, rps_lo, rps_hi) = spread(runs.iter().map(|r| r[i].rps / r[0].rps).collect());
        let (cpu, cpu_lo, cpu_hi) = spread(
            runs.iter()
                .map(|r| r[0].cpu_per_request.as_secs_f64() / r[i].cpu_per_request.as_secs_f64())
                .collect(),
        );
        println!(
            "{name:<34} {:>8.0} {:>9.1?} {:>9.1?} {:>8.2}x {:>5.2}-{:.2}x {:>9.1?} {:>8.2}x {:>5.2}-{:.2}x",
            median(runs.iter().map(|r| r[i].rps).collect()),
            median(runs.iter().map(|r| r[i].p50).collect()),
            median(runs.iter().map(|r| r[i].p99).collect()),
            rps,
            rps_lo,
            rps_hi,
            median(runs.iter().map(|r| r[i].cpu_per_request).collect()),
            cpu,
            cpu_lo,
            cpu_hi,
        );
    }
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN among the figures"));
    v[v.len() / 2]
}
