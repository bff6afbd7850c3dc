//! A step that does nothing: the baseline for measuring per-step host overhead.
use weft_step::{Guest, StepInput, StepOutput};

struct Noop;

impl Guest for Noop {
    fn run(_input: StepInput) -> Result<StepOutput, String> {
        Ok(StepOutput { params: Vec::new() })
    }
}

weft_step::export!(Noop with_types_in weft_step::bindings);
