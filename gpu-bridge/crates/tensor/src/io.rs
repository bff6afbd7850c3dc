//! Named parameters in the safetensors format (what PyTorch and Hugging Face save), so models
//! trained here load elsewhere and the other way round.

use crate::backend::Backend;
use crate::engine::{Engine, Tensor};
use crate::TensorError;
use safetensors::tensor::{Dtype, TensorView};

/// The bytes of a safetensors file holding `named` (f32, little-endian).
pub fn save<B: Backend>(
    engine: &Engine<B>,
    named: &[(String, Tensor<B>)],
) -> Result<Vec<u8>, TensorError> {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = named
        .iter()
        .map(|(name, t)| {
            let values = engine.to_vec(t)?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok((name.clone(), bytes, t.shape().to_vec()))
        })
        .collect::<Result<_, TensorError>>()?;
    let views = data
        .iter()
        .map(|(name, bytes, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| TensorError::Format(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| TensorError::Format(e.to_string()))
}

/// The tensors of a safetensors file, as parameters (they require gradients) in `engine`.
pub fn load<B: Backend>(
    engine: &Engine<B>,
    bytes: &[u8],
) -> Result<Vec<(String, Tensor<B>)>, TensorError> {
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| TensorError::Format(format!("not a safetensors file: {e}")))?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(TensorError::Format(format!(
                "{name}: dtype {:?}; only F32 is supported",
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push((name.clone(), engine.tensor(&values, view.shape(), true)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A training checkpoint: the step reached, the parameters, the optimizer's state. Stored as
/// a safetensors file (`param/NAME` with its shape, `optimizer/KEY` flat, the step in the
/// header's metadata), so the parameters load in any safetensors reader.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    pub step: u64,
    pub params: Vec<(String, Vec<f32>, Vec<usize>)>,
    pub optimizer: Vec<(String, Vec<f32>)>,
}

const STEP_KEY: &str = "weft.checkpoint.step";
const PARAM: &str = "param/";
const OPTIMIZER: &str = "optimizer/";

impl Checkpoint {
    pub fn encode(&self) -> Result<Vec<u8>, TensorError> {
        let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .params
            .iter()
            .map(|(n, v, shape)| (format!("{PARAM}{n}"), bytes(v), shape.clone()))
            .chain(
                self.optimizer
                    .iter()
                    .map(|(n, v)| (format!("{OPTIMIZER}{n}"), bytes(v), vec![v.len()])),
            )
            .collect();
        let views = data
            .iter()
            .map(|(name, b, shape)| {
                TensorView::new(Dtype::F32, shape.clone(), b)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| TensorError::Format(format!("{name}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let meta = std::collections::HashMap::from([(STEP_KEY.to_string(), self.step.to_string())]);
        safetensors::serialize(views, Some(meta)).map_err(|e| TensorError::Format(e.to_string()))
    }

    /// Reads a checkpoint [`encode`](Checkpoint::encode) wrote; anything else is a format
    /// error saying what is wrong, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, TensorError> {
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| TensorError::Format(format!("not a safetensors file: {e}")))?;
        let step = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(STEP_KEY))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                TensorError::Format(format!("not a checkpoint: no {STEP_KEY} in its metadata"))
            })?;
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| TensorError::Format(format!("not a safetensors file: {e}")))?;
        let mut c = Checkpoint {
            step,
            ..Default::default()
        };
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(TensorError::Format(format!(
                    "{name}: dtype {:?}; only F32 is supported",
                    view.dtype()
                )));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(n) = name.strip_prefix(PARAM) {
                c.params
                    .push((n.to_string(), values, view.shape().to_vec()));
            } else if let Some(n) = name.strip_prefix(OPTIMIZER) {
                c.optimizer.push((n.to_string(), values));
            } else {
                return Err(TensorError::Format(format!(
                    "{name}: neither param/ nor optimizer/"
                )));
            }
        }
        c.params.sort_by(|a, b| a.0.cmp(&b.0));
        c.optimizer.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_checkpoint_round_trips_and_its_params_are_plain_safetensors() {
        let c = Checkpoint {
            step: 40,
            params: vec![
                ("b".into(), vec![1.0, 2.0], vec![2]),
                ("w".into(), vec![0.5; 6], vec![2, 3]),
            ],
            optimizer: vec![("step".into(), vec![40.0]), ("w.m".into(), vec![0.1; 6])],
        };
        let bytes = c.encode().unwrap();
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), c);
        let plain = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(plain.tensor("param/w").unwrap().shape(), [2, 3]);
        let e = Checkpoint::decode(
            &crate::io::save(&crate::Engine::new(crate::Cpu, 1 << 20), &[]).unwrap(),
        );
        assert!(matches!(e, Err(TensorError::Format(m)) if m.contains("not a checkpoint")));
    }

    proptest! {
        /// Bytes from outside (a damaged store, a hostile file) are an error, never a panic.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Checkpoint::decode(&bytes);
        }

        #[test]
        fn decoding_damaged_checkpoints_never_panics(cut in 0usize..200, flip in 0usize..200, bit in 0u8..8) {
            let c = Checkpoint { step: 3, params: vec![("w".into(), vec![1.0; 4], vec![2, 2])], optimizer: vec![] };
            let mut bytes = c.encode().unwrap();
            let i = flip % bytes.len();
            bytes[i] ^= 1 << bit;
            bytes.truncate(cut.max(1).min(bytes.len()));
            let _ = Checkpoint::decode(&bytes);
        }
    }
}
