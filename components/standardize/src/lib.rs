//! Standardises the feature columns of train and test with the train set's mean and standard
//! deviation (fitting on test would leak it into training).
//!
//! Inputs: `train`, `test` (Dataset). Params: `label` (string, the column left as is).
//! Outputs: `train`, `test` (Dataset), `scaler` (Artifact: `scaler.json` with means and stds).
use weft_step::{report, Guest, StepInput, StepOutput};
use weft_tabular::Table;

struct Standardize;

impl Guest for Standardize {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let label = input.str_param("label")?;
        let mut train = Table::read(input.input("train")?)?;
        let mut test = Table::read(input.input("test")?)?;
        if train.header != test.header {
            return Err(format!("train and test columns differ: {:?} vs {:?}", train.header, test.header));
        }
        let l = train.column(label)?;
        let mut scaler = Vec::new();
        for c in (0..train.header.len()).filter(|&c| c != l) {
            let values: Vec<f64> = train.rows.iter().map(|r| r[c].parse::<f64>().map_err(|_| format!("column `{}`: `{}` is not a number", train.header[c], r[c]))).collect::<Result<_, _>>()?;
            let n = values.len().max(1) as f64;
            let mean = values.iter().sum::<f64>() / n;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            let scale = if std > 0.0 { std } else { 1.0 };
            for table in [&mut train, &mut test] {
                for row in table.rows.iter_mut() {
                    let v: f64 = row[c].parse().map_err(|_| format!("column `{}`: `{}` is not a number", table.header[c], row[c]))?;
                    row[c] = format!("{:.6}", (v - mean) / scale);
                }
            }
            report(&format!("mean/{}", train.header[c]), mean, None);
            scaler.push(format!("{{\"column\":{:?},\"mean\":{mean:?},\"std\":{scale:?}}}", train.header[c]));
        }
        train.write(input.output("train")?)?;
        test.write(input.output("test")?)?;
        let path = format!("{}/scaler.json", input.output("scaler")?);
        std::fs::write(&path, format!("[{}]\n", scaler.join(","))).map_err(|e| format!("{path}: {e}"))?;
        Ok(StepOutput { params: vec![] })
    }
}

weft_step::export!(Standardize with_types_in weft_step::bindings);
