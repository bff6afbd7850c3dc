//! Known test functions as a trial: what tuning algorithms are tested and benchmarked on.
//!
//! Param `function`: `branin` (x1 in [-5, 10], x2 in [0, 15]; minimum 0.397887),
//! `hartmann6` (x1..x6 in [0, 1]; minimum -3.32237) or `quadratic` (sum of xi², minimum 0),
//! read from float params `x1`, `x2`, ...; int and string params are accepted as numbers too
//! (an int parameter, a categorical one written as a number).
//!
//! With `steps` > 1 it reports a learning curve: metric `value` at steps 1..=steps, each
//! `f(x) + spread / step`, so a worse configuration is worse at every step (what early stopping
//! watches), then `value` without a step (the final value). `crash_above` fails the trial with
//! a trap when x1 exceeds it (a crashing trial); `sleep_ms` makes the trial take that long
//! (spread over its steps), `sleep_per_unit_ms` that many ms per unit of the value (at most
//! 2 s: trials then end in the order of their values, not of their starts). Returns `value`
//! as an output parameter.
use weft_step::{out_param, report, Guest, ParamValue, StepInput, StepOutput};

struct Objective;

impl Guest for Objective {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let x = |i: usize| number(&input, &format!("x{i}"));
        let value = match input.str_param_or("function", "branin")? {
            "branin" => branin(x(1)?, x(2)?),
            "hartmann6" => hartmann6(&[x(1)?, x(2)?, x(3)?, x(4)?, x(5)?, x(6)?]),
            "quadratic" => (1..=6)
                .filter_map(|i| x(i).ok())
                .map(|v| v * v)
                .sum(),
            other => return Err(format!("unknown function `{other}`")),
        };
        if let Some(limit) = input.param("crash_above") {
            if x(1)? > as_number(limit).unwrap_or(f64::INFINITY) {
                panic!("x1 = {} is above crash_above", x(1)?);
            }
        }
        let per_unit = input.float_param_or("sleep_per_unit_ms", 0.0)?;
        let by_value = (value.abs() * per_unit).clamp(0.0, 2_000.0) as u64;
        let pause = input.int_param_or("sleep_ms", 0)?.clamp(0, 60_000) as u64 + by_value;
        let steps = input.int_param_or("steps", 1)?.clamp(1, 10_000) as u64;
        let spread = input.float_param_or("spread", 10.0)?;
        if steps > 1 {
            for step in 1..=steps {
                report("value", value + spread / step as f64, Some(step));
                std::thread::sleep(std::time::Duration::from_millis(pause / steps));
            }
        }
        if steps == 1 {
            std::thread::sleep(std::time::Duration::from_millis(pause));
        }
        report("value", value, None);
        Ok(StepOutput {
            params: vec![out_param("value", ParamValue::Float(value))],
        })
    }
}

fn number(input: &StepInput, name: &str) -> Result<f64, String> {
    let v = input
        .param(name)
        .ok_or_else(|| format!("missing param `{name}`"))?;
    as_number(v).ok_or_else(|| format!("param `{name}` is not a number"))
}

fn as_number(v: &ParamValue) -> Option<f64> {
    match v {
        ParamValue::Float(f) => Some(*f),
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Str(s) => s.parse().ok(),
        _ => None,
    }
}

fn branin(x1: f64, x2: f64) -> f64 {
    use std::f64::consts::PI;
    let (a, b, c) = (1.0, 5.1 / (4.0 * PI * PI), 5.0 / PI);
    let (r, s, t) = (6.0, 10.0, 1.0 / (8.0 * PI));
    a * (x2 - b * x1 * x1 + c * x1 - r).powi(2) + s * (1.0 - t) * x1.cos() + s
}

fn hartmann6(x: &[f64; 6]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

weft_step::export!(Objective with_types_in weft_step::bindings);
