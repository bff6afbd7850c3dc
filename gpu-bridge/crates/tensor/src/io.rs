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
