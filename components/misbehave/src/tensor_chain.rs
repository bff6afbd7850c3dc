//! Mode `tensor-chain`: makes `ops` (default 10^6) one-element tensors through `weft:tensor`,
//! each the scaling of the one before, keeping only the last handle: the host holds a tape
//! `ops` nodes deep (no handle limit applies to nodes held by nodes), and takes it apart when
//! the handle drops. Returns `ops`, the device memory `held` at the end and what is held
//! `after_drop`; a quota refusal fails the step saying after how many ops.

use weft_step::tensor::{memory_used, scale, Dtype, Error, Tensor};
use weft_step::{out_param, ParamValue, StepInput, StepOutput};

pub(crate) fn run(input: &StepInput) -> Result<StepOutput, String> {
    let ops = input.int_param_or("ops", 1_000_000)?;
    let mut last = Tensor::from_bytes(&1f32.to_le_bytes(), Dtype::F32, &[1], true)
        .map_err(|e| format!("{e:?}"))?;
    for i in 0..ops {
        last = match scale(&last, 1.0) {
            Ok(t) => t,
            Err(Error::Quota(m)) => return Err(format!("after {i} ops: {m}")),
            Err(e) => return Err(format!("unexpected: {e:?}")),
        };
    }
    let held = memory_used();
    drop(last);
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
