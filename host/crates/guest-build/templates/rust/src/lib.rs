//! {{name}}: a Weft pipeline step in Rust.
//!
//! Sums one column of a CSV table, writes the per-row running total as a CSV output, reports
//! the total as a metric and returns it. Build with `wasm-run build`, run with `./test.sh`.

wit_bindgen::generate!({ path: "wit", world: "step" });

use exports::weft::pipeline::task::Guest;
use weft::pipeline::metrics;
use weft::pipeline::types::{Param, ParamValue, StepInput, StepOutput};

struct Step;

fn artifact<'a>(list: &'a [weft::pipeline::types::Artifact], name: &str) -> Result<&'a str, String> {
    list.iter().find(|a| a.name == name).map(|a| a.path.as_str()).ok_or(format!("no artifact `{name}` was granted"))
}

impl Guest for Step {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let column = input
            .params
            .iter()
            .find_map(|p| match (&p.name[..], &p.value) {
                ("column", ParamValue::Str(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "value".into());
        let table = artifact(&input.inputs, "table")?;
        let dir = artifact(&input.outputs, "totals")?;
        let text = std::fs::read_to_string(table).map_err(|e| format!("{table}: {e}"))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let at = header.iter().position(|h| *h == column).ok_or(format!("no column {column:?} in {table}"))?;
        let mut total = 0.0;
        let mut out = format!("{column},running_total\n");
        for line in lines.filter(|l| !l.is_empty()) {
            let cell = line.split(',').nth(at).unwrap_or_default();
            total += cell.trim().parse::<f64>().map_err(|e| format!("{cell:?}: {e}"))?;
            out.push_str(&format!("{cell},{total}\n"));
        }
        std::fs::write(format!("{dir}/totals"), out).map_err(|e| e.to_string())?;
        metrics::report("total", total, None);
        Ok(StepOutput { params: vec![Param { name: "Output".into(), value: ParamValue::Float(total) }] })
    }
}

export!(Step);
