//! Per-language costs for docs/PERFORMANCE.md ("Per language"): the same no-op step written
//! through each guest SDK (`components/noop` in Rust, `noop-py`, `noop-js`, `noop-c`), in one
//! process, with ratios to the Rust one:
//!
//! - size of the component file, and of its compiled form (the on-disk cache entry);
//! - first compile: loading it with no cache (read, hash, import check, Cranelift, link);
//! - cached load: loading it from the on-disk cache (read, hash, deserialise, link);
//! - warm step: a loaded component run end to end (fresh Store and WASI context, instantiate
//!   from the `InstancePre`, call `task.run`, drop), as `--bench step` measures for Rust.
//!
//! `cargo bench -p weft-runtime --bench languages [-- ROUNDS]` (default 3). Each round measures
//! every language back to back (Python and JavaScript compile once per round, Rust and C five
//! times; cached loads and warm steps for about half a second each), and each ratio is the
//! median of the rounds' own ratios, since this 2-core machine drifts over seconds. Python and
//! JavaScript compiles take seconds each, so the whole run takes about two minutes.
use std::path::Path;
use std::time::{Duration, Instant};
use weft_runtime::{list_cache, LoadSource, Runtime, RuntimeConfig, StepRequest};

struct Language {
    name: &'static str,
    path: &'static str,
    /// First compiles per round.
    compiles: usize,
}

const LANGUAGES: &[Language] = &[
    Language {
        name: "Rust",
        path: weft_test_programs::NOOP,
        compiles: 5,
    },
    Language {
        name: "Python",
        path: weft_test_programs::NOOP_PY,
        compiles: 1,
    },
    Language {
        name: "JS",
        path: weft_test_programs::NOOP_JS,
        compiles: 1,
    },
    Language {
        name: "C",
        path: weft_test_programs::NOOP_C,
        compiles: 5,
    },
];

/// Time spent per language per round on each of the cached-load and warm-step measurements.
const SLICE: Duration = Duration::from_millis(500);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `f` at least `min` times and until `SLICE` has passed (at most `max` times); returns
/// the median time of one call, in seconds.
fn timed(min: usize, max: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < min || (start.elapsed() < SLICE && times.len() < max) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    median(times)
}

/// Seconds as the unit that suits them.
fn human(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / (1 << 20) as f64)
    } else {
        format!("{} KB", n.div_ceil(1024))
    }
}

/// A ratio, to two significant figures or whole.
fn times(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.0}×")
    }
}

/// Per language: (first compile, cached load, warm step), seconds, one entry per round.
type Rounds = Vec<Vec<[f64; 3]>>;

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let began = Instant::now();
    let cache = tempfile::tempdir().unwrap();
    let cached = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let uncached = Runtime::new(RuntimeConfig::default()).unwrap();

    // Compile each once into the cache, and read the sizes.
    let mut sizes = Vec::new();
    for lang in LANGUAGES {
        let path = Path::new(lang.path);
        let loaded = cached.load(path).unwrap();
        assert_eq!(loaded.source, LoadSource::Compiled, "{}", lang.name);
        let compiled = list_cache(cache.path())
            .unwrap()
            .into_iter()
            .find(|e| e.digest == loaded.digest)
            .expect("the cache entry")
            .bytes;
        let size = std::fs::metadata(path).unwrap().len();
        eprintln!(
            "{}: {} ({} compiled), first compile {}",
            lang.name,
            bytes(size),
            bytes(compiled),
            human(loaded.compile_time.unwrap().as_secs_f64())
        );
        sizes.push((size, compiled));
    }

    let req = StepRequest::new("bench", "noop");
    let mut results: Rounds = vec![Vec::new(); LANGUAGES.len()];
    for round in 0..rounds {
        for (i, lang) in LANGUAGES.iter().enumerate() {
            let path = Path::new(lang.path);
            let compile = median(
                (0..lang.compiles)
                    .map(|_| {
                        uncached.clear_loaded();
                        let t = Instant::now();
                        let l = uncached.load(path).unwrap();
                        let took = t.elapsed().as_secs_f64();
                        assert_eq!(l.source, LoadSource::Compiled);
                        took
                    })
                    .collect(),
            );
            uncached.clear_loaded();
            let load = timed(5, 1000, || {
                cached.clear_loaded();
                let l = cached.load(path).unwrap();
                assert_eq!(l.source, LoadSource::DiskCache);
            });
            let loaded = cached.load(path).unwrap();
            for _ in 0..10 {
                cached.run(&loaded, &req).unwrap();
            }
            let step = timed(20, 100_000, || {
                cached.run(&loaded, &req).unwrap();
            });
            eprintln!(
                "round {}: {:<6} compile {:>9}  cached load {:>9}  warm step {:>9}",
                round + 1,
                lang.name,
                human(compile),
                human(load),
                human(step)
            );
            results[i].push([compile, load, step]);
        }
    }

    println!();
    println!(
        "| language | component | compiled | first compile | cached load | warm step (instantiate + run) |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, lang) in LANGUAGES.iter().enumerate() {
        let cell = |k: usize| {
            let value = median(results[i].iter().map(|r| r[k]).collect());
            if i == 0 {
                human(value)
            } else {
                let ratio = median(
                    results[i]
                        .iter()
                        .zip(&results[0])
                        .map(|(r, rust)| r[k] / rust[k])
                        .collect(),
                );
                format!("{} ({})", human(value), times(ratio))
            }
        };
        let size = |n: u64, rust: u64| {
            if i == 0 {
                bytes(n)
            } else {
                format!("{} ({})", bytes(n), times(n as f64 / rust as f64))
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            lang.name,
            size(sizes[i].0, sizes[0].0),
            size(sizes[i].1, sizes[0].1),
            cell(0),
            cell(1),
            cell(2)
        );
    }
    println!();
    println!(
        "(ratios: to Rust, the median of the {rounds} rounds' own ratios; whole run {:.0} s)",
        began.elapsed().as_secs_f64()
    );
}
