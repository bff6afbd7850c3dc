//! Mode `tensor-chain`: makes `ops` (default 10^6) one-element tensors through `weft:tensor`,
//! each the scaling of the one before (`keep=last`, the default: one handle kept, behind it a
//! tape `ops` deep that the host takes apart when the handle drops) or of the first
//! (`keep=all`: every handle kept). Returns `ops`, the device memory `held` at the end and
//! what is held `after_drop`; a quota refusal fails the step saying after how many ops.

use weft_step::tensor::{memory_used, scale, Dtype, Error, Tensor};
use weft_step::{out_param, ParamValue, StepInput, StepOutput};

pub(crate) fn run(input: &StepInput) -> Result<StepOutput, String> {
    let ops = input.int_param_or("ops", 1_000_000)?;
    let keep_all = match input.str_param("keep").unwrap_or("last") {
        "last" => false,
        "all" => true,
        other => return Err(format!("keep must be `last` or `all`, got `{other}`")),
    };
    let first = Tensor::from_bytes(&1f32.to_le_bytes(), Dtype::F32, &[1], true)
        .map_err(|e| format!("{e:?}"))?;
    let mut all = Vec::new();
    let mut last = None;
    for i in 0..ops {
        let input = if keep_all {
            &first
        } else {
            last.as_ref().unwrap_or(&first)
        };
        match scale(input, 1.0) {
            Ok(t) if keep_all => all.push(t),
            Ok(t) => last = Some(t),
            Err(Error::Quota(m)) => return Err(format!("after {i} ops: {m}")),
            Err(e) => return Err(format!("unexpected: {e:?}")),
        }
    }
    let held = memory_used();
    drop((first, all, last));
    let params = [
        ("ops", ops),
        ("held", held as i64),
        ("after_drop", memory_used() as i64),
    ];
    Ok(StepOutput {
        params: params
            .into_iter()
            .map(|(name, v)| out_param(name, ParamValue::Int(v)))
            .collect(),
    })
}
