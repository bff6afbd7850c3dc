//! Prints each algorithm's Branin figures over seeds (`cargo bench -p weft-tune --bench
//! measure`; env SEEDS, ALGS, BUDGET), from which the thresholds in tests/branin.rs come.

#[path = "../tests/common/mod.rs"]
mod common;
use common::*;
use weft_tune::Setting;

fn measure(alg: &str, settings: &[Setting], budget: usize, seeds: u64) {
    let mut hits = Vec::new();
    let mut regrets = Vec::new();
    for s in 0..seeds {
        let mut all = settings.to_vec();
        all.extend(seed(s));
        let h = run(
            &mut *suggester(alg, &all, &branin_space()),
            &branin_of,
            budget,
            1,
        );
        hits.push(trials_to(&h, BRANIN_MIN, 0.01).unwrap_or(usize::MAX));
        regrets.push(best(&h) - BRANIN_MIN);
    }
    hits.sort();
    regrets.sort_by(f64::total_cmp);
    let reached = hits.iter().filter(|&&h| h != usize::MAX).count();
    println!(
        "{alg:22} budget {budget}: within 1% in {reached}/{seeds}; median trials {}; regret median {:.4} worst {:.4}",
        hits[hits.len() / 2],
        regrets[regrets.len() / 2],
        regrets[regrets.len() - 1]
    );
}

fn main() {
    let seeds: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let algs = std::env::var("ALGS")
        .unwrap_or("random,sobol,tpe,multivariate-tpe,bayesianoptimization,cmaes".into());
    for alg in algs.split(',') {
        let budget = std::env::var("BUDGET")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100);
        measure(alg, &[], budget, seeds);
    }
}
