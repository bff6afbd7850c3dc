//! Publishes a model: copies it into the `published` artifact with a model card.
//!
//! Inputs: `model` (Model). Params: `name` (string), `accuracy` (float).
//! Outputs: `published` (Model: `model.json` + `README.md`); params `uri` (string).
use weft_step::{out_param, Guest, ParamValue, StepInput, StepOutput};

struct Publish;

impl Guest for Publish {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let name = input.str_param("name")?;
        let accuracy = input.float_param_or("accuracy", f64::NAN)?;
        let src = format!("{}/model.json", input.input("model")?);
        let model = std::fs::read(&src).map_err(|e| format!("{src}: {e}"))?;
        let out = input.output("published")?;
        std::fs::write(format!("{out}/model.json"), &model).map_err(|e| format!("{out}/model.json: {e}"))?;
        let card = format!("# {name}\n\nMultinomial logistic regression, trained by a Weft pipeline.\n\n- test accuracy: {accuracy:.4}\n- run: {}\n", input.context.run_id);
        std::fs::write(format!("{out}/README.md"), card).map_err(|e| format!("{out}/README.md: {e}"))?;
        Ok(StepOutput { params: vec![out_param("uri", ParamValue::Str(format!("models/{name}")))] })
    }
}

weft_step::export!(Publish with_types_in weft_step::bindings);
