//! medianstop and asha.

mod common;
use weft_tune::{early_stopper, Decision, Direction, Setting, Trial, TrialState};

fn finished(series: &[f64]) -> Trial {
    Trial {
        assignment: Default::default(),
        state: TrialState::Succeeded,
        objective: series.last().copied(),
        series: series
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u64 + 1, v))
            .collect(),
    }
}

fn series(values: &[f64]) -> Vec<(u64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u64 + 1, v))
        .collect()
}

#[test]
fn medianstop_stops_a_worse_than_median_series_from_start_step() {
    let stop = early_stopper("medianstop", &[]).unwrap();
    let done: Vec<Trial> = (0..3)
        .map(|k| finished(&[1.0, 0.8, 0.6, 0.4 + 0.01 * k as f64, 0.3, 0.2]))
        .collect();
    let bad = [2.0, 1.9, 1.8, 1.7, 1.6];
    // Before start_step (4 reports), never.
    for n in 1..4 {
        assert_eq!(
            stop.decide(&series(&bad[..n]), &done, Direction::Minimize),
            Decision::Continue,
            "{n} reports"
        );
    }
    assert_eq!(
        stop.decide(&series(&bad[..4]), &done, Direction::Minimize),
        Decision::Stop
    );
    // A good one goes on.
    let good = [0.9, 0.7, 0.5, 0.3];
    assert_eq!(
        stop.decide(&series(&good), &done, Direction::Minimize),
        Decision::Continue
    );
    // Maximising, the bad series is the best.
    let done_max: Vec<Trial> = (0..3).map(|_| finished(&[0.1, 0.2, 0.3, 0.4])).collect();
    assert_eq!(
        stop.decide(&series(&bad[..4]), &done_max, Direction::Maximize),
        Decision::Continue
    );
    assert_eq!(
        stop.decide(
            &series(&[0.0, 0.0, 0.0, 0.0]),
            &done_max,
            Direction::Maximize
        ),
        Decision::Stop
    );
}

#[test]
fn medianstop_waits_for_min_trials_required() {
    let stop = early_stopper(
        "medianstop",
        &[
            Setting::new("min_trials_required", "5"),
            Setting::new("start_step", "2"),
        ],
    )
    .unwrap();
    let mut done: Vec<Trial> = (0..4).map(|_| finished(&[0.1, 0.1, 0.1])).collect();
    let bad = series(&[5.0, 5.0]);
    assert_eq!(
        stop.decide(&bad, &done, Direction::Minimize),
        Decision::Continue
    );
    // Failed trials do not count.
    done.push(Trial {
        state: TrialState::Failed,
        ..finished(&[0.1])
    });
    assert_eq!(
        stop.decide(&bad, &done, Direction::Minimize),
        Decision::Continue
    );
    done.push(finished(&[0.1, 0.1]));
    assert_eq!(
        stop.decide(&bad, &done, Direction::Minimize),
        Decision::Stop
    );
    assert_eq!(
        stop.decide(&series(&[5.0]), &done, Direction::Minimize),
        Decision::Continue,
        "before start_step"
    );
}

#[test]
fn medianstop_uses_the_best_value_so_far() {
    let stop = early_stopper("medianstop", &[]).unwrap();
    let done: Vec<Trial> = (0..3)
        .map(|_| finished(&[1.0, 1.0, 1.0, 1.0, 1.0]))
        .collect();
    // Worse now, but once better than the median: goes on.
    assert_eq!(
        stop.decide(
            &series(&[0.5, 2.0, 2.0, 2.0, 2.0]),
            &done,
            Direction::Minimize
        ),
        Decision::Continue
    );
    // All NaN so far: stopped.
    assert_eq!(
        stop.decide(&series(&[f64::NAN; 4]), &done, Direction::Minimize),
        Decision::Stop
    );
}

#[test]
fn asha_stops_the_bottom_of_a_rung() {
    let asha = early_stopper(
        "asha",
        &[
            Setting::new("min_resource", "1"),
            Setting::new("reduction_factor", "2"),
        ],
    )
    .unwrap();
    // Rungs at steps 1, 2, 4, 8. Four finished trials with values 1..4 at every step.
    let done: Vec<Trial> = (1..=4).map(|k| finished(&[k as f64; 8])).collect();
    // At rung 1 (step 1), ranks among 5: top 2 go on.
    assert_eq!(
        asha.decide(&series(&[1.5]), &done, Direction::Minimize),
        Decision::Continue
    );
    assert_eq!(
        asha.decide(&series(&[3.5]), &done, Direction::Minimize),
        Decision::Stop
    );
    // Step 3 reaches no new rung: no decision made there.
    assert_eq!(
        asha.decide(&series(&[1.5, 1.5, 9.0]), &done, Direction::Minimize),
        Decision::Continue
    );
    // Step 4 is a rung: 9.0 is the bottom.
    assert_eq!(
        asha.decide(&series(&[1.5, 1.5, 9.0, 9.0]), &done, Direction::Minimize),
        Decision::Stop
    );
    // The best at a rung always goes on, even alone.
    assert_eq!(
        asha.decide(&series(&[0.5]), &[], Direction::Minimize),
        Decision::Continue
    );
    // auto min_resource: nothing is stopped before a trial has finished.
    let auto = early_stopper("asha", &[]).unwrap();
    assert_eq!(
        auto.decide(&series(&[100.0]), &[], Direction::Minimize),
        Decision::Continue
    );
    assert_eq!(
        auto.decide(&series(&[100.0]), &done, Direction::Minimize),
        Decision::Stop
    );
}
