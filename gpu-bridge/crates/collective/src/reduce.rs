//! The element-wise reductions, on host memory.

use crate::ReduceOp;

/// The element-wise `op` of `inputs` (at least one; equal lengths, checked by the caller).
pub fn reduce(inputs: &[&[f32]], op: ReduceOp) -> Vec<f32> {
    let Some((first, rest)) = inputs.split_first() else {
        return Vec::new();
    };
    let mut out = first.to_vec();
    let combine: fn(f32, f32) -> f32 = match op {
        ReduceOp::Sum | ReduceOp::Mean => |a, b| a + b,
        ReduceOp::Max => f32::max,
        ReduceOp::Min => f32::min,
    };
    for input in rest {
        for (o, &x) in out.iter_mut().zip(input.iter()) {
            *o = combine(*o, x);
        }
    }
    if op == ReduceOp::Mean {
        let n = inputs.len() as f32;
        out.iter_mut().for_each(|o| *o /= n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_op_against_its_definition() {
        let a = [1.0, -2.0, 3.0];
        let b = [4.0, 5.0, -6.0];
        assert_eq!(reduce(&[&a, &b], ReduceOp::Sum), [5.0, 3.0, -3.0]);
        assert_eq!(reduce(&[&a, &b], ReduceOp::Mean), [2.5, 1.5, -1.5]);
        assert_eq!(reduce(&[&a, &b], ReduceOp::Max), [4.0, 5.0, 3.0]);
        assert_eq!(reduce(&[&a, &b], ReduceOp::Min), [1.0, -2.0, -6.0]);
        assert_eq!(reduce(&[&a], ReduceOp::Mean), a);
        assert!(reduce(&[], ReduceOp::Sum).is_empty());
    }
}
