//! Mode `nan-metrics`: reports NaN, +inf, -inf and one finite value, then succeeds. The WIT
//! says non-finite metrics are recorded as given (a diverging loss is worth seeing), so the
//! host must store them and show them, not fail the task.

use weft_step::{report, StepOutput};

pub(crate) fn run() -> Result<StepOutput, String> {
    report("loss", f64::NAN, Some(1));
    report("loss", f64::INFINITY, Some(2));
    report("grad", f64::NEG_INFINITY, None);
    report("accuracy", 0.5, None);
    Ok(StepOutput { params: vec![] })
}
