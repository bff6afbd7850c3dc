//! The published JSON Schemas of the spec (`schemas/` at the repository root), for editors and
//! for the operator's CRDs. A test keeps the committed files in step with the Rust types.

use crate::experiment::Experiment;
use crate::inference::InferenceService;
use crate::pipeline::{Pipeline, PipelineRun};
use crate::train_job::TrainJob;

/// `(file name, schema)` for every published kind.
pub fn all() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "pipeline.schema.json",
            serde_json::to_value(schemars::schema_for!(Pipeline)).expect("schema serialises"),
        ),
        (
            "pipelinerun.schema.json",
            serde_json::to_value(schemars::schema_for!(PipelineRun)).expect("schema serialises"),
        ),
        (
            "experiment.schema.json",
            serde_json::to_value(schemars::schema_for!(Experiment)).expect("schema serialises"),
        ),
        (
            "trainjob.schema.json",
            serde_json::to_value(schemars::schema_for!(TrainJob)).expect("schema serialises"),
        ),
        (
            "inferenceservice.schema.json",
            serde_json::to_value(schemars::schema_for!(InferenceService))
                .expect("schema serialises"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Fails when `schemas/` is stale; `WEFT_BLESS=1 cargo test -p weft-spec` rewrites it.
    #[test]
    fn committed_schemas_match_the_types() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../schemas");
        for (name, schema) in super::all() {
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            let path = dir.join(name);
            if std::env::var_os("WEFT_BLESS").is_some() {
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{} is stale: run `WEFT_BLESS=1 cargo test -p weft-spec`",
                path.display()
            );
        }
    }
}
