//! Calls `weft:tensor/collective` for the host's tests: every collective on a tensor that
//! depends on the rank, results returned as output params (JSON lists of floats).
//!
//! Params: `mode`: `ops` (all of them, `world_size` and `rank` too), `barrier` (one barrier),
//! or `fail` (rank `fail_rank` fails at once; the others wait at a barrier).
use weft_step::collective::{self, ReduceOp};
use weft_step::tensor::{Dtype, Tensor};
use weft_step::{out_param, Guest, ParamValue, StepInput, StepOutput};

struct Probe;

fn text(e: collective::Error) -> String {
    match e {
        collective::Error::NotInJob(m) => format!("not-in-job: {m}"),
        collective::Error::Mismatch(m) => format!("mismatch: {m}"),
        collective::Error::Peer(m) => format!("peer: {m}"),
        collective::Error::Shape(m) => format!("shape: {m}"),
        collective::Error::Quota(m) => format!("quota: {m}"),
    }
}

fn values(t: &Tensor) -> String {
    let v: Vec<String> = t.to_bytes().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).to_string()).collect();
    format!("[{}]", v.join(","))
}

fn json(name: &str, t: &Tensor) -> weft_step::Param {
    out_param(name, ParamValue::Json(values(t)))
}

impl Guest for Probe {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let rank = collective::rank();
        let world = collective::world_size();
        let mode = input.str_param_or("mode", "ops")?;
        let mut params = vec![
            out_param("rank", ParamValue::Int(rank as i64)),
            out_param("world_size", ParamValue::Int(world as i64)),
            out_param("local_rank", ParamValue::Int(collective::local_rank() as i64)),
        ];
        match mode {
            "barrier" => collective::barrier().map_err(text)?,
            "fail" => {
                if rank as i64 == input.int_param_or("fail_rank", 0)? {
                    return Err(format!("rank {rank} fails on purpose"));
                }
                collective::barrier().map_err(text)?;
            }
            "ops" => {
                // Rank r: [2, 4] of r * 10 + i, alternating signs.
                let data: Vec<f32> = (0..8).map(|i| (rank * 10 + i) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
                let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
                let x = Tensor::from_bytes(&bytes, Dtype::F32, &[2, 4], false).map_err(|e| format!("{e:?}"))?;
                for (name, op) in [("sum", ReduceOp::Sum), ("mean", ReduceOp::Mean), ("max", ReduceOp::Max), ("min", ReduceOp::Min)] {
                    params.push(json(&format!("all_reduce_{name}"), &collective::all_reduce(&x, op).map_err(text)?));
                }
                params.push(json("broadcast", &collective::broadcast(&x, world - 1).map_err(text)?));
                let gathered = collective::all_gather(&x).map_err(text)?;
                params.push(out_param("all_gather_shape", ParamValue::Json(format!("{:?}", gathered.shape()))));
                params.push(json("all_gather", &gathered));
                let long = collective::all_gather(&x).map_err(text)?;
                params.push(json("reduce_scatter", &collective::reduce_scatter(&long, ReduceOp::Sum).map_err(text)?));
                collective::barrier().map_err(text)?;
            }
            other => return Err(format!("unknown mode `{other}`")),
        }
        Ok(StepOutput { params })
    }
}

weft_step::export!(Probe with_types_in weft_step::bindings);
