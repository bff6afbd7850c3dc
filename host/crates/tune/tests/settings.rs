//! Every bad setting is refused, naming the algorithm, the setting and the value.

mod common;
use common::*;
use weft_tune::{early_stopper, suggester, Direction, Distribution, Domain, Param, Setting};

fn err(alg: &str, settings: &[(&str, &str)], space: &[Param]) -> String {
    let s: Vec<Setting> = settings.iter().map(|(n, v)| Setting::new(*n, *v)).collect();
    match suggester(alg, &s, space, Direction::Minimize, None) {
        Ok(_) => panic!("{alg} {settings:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(msg: &str, words: &[&str]) {
    for w in words {
        assert!(msg.contains(w), "`{msg}` does not name `{w}`");
    }
}

#[test]
fn unknown_algorithms_list_the_known_ones() {
    let e = err("hyperopt", &[], &branin_space());
    assert_names(
        &e,
        &[
            "hyperopt",
            "random",
            "grid",
            "sobol",
            "tpe",
            "multivariate-tpe",
            "bayesianoptimization",
            "cmaes",
            "hyperband",
        ],
    );
    let e = early_stopper("median", &[]).err().unwrap().to_string();
    assert_names(&e, &["median", "medianstop", "asha"]);
}

#[test]
fn unknown_settings_list_the_known_ones() {
    let e = err("random", &[("seed", "1")], &branin_space());
    assert_names(&e, &["random", "seed", "random_state"]);
    let e = err("cmaes", &[("popsize", "4")], &branin_space());
    assert_names(
        &e,
        &[
            "cmaes",
            "popsize",
            "sigma",
            "restart_strategy",
            "random_state",
        ],
    );
    let e = early_stopper("medianstop", &[Setting::new("n_startup_trials", "3")])
        .err()
        .unwrap()
        .to_string();
    assert_names(
        &e,
        &[
            "medianstop",
            "n_startup_trials",
            "min_trials_required",
            "start_step",
        ],
    );
}

#[test]
fn bad_values_are_named() {
    let b = branin_space();
    let cases: &[(&str, &str, &str)] = &[
        ("random", "random_state", "-1"),
        ("grid", "random_state", "x"),
        ("sobol", "random_state", "1.5"),
        ("tpe", "gamma", "1.5"),
        ("tpe", "gamma", "0"),
        ("tpe", "prior_weight", "0"),
        ("tpe", "n_EI_candidates", "0"),
        ("tpe", "random_state", "-3"),
        ("multivariate-tpe", "n_startup_trials", "-1"),
        ("multivariate-tpe", "n_ei_candidates", "0"),
        ("bayesianoptimization", "base_estimator", "RF"),
        ("bayesianoptimization", "base_estimator", "XYZ"),
        ("bayesianoptimization", "acq_func", "gp_hedge"),
        ("bayesianoptimization", "acq_func", "PI"),
        ("bayesianoptimization", "acq_optimizer", "adam"),
        ("bayesianoptimization", "n_initial_points", "-2"),
        ("cmaes", "sigma", "0"),
        ("cmaes", "sigma", "abc"),
        ("cmaes", "restart_strategy", "lipop"),
        ("cmaes", "random_state", "-1"),
        ("hyperband", "eta", "1"),
    ];
    for (alg, name, value) in cases {
        let mut s = vec![(*name, *value)];
        if *alg == "hyperband" {
            s.push(("r_l", "9"));
            s.push(("resource_name", "y"));
        }
        let e = err(alg, &s, &b);
        assert_names(&e, &[alg, name, &format!("`{value}`")]);
    }
    for (name, value) in [("min_trials_required", "0"), ("start_step", "x")] {
        let e = early_stopper("medianstop", &[Setting::new(name, value)])
            .err()
            .unwrap()
            .to_string();
        assert_names(&e, &["medianstop", name, value]);
    }
    for (name, value) in [
        ("reduction_factor", "1"),
        ("min_resource", "0"),
        ("min_early_stopping_rate", "-1"),
    ] {
        let e = early_stopper("asha", &[Setting::new(name, value)])
            .err()
            .unwrap()
            .to_string();
        assert_names(&e, &["asha", name, value]);
    }
}

#[test]
fn hyperband_needs_r_l_and_a_numeric_resource() {
    let b = branin_space();
    assert_names(
        &err("hyperband", &[("resource_name", "y")], &b),
        &["hyperband", "r_l"],
    );
    assert_names(
        &err("hyperband", &[("r_l", "9")], &b),
        &["hyperband", "resource_name"],
    );
    assert_names(
        &err("hyperband", &[("r_l", "-9"), ("resource_name", "y")], &b),
        &["r_l", "`-9`"],
    );
    assert_names(
        &err(
            "hyperband",
            &[("r_l", "9"), ("resource_name", "epochs")],
            &b,
        ),
        &["resource_name", "`epochs`"],
    );
    let cat = vec![
        b[0].clone(),
        Param {
            name: "c".into(),
            domain: Domain::Categorical {
                choices: vec!["a".into()],
            },
        },
    ];
    assert_names(
        &err("hyperband", &[("r_l", "9"), ("resource_name", "c")], &cat),
        &["resource_name", "`c`"],
    );
}

#[test]
fn cmaes_needs_two_numeric_params_and_no_categorical() {
    let one = vec![double("x", 0.0, 1.0)];
    assert_names(
        &err("cmaes", &[], &one),
        &[
            "cmaes",
            "CMA-ES only supports two or more dimensional continuous search space",
        ],
    );
    let cat = vec![
        double("x", 0.0, 1.0),
        double("y", 0.0, 1.0),
        Param {
            name: "opt".into(),
            domain: Domain::Categorical {
                choices: vec!["a".into(), "b".into()],
            },
        },
    ];
    assert_names(&err("cmaes", &[], &cat), &["cmaes", "`opt`", "categorical"]);
}

#[test]
fn bad_spaces_are_named() {
    let p = |d: Domain| {
        vec![Param {
            name: "p".into(),
            domain: d,
        }]
    };
    let u = Distribution::Uniform;
    for (d, word) in [
        (
            Domain::Double {
                min: 2.0,
                max: 1.0,
                step: None,
                distribution: u,
            },
            "min",
        ),
        (
            Domain::Double {
                min: 0.0,
                max: 1.0,
                step: Some(0.0),
                distribution: u,
            },
            "step",
        ),
        (
            Domain::Double {
                min: 0.0,
                max: 1.0,
                step: None,
                distribution: Distribution::LogUniform,
            },
            "log",
        ),
        (
            Domain::Int {
                min: 5,
                max: 1,
                step: None,
                distribution: u,
            },
            "min",
        ),
        (
            Domain::Int {
                min: 0,
                max: 9,
                step: Some(-1),
                distribution: u,
            },
            "step",
        ),
        (Domain::Discrete { values: vec![] }, "list"),
        (Domain::Categorical { choices: vec![] }, "list"),
    ] {
        assert_names(&err("random", &[], &p(d)), &["random", "`p`", word]);
    }
    assert_names(&err("random", &[], &[]), &["no parameters"]);
    let twice = vec![double("x", 0.0, 1.0), double("x", 0.0, 2.0)];
    assert_names(&err("random", &[], &twice), &["`x`", "twice"]);
}
