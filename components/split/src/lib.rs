//! Splits a dataset into train and test sets: a seeded shuffle, then the first `test_fraction`
//! of rows go to test. Deterministic for a given seed.
//!
//! Inputs: `data` (Dataset). Params: `test_fraction` (float, default 0.3), `seed` (int, default 0).
//! Outputs: `train`, `test` (Dataset); params `train_rows`, `test_rows` (int).
use weft_step::{out_param, report, Guest, ParamValue, StepInput, StepOutput};
use weft_tabular::{Rng, Table};

struct Split;

impl Guest for Split {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let table = Table::read(input.input("data")?)?;
        let fraction = input.float_param_or("test_fraction", 0.3)?;
        if !(0.0..1.0).contains(&fraction) {
            return Err(format!("parameter `test_fraction` must be in [0, 1), got {fraction}"));
        }
        let mut rows = table.rows.clone();
        Rng::new(input.int_param_or("seed", 0)? as u64).shuffle(&mut rows);
        let n_test = ((rows.len() as f64) * fraction).round() as usize;
        let test = Table { header: table.header.clone(), rows: rows[..n_test].to_vec() };
        let train = Table { header: table.header.clone(), rows: rows[n_test..].to_vec() };
        train.write(input.output("train")?)?;
        test.write(input.output("test")?)?;
        report("train_rows", train.rows.len() as f64, None);
        report("test_rows", test.rows.len() as f64, None);
        Ok(StepOutput {
            params: vec![
                out_param("train_rows", ParamValue::Int(train.rows.len() as i64)),
                out_param("test_rows", ParamValue::Int(test.rows.len() as i64)),
            ],
        })
    }
}

weft_step::export!(Split with_types_in weft_step::bindings);
