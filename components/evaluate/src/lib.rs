//! Evaluates a classifier on a test set: accuracy and the confusion matrix.
//!
//! Inputs: `model` (Model), `test` (Dataset). Params: `label` (string).
//! Outputs: `metrics` (ClassificationMetrics: `confusion_matrix.json`); params `accuracy` (float).
//! Metrics: `accuracy`.
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
        for (xi, yi) in x.iter().zip(&y) {
            let truth = model.classes.iter().position(|c| c == yi).ok_or_else(|| format!("test label `{yi}` is not a class the model knows"))?;
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
        Ok(StepOutput { params: vec![out_param("accuracy", ParamValue::Float(accuracy))] })
    }
}

weft_step::export!(Evaluate with_types_in weft_step::bindings);
