//! Sample efficiency and per-trial cost of weft-tune's model-based samplers, side by side with
//! Optuna's in the same run, for docs/PERFORMANCE.md ("Tuning (issue 15)").
//!
//! `cargo bench -p weft-tune --bench samplers`
//!
//! - **Sample efficiency.** Branin (2-D, f* = 0.397887) and Hartmann6 ([0,1]^6, f* = -3.32237),
//!   minimised with sequential trials (one suggestion, then its value, then the next) for S
//!   seeds and a budget of N trials (smaller for the GP pair), by Weft's `tpe`, `multivariate-tpe`,
//!   `bayesianoptimization` and `cmaes` (in process, default settings) and by Optuna's
//!   `TPESampler()`, `TPESampler(multivariate=True)`, `GPSampler()` and `CmaEsSampler()`
//!   (defaults, `seed=s`, through `benches/optuna_samplers.py`, which prints every trial's
//!   value as JSON; the figures are computed here, the same way for both). Per function and
//!   pair: mean ± standard error of the trials needed to come within 1% of |f*| (a seed that
//!   never does counts as N, so the mean is a lower bound when not every seed gets there), how
//!   many seeds got there, the median simple regret `best − f*` after N trials and at N/4 and
//!   N/2, a two-sided Mann–Whitney U p-value on the final regrets, and Weft/Optuna ratios
//!   (below 1: Weft needs fewer trials / ends closer).
//! - **Per-trial cost at 1000 trials.** Time of one suggestion (Weft) or one ask + tell
//!   (Optuna, in-memory storage) with 1000 trials of history on Hartmann6: for TPE and CMA-ES
//!   the sampler itself runs the first 1000 trials (their throughput is printed too), then the
//!   next 10 are timed; for the GP samplers, whose cost is cubic in the history, 1000 random
//!   trials are the history and 2 suggestions are timed.
//!
//! Settings, by environment: `WEFT_TUNE_SEEDS` (20), `WEFT_TUNE_BUDGET_BRANIN` (100),
//! `WEFT_TUNE_BUDGET_HARTMANN6` (200), `WEFT_TUNE_BUDGET_GP_BRANIN` (50) and
//! `WEFT_TUNE_BUDGET_GP_HARTMANN6` (100) for the GP pair (its trials cost the most: at 200
//! Hartmann6 trials Optuna's GPSampler alone takes about 20 s a seed on the 2-core machine,
//! and GP samplers get to 1% sooner than the others), `WEFT_TUNE_PAIRS` (tpe,mtpe,bo,cmaes),
//! `WEFT_TUNE_OVERHEAD_HISTORY` (1000; 0 skips the cost part), `WEFT_BENCH_NO_OPTUNA=1` (Weft
//! only), `WEFT_BENCH_PYTHON` (a python with optuna, cmaes and torch; otherwise a venv is made
//! once under target/bench-tools/optuna with `optuna==4.*`, scipy, cmaes, torch and greenlet,
//! the last two for GPSampler: when torch cannot be installed or imported, the GP pair is
//! reported as Weft only, with the reason). Optuna's side runs with one thread
//! (OMP_NUM_THREADS=1), as Weft's does. The whole run takes about 5 minutes on the shared
//! 2-core machine (about half of it Optuna's GPSampler). No timing is asserted.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{branin_of, branin_space, double, num, run, BRANIN_MIN};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use weft_tune::{Assignment, Direction, Param, Setting, Suggester, Trial, TrialState};

const HARTMANN6_MIN: f64 = -3.32237;

const HART_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const HART_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const HART_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

fn hartmann6(x: &[f64; 6]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| HART_A[i][j] * (x[j] - HART_P[i][j]).powi(2))
                .sum();
            HART_ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

fn hartmann6_space() -> Vec<Param> {
    (0..6).map(|i| double(&format!("x{i}"), 0.0, 1.0)).collect()
}

fn hartmann6_of(a: &Assignment) -> f64 {
    hartmann6(&std::array::from_fn(|i| num(a, &format!("x{i}"))))
}

struct Function {
    name: &'static str,
    optimum: f64,
    space: fn() -> Vec<Param>,
    f: fn(&Assignment) -> f64,
    budget: usize,
    /// the budget of the GP pair, whose trials cost the most
    gp_budget: usize,
}

impl Function {
    fn budget_of(&self, pair: &Pair) -> usize {
        if pair.key == "bo" {
            self.gp_budget
        } else {
            self.budget
        }
    }
}

/// A Weft algorithm and the Optuna sampler it is compared with.
struct Pair {
    key: &'static str,
    weft: &'static str,
    optuna: &'static str,
    optuna_label: &'static str,
}

const PAIRS: &[Pair] = &[
    Pair {
        key: "tpe",
        weft: "tpe",
        optuna: "tpe",
        optuna_label: "TPESampler",
    },
    Pair {
        key: "mtpe",
        weft: "multivariate-tpe",
        optuna: "mtpe",
        optuna_label: "TPESampler(multivariate)",
    },
    Pair {
        key: "bo",
        weft: "bayesianoptimization",
        optuna: "gp",
        optuna_label: "GPSampler",
    },
    Pair {
        key: "cmaes",
        weft: "cmaes",
        optuna: "cmaes",
        optuna_label: "CmaEsSampler",
    },
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn suggester(alg: &str, seed: u64, space: &[Param]) -> Box<dyn Suggester> {
    weft_tune::suggester(
        alg,
        &[Setting::new("random_state", seed.to_string())],
        space,
        Direction::Minimize,
        None,
    )
    .expect("valid settings")
}

/// One seed's run: every trial's value in order, and its wall time.
struct Run {
    values: Vec<f64>,
    seconds: f64,
}

fn weft_runs(alg: &str, func: &Function, budget: usize, seeds: usize) -> Vec<Run> {
    let space = (func.space)();
    (0..seeds as u64)
        .map(|s| {
            let t = Instant::now();
            let h = run(&mut *suggester(alg, s, &space), &func.f, budget, 1);
            let seconds = t.elapsed().as_secs_f64();
            Run {
                values: h.iter().map(|t| t.objective.expect("finished")).collect(),
                seconds,
            }
        })
        .collect()
}

/// The figures of one sampler's runs on one function.
struct Summary {
    /// trials to within 1% of |f*|, a seed that never got there counted as the budget
    hits: Vec<f64>,
    reached: usize,
    /// simple regret after N/4, N/2 and N trials, per seed
    regret: [Vec<f64>; 3],
    ms_per_trial: f64,
}

fn summarise(runs: &[Run], func: &Function, n: usize) -> Summary {
    let tol = 0.01 * func.optimum.abs();
    let mut hits = Vec::new();
    let mut reached = 0;
    let mut regret: [Vec<f64>; 3] = Default::default();
    for r in runs {
        match r.values.iter().position(|v| v - func.optimum <= tol) {
            Some(i) => {
                reached += 1;
                hits.push((i + 1) as f64);
            }
            None => hits.push(n as f64),
        }
        for (k, upto) in [n / 4, n / 2, n].into_iter().enumerate() {
            let best = r.values[..upto.min(r.values.len())]
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min);
            regret[k].push((best - func.optimum).max(0.0));
        }
    }
    let trials: usize = runs.iter().map(|r| r.values.len()).sum();
    let seconds: f64 = runs.iter().map(|r| r.seconds).sum();
    Summary {
        hits,
        reached,
        regret,
        ms_per_trial: 1e3 * seconds / trials.max(1) as f64,
    }
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Two-sided Mann–Whitney U test, normal approximation with the tie correction.
fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, usize)> = a
        .iter()
        .map(|&x| (x, 0))
        .chain(b.iter().map(|&x| (x, 1)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut ranks = vec![0.0; n];
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for rank in &mut ranks[i..=j] {
            *rank = r;
        }
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = all
        .iter()
        .zip(&ranks)
        .filter(|(x, _)| x.1 == 0)
        .map(|(_, r)| r)
        .sum();
    let u = r1 - n1 * (n1 + 1.0) / 2.0;
    let nn = n1 + n2;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - ties / (nn * (nn - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = (u - n1 * n2 / 2.0).abs() / var.sqrt();
    (libm::erfc(z / std::f64::consts::SQRT_2)).min(1.0)
}

/// A regret in a short readable form.
fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if (1e-2..1e3).contains(&x.abs()) {
        format!("{x:.3}")
    } else {
        format!("{x:.1e}")
    }
}

fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

// ---------------------------------------------------------------- Optuna's side

fn target_dir() -> PathBuf {
    // target/<profile>/deps/samplers-<hash>
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn sh(cmd: &mut Command) -> bool {
    eprintln!("+ {cmd:?}");
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// The python to run Optuna with, or why there is none.
fn optuna_python() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("WEFT_BENCH_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = target_dir().join("bench-tools/optuna");
    let python = venv.join("bin/python");
    let ready = venv.join(".weft-ready");
    if ready.exists() {
        return Ok(python);
    }
    eprintln!(
        "making a venv for Optuna at {} (once; torch is large)",
        venv.display()
    );
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    if !sh(Command::new(&system).args(["-m", "venv"]).arg(&venv)) {
        return Err(format!("`{system} -m venv` failed"));
    }
    let pip = || {
        let mut c = Command::new(&python);
        c.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]);
        c
    };
    // CmaEsSampler imports the `cmaes` package, which optuna does not require.
    if !sh(pip().args(["optuna==4.*", "scipy", "cmaes"])) {
        return Err("pip install optuna==4.* scipy cmaes failed".into());
    }
    // GPSampler needs torch; without it the script reports why and skips the GP pair.
    if !sh(pip().args(["torch", "greenlet"])) {
        eprintln!("pip install torch failed: GPSampler will be skipped");
    }
    std::fs::write(&ready, "").ok();
    Ok(python)
}

struct OptunaResults {
    version: String,
    torch: Option<String>,
    gp_error: Option<String>,
    runs: Vec<(String, String, Run)>,
    overhead: Vec<(String, f64, usize)>,
}

fn run_optuna(
    python: &Path,
    seeds: usize,
    functions: &[Function],
    pairs: &[&Pair],
    overhead_history: usize,
) -> Result<OptunaResults, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/optuna_samplers.py");
    let budget = |name: &str, gp: bool| {
        functions
            .iter()
            .find(|f| f.name == name)
            .map_or(0, |f| if gp { f.gp_budget } else { f.budget })
    };
    let samplers: Vec<&str> = pairs.iter().map(|p| p.optuna).collect();
    let overhead_samplers: Vec<&str> = samplers
        .iter()
        .copied()
        .filter(|s| ["tpe", "cmaes", "gp"].contains(s))
        .collect();
    let t = Instant::now();
    let out = Command::new(python)
        .arg(&script)
        .args(["--seeds", &seeds.to_string()])
        .args(["--budget-branin", &budget("branin", false).to_string()])
        .args([
            "--budget-hartmann6",
            &budget("hartmann6", false).to_string(),
        ])
        .args(["--budget-gp-branin", &budget("branin", true).to_string()])
        .args([
            "--budget-gp-hartmann6",
            &budget("hartmann6", true).to_string(),
        ])
        .args(["--samplers", &samplers.join(",")])
        .args([
            "--functions",
            &functions
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(","),
        ])
        .args(["--overhead-history", &overhead_history.to_string()])
        .args(["--overhead-samplers", &overhead_samplers.join(",")])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("{} exited with {}", script.display(), out.status));
    }
    eprintln!("optuna side: {:.0} s", t.elapsed().as_secs_f64());
    let j: Json = serde_json::from_slice(&out.stdout).map_err(|e| format!("its JSON: {e}"))?;
    let s = |v: &Json| v.as_str().map(str::to_string);
    let runs = j["runs"]
        .as_array()
        .ok_or("no runs")?
        .iter()
        .map(|r| {
            (
                s(&r["function"]).unwrap_or_default(),
                s(&r["sampler"]).unwrap_or_default(),
                Run {
                    values: r["values"]
                        .as_array()
                        .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
                        .unwrap_or_default(),
                    seconds: r["seconds"].as_f64().unwrap_or(0.0),
                },
            )
        })
        .collect();
    let overhead = j["overhead"]
        .as_array()
        .map(|o| {
            o.iter()
                .map(|r| {
                    (
                        s(&r["sampler"]).unwrap_or_default(),
                        r["seconds_per_trial"].as_f64().unwrap_or(f64::NAN),
                        r["asks"].as_u64().unwrap_or(0) as usize,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(OptunaResults {
        version: s(&j["optuna"]).unwrap_or_default(),
        torch: s(&j["torch"]),
        gp_error: s(&j["gp_error"]),
        runs,
        overhead,
    })
}

// ---------------------------------------------------------------- per-trial cost

/// Weft's time for one suggestion with `history` trials behind it (see the module docs), and
/// for TPE and CMA-ES the throughput of the whole run to `history` trials.
fn weft_overhead(alg: &str, history: usize) -> (f64, usize, Option<f64>) {
    let space = hartmann6_space();
    let mut s = suggester(alg, 0, &space);
    let finished = |a: Assignment| {
        let v = hartmann6_of(&a);
        Trial {
            assignment: a,
            state: TrialState::Succeeded,
            objective: Some(v),
            series: vec![(1, v)],
        }
    };
    let mut h: Vec<Trial> = Vec::new();
    let mut throughput = None;
    let asks;
    if alg == "bayesianoptimization" {
        let mut r = suggester("random", 0, &space);
        h = r
            .suggest(&[], history)
            .expect("random")
            .into_iter()
            .map(finished)
            .collect();
        asks = 2;
    } else {
        let t = Instant::now();
        for _ in 0..history {
            let a = s.suggest(&h, 1).expect("suggest").pop().expect("one");
            h.push(finished(a));
        }
        throughput = Some(history as f64 / t.elapsed().as_secs_f64());
        asks = 10;
    }
    let t = Instant::now();
    for _ in 0..asks {
        let a = s.suggest(&h, 1).expect("suggest").pop().expect("one");
        h.push(finished(a));
    }
    (t.elapsed().as_secs_f64() / asks as f64, asks, throughput)
}

fn main() {
    let seeds = env_usize("WEFT_TUNE_SEEDS", 20);
    let functions = [
        Function {
            name: "branin",
            optimum: BRANIN_MIN,
            space: branin_space,
            f: branin_of,
            budget: env_usize("WEFT_TUNE_BUDGET_BRANIN", 100),
            gp_budget: env_usize("WEFT_TUNE_BUDGET_GP_BRANIN", 50),
        },
        Function {
            name: "hartmann6",
            optimum: HARTMANN6_MIN,
            space: hartmann6_space,
            f: hartmann6_of,
            budget: env_usize("WEFT_TUNE_BUDGET_HARTMANN6", 200),
            gp_budget: env_usize("WEFT_TUNE_BUDGET_GP_HARTMANN6", 100),
        },
    ];
    let functions: Vec<Function> = functions.into_iter().filter(|f| f.budget > 0).collect();
    let wanted = std::env::var("WEFT_TUNE_PAIRS").unwrap_or_else(|_| "tpe,mtpe,bo,cmaes".into());
    let pairs: Vec<&Pair> = PAIRS
        .iter()
        .filter(|p| wanted.split(',').any(|w| w.trim() == p.key))
        .collect();
    let overhead_history = env_usize("WEFT_TUNE_OVERHEAD_HISTORY", 1000);

    // Weft's runs.
    let mut weft = Vec::new();
    for f in &functions {
        for p in &pairs {
            let t = Instant::now();
            let runs = weft_runs(p.weft, f, f.budget_of(p), seeds);
            eprintln!(
                "weft {} on {}: {seeds} seeds in {:.1} s",
                p.weft,
                f.name,
                t.elapsed().as_secs_f64()
            );
            weft.push((f.name, p.key, summarise(&runs, f, f.budget_of(p))));
        }
    }

    // Optuna's runs.
    let optuna = if std::env::var("WEFT_BENCH_NO_OPTUNA").is_ok_and(|v| v == "1") {
        Err("WEFT_BENCH_NO_OPTUNA=1".to_string())
    } else {
        optuna_python().and_then(|py| run_optuna(&py, seeds, &functions, &pairs, overhead_history))
    };
    let mut theirs = Vec::new();
    if let Ok(o) = &optuna {
        for f in &functions {
            for p in &pairs {
                let runs: Vec<Run> = o
                    .runs
                    .iter()
                    .filter(|(func, s, _)| func == f.name && s == p.optuna)
                    .map(|(_, _, r)| Run {
                        values: r.values.clone(),
                        seconds: r.seconds,
                    })
                    .collect();
                if !runs.is_empty() {
                    theirs.push((f.name, p.key, summarise(&runs, f, f.budget_of(p))));
                }
            }
        }
    }

    // The table.
    println!();
    match &optuna {
        Ok(o) => println!(
            "Optuna {} (torch {}){}; {seeds} seeds; sequential trials; 1% = within 0.01·|f*| of f*.",
            o.version,
            o.torch.as_deref().unwrap_or("absent"),
            o.gp_error
                .as_deref()
                .map(|e| format!("; GPSampler not run: {e}"))
                .unwrap_or_default()
        ),
        Err(e) => println!("Optuna not run: {e}; {seeds} seeds."),
    }
    println!();
    println!(
        "| function | N | Weft | Optuna | trials to 1%: Weft | Optuna | ratio | median regret after N: Weft | Optuna | ratio | MWU p | regret at N/4, N/2: Weft | Optuna | ms/trial Weft | Optuna |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in &functions {
        for p in &pairs {
            let w = weft
                .iter()
                .find(|(fname, k, _)| *fname == f.name && *k == p.key)
                .map(|x| &x.2)
                .expect("weft ran");
            let o = theirs
                .iter()
                .find(|(fname, k, _)| *fname == f.name && *k == p.key)
                .map(|x| &x.2);
            let hits = |s: &Summary| {
                let (m, se) = mean_se(&s.hits);
                format!("{m:.1} ± {se:.1} ({}/{})", s.reached, s.hits.len())
            };
            let dash = || "–".to_string();
            let ratio = |a: f64, b: f64| {
                if b > 0.0 {
                    format!("{:.2}", a / b)
                } else {
                    dash()
                }
            };
            let early = |s: &Summary| {
                format!(
                    "{}, {}",
                    sci(median(&s.regret[0])),
                    sci(median(&s.regret[1]))
                )
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                f.name,
                f.budget_of(p),
                p.weft,
                p.optuna_label,
                hits(w),
                o.map_or_else(dash, hits),
                o.map_or_else(dash, |o| ratio(mean_se(&w.hits).0, mean_se(&o.hits).0)),
                sci(median(&w.regret[2])),
                o.map_or_else(dash, |o| sci(median(&o.regret[2]))),
                o.map_or_else(dash, |o| ratio(median(&w.regret[2]), median(&o.regret[2]))),
                o.map_or_else(dash, |o| {
                    let p = mann_whitney_p(&w.regret[2], &o.regret[2]);
                    if p < 1e-3 {
                        "<0.001".into()
                    } else {
                        format!("{p:.3}")
                    }
                }),
                early(w),
                o.map_or_else(dash, early),
                w.ms_per_trial,
                o.map_or_else(dash, |o| format!("{:.2}", o.ms_per_trial)),
            );
        }
    }

    // Per-trial cost at 1000 trials.
    if overhead_history > 0 {
        println!();
        println!(
            "Per-trial sampler cost with {overhead_history} trials of history (Hartmann6, one thread):"
        );
        println!();
        println!(
            "| Weft | time per suggestion | run to {overhead_history} (trials/s) | Optuna | time per ask + tell |"
        );
        println!("|---|---|---|---|---|");
        for p in &pairs {
            if p.key == "mtpe" {
                continue;
            }
            let t = Instant::now();
            let (per, asks, thr) = weft_overhead(p.weft, overhead_history);
            eprintln!(
                "weft {} overhead: {:.1} s",
                p.weft,
                t.elapsed().as_secs_f64()
            );
            let theirs = optuna.as_ref().ok().and_then(|o| {
                o.overhead
                    .iter()
                    .find(|(s, _, _)| s == p.optuna)
                    .map(|(_, sec, n)| format!("{} (mean of {n})", seconds(*sec)))
            });
            println!(
                "| {} | {} (mean of {asks}) | {} | {} | {} |",
                p.weft,
                seconds(per),
                thr.map_or("– (random history)".into(), |t| format!("{t:.0}")),
                p.optuna_label,
                theirs.unwrap_or_else(|| "–".into()),
            );
        }
    }
}
