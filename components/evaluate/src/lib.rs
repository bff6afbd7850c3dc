//! Evaluates a classifier on a test set: accuracy and the confusion matrix.
//!
//! Inputs: `model` (Model), `test` (Dataset). Params: `label` (string).
//! Outputs: `metrics` (ClassificationMetrics: `confusion_matrix.json`, and `roc.json` with a
//! one-vs-rest ROC curve and its AUC per class); params `accuracy` (float).
//! Metrics: `accuracy`, `auc/<class>`.
use weft_step::{out_param, report, Guest, ParamValue, StepInput, StepOutput};
use weft_tabular::{Model, Table};

struct Evaluate;

impl Guest for Evaluate {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let label = input.str_param("label")?;
        let model_path = format!("{}/model.json", input.input("model")?);
        let text = std::fs::read_to_string(&model_path).map_err(|e| format!("{model_path}: {e}"))?;
        let model = Model::from_json(&text)?;
        let table = Table::read(input.input("test")?)?;
        let (features, x, y) = table.features_and_labels(label)?;
        if features != model.features {
            return Err(format!("test columns {features:?} differ from the model's {:?}", model.features));
        }
        let k = model.classes.len();
        let mut confusion = vec![vec![0u64; k]; k];
        let mut correct = 0;
        let mut scored: Vec<(Vec<f64>, usize)> = Vec::new();
        for (xi, yi) in x.iter().zip(&y) {
            let truth = model.classes.iter().position(|c| c == yi).ok_or_else(|| format!("test label `{yi}` is not a class the model knows"))?;
            scored.push((model.predict_proba(xi), truth));
            let pred = model.predict(xi);
            confusion[truth][pred] += 1;
            correct += usize::from(pred == truth);
        }
        let accuracy = if x.is_empty() { 0.0 } else { correct as f64 / x.len() as f64 };
        report("accuracy", accuracy, None);
        let rows: Vec<String> = confusion.iter().map(|r| format!("[{}]", r.iter().map(u64::to_string).collect::<Vec<_>>().join(","))).collect();
        let classes: Vec<String> = model.classes.iter().map(|c| format!("{c:?}")).collect();
        let path = format!("{}/confusion_matrix.json", input.output("metrics")?);
        let json = format!("{{\"classes\":[{}],\"matrix\":[{}],\"accuracy\":{accuracy:?}}}\n", classes.join(","), rows.join(","));
        std::fs::write(&path, json).map_err(|e| format!("{path}: {e}"))?;
        let mut curves = Vec::new();
        for (c, class) in model.classes.iter().enumerate() {
            let (points, auc) = roc(&scored, c);
            report(&format!("auc/{class}"), auc, None);
            // The first point's threshold is above every score: JSON has no infinity, so null.
            let pts: Vec<String> = points
                .iter()
                .map(|(fpr, tpr, t)| {
                    let t = if t.is_finite() { format!("{t:?}") } else { "null".to_string() };
                    format!("{{\"fpr\":{fpr:?},\"tpr\":{tpr:?},\"threshold\":{t}}}")
                })
                .collect();
            curves.push(format!("{{\"class\":{class:?},\"auc\":{auc:?},\"points\":[{}]}}", pts.join(",")));
        }
        let path = format!("{}/roc.json", input.output("metrics")?);
        std::fs::write(&path, format!("[{}]\n", curves.join(","))).map_err(|e| format!("{path}: {e}"))?;
        Ok(StepOutput { params: vec![out_param("accuracy", ParamValue::Float(accuracy))] })
    }
}

/// One-vs-rest ROC of class `c`: (false positive rate, true positive rate, threshold) points
/// from the strictest threshold down, and the area under the curve (trapezoids).
fn roc(scored: &[(Vec<f64>, usize)], c: usize) -> (Vec<(f64, f64, f64)>, f64) {
    let mut by_score: Vec<(f64, bool)> = scored.iter().map(|(p, t)| (p[c], *t == c)).collect();
    by_score.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = by_score.iter().filter(|(_, p)| *p).count().max(1) as f64;
    let negatives = by_score.iter().filter(|(_, p)| !*p).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0, f64::INFINITY)];
    let mut i = 0;
    while i < by_score.len() {
        let threshold = by_score[i].0;
        while i < by_score.len() && by_score[i].0 == threshold {
            if by_score[i].1 { tp += 1.0 } else { fp += 1.0 }
            i += 1;
        }
        points.push((fp / negatives, tp / positives, threshold));
    }
    let auc = points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
    (points, auc)
}

weft_step::export!(Evaluate with_types_in weft_step::bindings);
