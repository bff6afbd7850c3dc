//! Trains a multinomial logistic-regression classifier by full-batch gradient descent on the
//! softmax cross-entropy, inside the component. Reports the loss curve as metrics.
//!
//! Inputs: `train` (Dataset). Params: `label` (string), `epochs` (int, default 200),
//! `learning_rate` (float, default 0.5), `l2` (float, default 0.001).
//! Outputs: `model` (Model: `model.json`); params `final_loss` (float), `classes` (json).
use weft_step::{out_param, report, Guest, ParamValue, StepInput, StepOutput};
use weft_tabular::{softmax, Model, Table};

struct Train;

impl Guest for Train {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let label = input.str_param("label")?;
        let epochs = input.int_param_or("epochs", 200)?;
        let lr = input.float_param_or("learning_rate", 0.5)?;
        let l2 = input.float_param_or("l2", 0.001)?;
        if epochs <= 0 {
            return Err(format!("parameter `epochs` must be positive, got {epochs}"));
        }
        let table = Table::read(input.input("train")?)?;
        let (features, x, y) = table.features_and_labels(label)?;
        if x.is_empty() {
            return Err("the training set is empty".into());
        }
        let mut classes: Vec<String> = y.clone();
        classes.sort();
        classes.dedup();
        let targets: Vec<usize> = y.iter().map(|c| classes.binary_search(c).unwrap()).collect();
        let (k, d, n) = (classes.len(), features.len(), x.len() as f64);
        let mut model = Model { features, classes: classes.clone(), weights: vec![vec![0.0; d]; k], bias: vec![0.0; k] };

        let mut loss = 0.0;
        for epoch in 0..epochs as u64 {
            let mut gw = vec![vec![0.0; d]; k];
            let mut gb = vec![0.0; k];
            loss = 0.0;
            for (xi, &t) in x.iter().zip(&targets) {
                let logits: Vec<f64> = (0..k).map(|c| model.bias[c] + model.weights[c].iter().zip(xi).map(|(w, v)| w * v).sum::<f64>()).collect();
                let p = softmax(&logits);
                loss -= p[t].max(1e-12).ln();
                for c in 0..k {
                    let err = p[c] - if c == t { 1.0 } else { 0.0 };
                    gb[c] += err;
                    for (g, v) in gw[c].iter_mut().zip(xi) {
                        *g += err * v;
                    }
                }
            }
            loss /= n;
            for c in 0..k {
                model.bias[c] -= lr * gb[c] / n;
                for j in 0..d {
                    model.weights[c][j] -= lr * (gw[c][j] / n + l2 * model.weights[c][j]);
                }
            }
            if epoch % 10 == 0 || epoch + 1 == epochs as u64 {
                report("loss", loss, Some(epoch));
            }
        }
        let path = format!("{}/model.json", input.output("model")?);
        std::fs::write(&path, model.to_json()).map_err(|e| format!("{path}: {e}"))?;
        let classes_json = format!("[{}]", classes.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(","));
        Ok(StepOutput {
            params: vec![out_param("final_loss", ParamValue::Float(loss)), out_param("classes", ParamValue::Json(classes_json))],
        })
    }
}

weft_step::export!(Train with_types_in weft_step::bindings);
