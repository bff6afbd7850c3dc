//! random, grid and sobol: determinism, coverage, the sequence's points, domains.

mod common;
use common::*;
use std::collections::BTreeSet;
use weft_tune::{Direction, Distribution, Domain, Param, Value};

fn mixed_space() -> Vec<Param> {
    vec![
        double("lr", 1e-4, 1e-1),
        Param {
            name: "lr_log".into(),
            domain: Domain::Double {
                min: 1e-5,
                max: 1.0,
                step: None,
                distribution: Distribution::LogUniform,
            },
        },
        Param {
            name: "w".into(),
            domain: Domain::Double {
                min: 0.0,
                max: 1.0,
                step: Some(0.25),
                distribution: Distribution::Normal,
            },
        },
        Param {
            name: "units".into(),
            domain: Domain::Int {
                min: 8,
                max: 64,
                step: Some(8),
                distribution: Distribution::Uniform,
            },
        },
        Param {
            name: "layers".into(),
            domain: Domain::Int {
                min: 1,
                max: 1000,
                step: None,
                distribution: Distribution::LogNormal,
            },
        },
        Param {
            name: "batch".into(),
            domain: Domain::Discrete {
                values: vec![16.0, 32.0, 64.0],
            },
        },
        Param {
            name: "mom".into(),
            domain: Domain::Discrete {
                values: vec![0.5, 0.9, 0.99],
            },
        },
        Param {
            name: "opt".into(),
            domain: Domain::Categorical {
                choices: vec!["sgd".into(), "adam".into()],
            },
        },
    ]
}

#[test]
fn same_seed_same_trials_and_different_seeds_differ() {
    for alg in ["random", "sobol", "grid"] {
        let space = if alg == "grid" {
            vec![
                Param {
                    name: "a".into(),
                    domain: Domain::Int {
                        min: 0,
                        max: 9,
                        step: None,
                        distribution: Distribution::Uniform,
                    },
                },
                Param {
                    name: "b".into(),
                    domain: Domain::Categorical {
                        choices: vec!["x".into(), "y".into(), "z".into()],
                    },
                },
            ]
        } else {
            branin_space()
        };
        let f = |a: &weft_tune::Assignment| a.len() as f64;
        let one = run(&mut *suggester(alg, &seed(7), &space), &f, 20, 1);
        let two = run(&mut *suggester(alg, &seed(7), &space), &f, 20, 4);
        let other = run(&mut *suggester(alg, &seed(8), &space), &f, 20, 1);
        let a = |h: &[weft_tune::Trial]| h.iter().map(|t| t.assignment.clone()).collect::<Vec<_>>();
        assert_eq!(a(&one), a(&two), "{alg}: batching changed the trials");
        assert_ne!(
            a(&one),
            a(&other),
            "{alg}: seeds 7 and 8 gave the same trials"
        );
    }
}

#[test]
fn sobol_points_are_the_sequences() {
    let space = vec![
        double("x", -5.0, 10.0),
        double("y", 0.0, 15.0),
        double("z", 0.0, 1.0),
    ];
    let h = run(&mut *suggester("sobol", &seed(3), &space), &|_| 0.0, 64, 1);
    for (n, t) in h.iter().enumerate() {
        let u = |d: u32| f64::from(sobol_burley::sample(n as u32, d, 3));
        assert_eq!(num(&t.assignment, "x"), -5.0 + 15.0 * u(0));
        assert_eq!(num(&t.assignment, "y"), 15.0 * u(1));
        assert_eq!(num(&t.assignment, "z"), u(2));
    }
}

#[test]
fn grid_covers_exactly_its_grid_then_stops() {
    let space = vec![
        Param {
            name: "a".into(),
            domain: Domain::Int {
                min: 1,
                max: 9,
                step: Some(3),
                distribution: Distribution::Uniform,
            },
        },
        Param {
            name: "b".into(),
            domain: Domain::Double {
                min: 0.0,
                max: 1.0,
                step: Some(0.5),
                distribution: Distribution::Uniform,
            },
        },
        Param {
            name: "c".into(),
            domain: Domain::Categorical {
                choices: vec!["x".into(), "y".into()],
            },
        },
    ];
    let mut s = suggester("grid", &seed(1), &space);
    let h = run(&mut *s, &|_| 0.0, 18, 5);
    let got: BTreeSet<String> = h.iter().map(|t| format!("{:?}", t.assignment)).collect();
    assert_eq!(got.len(), 18, "a grid point came twice");
    let mut want = BTreeSet::new();
    for a in [1, 4, 7] {
        for b in [0.0, 0.5, 1.0] {
            for c in ["x", "y"] {
                let m: weft_tune::Assignment = [
                    ("a".to_string(), Value::Int(a)),
                    ("b".to_string(), Value::Double(b)),
                    ("c".to_string(), Value::Str(c.into())),
                ]
                .into();
                want.insert(format!("{m:?}"));
            }
        }
    }
    assert_eq!(got, want);
    assert!(s.suggest(&h, 3).unwrap().is_empty(), "the grid is used up");
}

#[test]
fn grid_refuses_more_trials_than_points_and_doubles_without_step() {
    let space = vec![Param {
        name: "a".into(),
        domain: Domain::Int {
            min: 0,
            max: 3,
            step: None,
            distribution: Distribution::Uniform,
        },
    }];
    let err = weft_tune::suggester("grid", &[], &space, Direction::Minimize, Some(5))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("grid") && err.contains('5') && err.contains('4'),
        "{err}"
    );
    assert!(weft_tune::suggester("grid", &[], &space, Direction::Minimize, Some(4)).is_ok());
    let err = weft_tune::suggester("grid", &[], &branin_space(), Direction::Minimize, None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`x`") && err.contains("step"), "{err}");
}

#[test]
fn values_stay_in_their_domains() {
    let space = mixed_space();
    for alg in [
        "random",
        "sobol",
        "tpe",
        "multivariate-tpe",
        "bayesianoptimization",
    ] {
        for s in 0..3 {
            let Ok(mut sug) =
                weft_tune::suggester(alg, &seed(s), &space, Direction::Minimize, None)
            else {
                panic!("{alg} refused the mixed space")
            };
            let f = |a: &weft_tune::Assignment| num(a, "lr") + num(a, "units") / 64.0;
            for t in run(&mut *sug, &f, 30, 3) {
                check_domain(&space, &t.assignment);
            }
        }
    }
}

#[test]
fn discrete_whole_numbers_come_back_as_ints() {
    let space = mixed_space();
    let h = run(&mut *suggester("random", &seed(1), &space), &|_| 0.0, 10, 1);
    assert!(h
        .iter()
        .all(|t| matches!(t.assignment["batch"], Value::Int(_))));
    assert!(h
        .iter()
        .all(|t| matches!(t.assignment["mom"], Value::Double(_))));
}
