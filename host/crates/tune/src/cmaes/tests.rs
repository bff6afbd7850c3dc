//! The kept fold against the stateless replay it replaced, and a warm suggester against a
//! fresh one.

use super::*;
use crate::{Distribution, Domain, Param, Setting};

fn cmaes(seed: u64, restart: &str, params: &[Param]) -> CmaEs {
    let settings = [
        Setting::new("random_state", seed.to_string()),
        Setting::new("restart_strategy", restart),
    ];
    let known = crate::settings::known_settings("cmaes").expect("cmaes");
    let parsed = Settings::parse("cmaes", known, &settings).expect("settings");
    let space = Space::new("cmaes", params).expect("space");
    CmaEs::new(&parsed, space, Direction::Minimize).expect("cmaes")
}

/// The replay every call did before the fold was kept: each generation matched its trials
/// against its first `history.len() - pos + λ` candidates at once, so whether an earlier trial
/// matched could change as the history grew (a trial of the previous generation sharing its
/// assignment with a far candidate, in a coarse discrete space), which no kept state can
/// follow. The fold matches the `k`-th trial among the first `k + 1 + λ`; the two agree
/// whenever trials match only candidates this generation handed out, as in continuous spaces.
fn reference(s: &CmaEs, history: &[Trial], count: usize) -> Vec<Assignment> {
    let mut cma = Cma::new(0, vec![0.5; s.space.len()], s.sigma0, s.lambda0());
    let mut r = Restarts::default();
    let mut pos = 0;
    let (cma, used) = loop {
        let limit = history.len() - pos + cma.lambda;
        let cands: Vec<Vec<f64>> = (0..limit).map(|j| cma.candidate(s.seed, j)).collect();
        let mut free: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, x) in cands.iter().enumerate().rev() {
            free.entry(key(&s.space.at_unit(x))).or_default().push(j);
        }
        let mut used = vec![false; limit];
        let mut told = None;
        let mut pop = Vec::new();
        let mut open = true;
        for (i, t) in history.iter().enumerate().skip(pos) {
            let Some(j) = free.get_mut(&key(&t.assignment)).and_then(Vec::pop) else {
                continue;
            };
            used[j] = true;
            if !open {
                continue;
            }
            match (t.state, t.loss(s.direction)) {
                (TrialState::Running, _) => open = false,
                (TrialState::Succeeded, Some(l)) => pop.push((cands[j].clone(), l)),
                _ => {}
            }
            if open && pop.len() == cma.lambda {
                told = Some(i);
                open = false;
            }
        }
        let Some(last) = told else { break (cma, used) };
        let lambda = cma.lambda;
        cma.tell(pop);
        if r.small {
            r.small_evals += lambda;
        } else {
            r.large_evals += lambda;
        }
        if s.restart != Restart::None && cma.should_stop() {
            cma = s.restarted(&mut r);
        }
        pos = last + 1;
    };
    (0..)
        .filter(|&j| !used.get(j).copied().unwrap_or(false))
        .take(count)
        .map(|j| s.space.at_unit(&cma.candidate(s.seed, j)))
        .collect()
}

fn doubles(n: usize) -> Vec<Param> {
    (0..n)
        .map(|i| Param {
            name: format!("x{i}"),
            domain: Domain::Double {
                min: -1.0,
                max: 2.0,
                step: None,
                distribution: Distribution::Uniform,
            },
        })
        .collect()
}

/// Two small integer ranges and a list: many candidates share an assignment.
fn coarse() -> Vec<Param> {
    vec![
        Param {
            name: "a".into(),
            domain: Domain::Int {
                min: 0,
                max: 3,
                step: None,
                distribution: Distribution::Uniform,
            },
        },
        Param {
            name: "b".into(),
            domain: Domain::Int {
                min: -2,
                max: 2,
                step: None,
                distribution: Distribution::Uniform,
            },
        },
        Param {
            name: "c".into(),
            domain: Domain::Discrete {
                values: vec![0.5, 1.5, 2.5],
            },
        },
    ]
}

fn value(a: &Assignment) -> f64 {
    a.values()
        .map(|v| match v {
            Value::Int(i) => *i as f64,
            Value::Double(d) => *d,
            Value::Str(_) => 0.0,
        })
        .map(|x| (x - 0.3).powi(2))
        .sum()
}

/// A parallel runner's history: up to `parallel` trials in flight, finishing in random order,
/// some failing, some NaN, `flat` making every value the same (so restarts happen); at each
/// request the driving (warm) suggester and a fresh one must agree, and with the reference
/// when `replay` is set.
fn drive(s: &mut CmaEs, fresh: impl Fn() -> CmaEs, run: (usize, usize, bool), replay: bool) {
    let (n, parallel, flat) = run;
    let mut rng = rng::stream(s.seed, &[99]);
    let mut h: Vec<Trial> = Vec::new();
    while h.len() < n {
        let running: Vec<usize> = (0..h.len()).filter(|&i| h[i].state == Running).collect();
        if running.len() >= parallel || (!running.is_empty() && rng.random::<f64>() < 0.5) {
            let i = running[rng.random_range(0..running.len())];
            let u: f64 = rng.random();
            let v = if flat { 1.0 } else { value(&h[i].assignment) };
            h[i].state = if u < 0.1 {
                TrialState::Failed
            } else {
                Succeeded
            };
            h[i].objective = Some(if u < 0.13 { f64::NAN } else { v });
            continue;
        }
        let count = rng.random_range(1..=parallel - running.len());
        let got = s.suggest(&h, count).expect("suggest");
        // every call up to 100 trials, then one in 25 (a fresh fold costs O(history), the
        // replay O(history²))
        if h.len() <= 100 || rng.random::<f64>() < 0.04 {
            let fresh = fresh().suggest(&h, count).unwrap();
            assert_eq!(got, fresh, "warm ≠ fresh at {}", h.len());
            if replay {
                assert_eq!(got, reference(s, &h, count), "≠ replay at {}", h.len());
            }
        }
        h.extend(got.into_iter().map(|assignment| Trial {
            assignment,
            state: Running,
            objective: None,
            series: vec![],
        }));
    }
}

#[test]
fn the_kept_fold_suggests_as_the_replay_did() {
    for (params, parallel) in [(doubles(2), 1), (doubles(6), 1), (doubles(3), 4)] {
        for (restart, flat) in [("none", false), ("ipop", true), ("bipop", true)] {
            let mut s = cmaes(3, restart, &params);
            let fresh = || cmaes(3, restart, &params);
            // a flat run stops after 10 + 30n/λ generations (about 35 here in 6-D)
            let n = if flat { 400 } else { 120 };
            drive(&mut s, fresh, (n, parallel, flat), true);
            let restarts = s.state.as_ref().map_or(0, |st| st.restarts.count);
            assert_eq!(restarts > 0, flat, "{restart}");
        }
    }
}

#[test]
fn in_a_coarse_space_a_warm_suggester_agrees_with_a_fresh_one() {
    for seed in 0..4 {
        for (parallel, restart) in [(1, "ipop"), (3, "none"), (4, "bipop")] {
            let mut s = cmaes(seed, restart, &coarse());
            let fresh = || cmaes(seed, restart, &coarse());
            drive(&mut s, fresh, (100, parallel, seed % 2 == 1), false);
        }
    }
}

fn succeeded(a: Assignment, v: f64) -> Trial {
    Trial {
        assignment: a,
        state: Succeeded,
        objective: Some(v),
        series: vec![(1, v)],
    }
}

fn sequential(s: &mut CmaEs, n: usize) -> Vec<Trial> {
    let mut h = Vec::new();
    for _ in 0..n {
        let a = s.suggest(&h, 1).unwrap().remove(0);
        let v = value(&a);
        h.push(succeeded(a, v));
    }
    h
}

#[test]
fn a_warm_suggester_agrees_with_a_fresh_one_on_any_history() {
    let params = doubles(3);
    let fresh = || cmaes(7, "ipop", &params);
    let mut warm = fresh();
    let a = sequential(&mut warm, 80);
    let b = sequential(&mut cmaes(8, "ipop", &params), 80);
    let mut changed = a.clone();
    changed[30].objective = Some(-5.0);
    let mut running = a.clone();
    running[40].state = Running;
    let mut foreign = a[..50].to_vec();
    foreign.insert(20, succeeded(b[3].assignment.clone(), 0.0));
    foreign.extend_from_slice(&a[50..]);
    // another experiment's history, a shorter one, one with a changed value, an unfinished
    // trial, an unmatched trial inserted, and back to an extension of the first
    for h in [
        &b,
        &a[..35].to_vec(),
        &changed,
        &running,
        &foreign,
        &a,
        &a[..79].to_vec(),
    ] {
        assert_eq!(warm.suggest(h, 3).unwrap(), fresh().suggest(h, 3).unwrap());
        assert_eq!(warm.suggest(h, 3).unwrap(), reference(&warm, h, 3));
    }
    // the kept fold covers most of the history after a long run
    assert!(warm.state.as_ref().unwrap().seen.len() > 60);
}
