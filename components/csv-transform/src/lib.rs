//! Standardises the numeric columns of a CSV dataset (z-scores), optionally dropping columns.
//!
//! Inputs: artifact `data` (a CSV file with a header row).
//! Params: `drop` (string, comma-separated column names, optional), `standardize` (bool, default
//! true). Output artifact `transformed` receives `data.csv`. Output params: `rows` (int),
//! `columns` (JSON list). Metrics: `rows`, and `mean/<column>` and `std/<column>` for each numeric
//! column, computed before scaling.
use weft_step::{out_param, report, Guest, ParamValue, StepInput, StepOutput};

struct CsvTransform;

impl Guest for CsvTransform {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        // A file, or an artifact directory holding one .csv.
        let src_path = weft_tabular::find_csv(input.input("data")?)?;
        let src = src_path.to_str().ok_or("input path is not UTF-8")?;
        let out_dir = input.output("transformed")?;
        let standardize = input.bool_param_or("standardize", true)?;
        let drop: Vec<String> = match input.param("drop") {
            Some(ParamValue::Str(s)) => s.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect(),
            Some(other) => return Err(format!("parameter `drop` must be a string, got {other:?}")),
            None => Vec::new(),
        };

        let mut reader = csv::Reader::from_path(src).map_err(|e| format!("reading {src}: {e}"))?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| format!("reading header of {src}: {e}"))?
            .iter()
            .map(str::to_string)
            .collect();
        for name in &drop {
            if !header.contains(name) {
                return Err(format!("parameter `drop` names column `{name}`, which {src} lacks (columns: {header:?})"));
            }
        }
        let keep: Vec<usize> = (0..header.len()).filter(|&i| !drop.contains(&header[i])).collect();
        let mut rows: Vec<Vec<String>> = Vec::new();
        for (line, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("{src}: row {}: {e}", line + 2))?;
            rows.push(keep.iter().map(|&i| record.get(i).unwrap_or("").to_string()).collect());
        }
        let columns: Vec<String> = keep.iter().map(|&i| header[i].clone()).collect();

        for (c, name) in columns.iter().enumerate() {
            let values: Option<Vec<f64>> = rows.iter().map(|r| r[c].parse::<f64>().ok()).collect();
            let Some(values) = values.filter(|v| !v.is_empty()) else { continue };
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            report(&format!("mean/{name}"), mean, None);
            report(&format!("std/{name}"), std, None);
            if standardize {
                let scale = if std > 0.0 { std } else { 1.0 };
                for (row, v) in rows.iter_mut().zip(&values) {
                    row[c] = format!("{:.6}", (v - mean) / scale);
                }
            }
        }

        let dest = format!("{out_dir}/data.csv");
        let mut writer = csv::Writer::from_path(&dest).map_err(|e| format!("creating {dest}: {e}"))?;
        writer.write_record(&columns).map_err(|e| format!("writing {dest}: {e}"))?;
        for row in &rows {
            writer.write_record(row).map_err(|e| format!("writing {dest}: {e}"))?;
        }
        writer.flush().map_err(|e| format!("writing {dest}: {e}"))?;

        report("rows", rows.len() as f64, None);
        weft_step::info(&format!("wrote {} rows x {} columns to {dest}", rows.len(), columns.len()));
        let columns_json = format!(
            "[{}]",
            columns.iter().map(|c| format!("\"{}\"", c.replace('\\', "\\\\").replace('"', "\\\""))).collect::<Vec<_>>().join(",")
        );
        Ok(StepOutput {
            params: vec![
                out_param("rows", ParamValue::Int(rows.len() as i64)),
                out_param("columns", ParamValue::Json(columns_json)),
            ],
        })
    }
}

weft_step::export!(CsvTransform with_types_in weft_step::bindings);
