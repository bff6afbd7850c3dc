//! Evaluates `when` conditions.

use weft_spec::pipeline::{Condition, Op, ParamSource};
use weft_spec::ParamValue;

/// Whether `c` holds, looking values up with `value_of`.
pub(crate) fn holds(
    c: &Condition,
    value_of: &dyn Fn(&ParamSource) -> Result<ParamValue, String>,
) -> Result<bool, String> {
    if let Some(all) = &c.all {
        for inner in all {
            if !holds(inner, value_of)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = &c.any {
        for inner in any {
            if holds(inner, value_of)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(inner) = &c.not {
        return Ok(!holds(inner, value_of)?);
    }
    let (Some(input), Some(op), Some(value)) = (&c.input, c.op, &c.value) else {
        return Err("incomplete condition".into());
    };
    let left = crate::plan::to_json(&value_of(input)?);
    compare(&left, op, value)
}

fn compare(left: &serde_json::Value, op: Op, right: &serde_json::Value) -> Result<bool, String> {
    if let (Some(a), Some(b)) = (left.as_f64(), right.as_f64()) {
        return Ok(match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        });
    }
    match op {
        Op::Eq => Ok(left == right),
        Op::Ne => Ok(left != right),
        _ => Err(format!("cannot order {left} and {right}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(op: Op, value: serde_json::Value) -> Condition {
        Condition {
            input: Some(ParamSource::default()),
            op: Some(op),
            value: Some(value),
            ..Default::default()
        }
    }

    #[test]
    fn comparisons_and_combinators() {
        let acc = |_: &ParamSource| Ok(ParamValue::Float(0.93));
        assert!(holds(&cmp(Op::Ge, serde_json::json!(0.9)), &acc).unwrap());
        assert!(!holds(&cmp(Op::Lt, serde_json::json!(0.9)), &acc).unwrap());
        let both = Condition {
            all: Some(vec![
                cmp(Op::Gt, serde_json::json!(0.5)),
                cmp(Op::Le, serde_json::json!(1)),
            ]),
            ..Default::default()
        };
        assert!(holds(&both, &acc).unwrap());
        let negated = Condition {
            not: Some(Box::new(both)),
            ..Default::default()
        };
        assert!(!holds(&negated, &acc).unwrap());
        let name = |_: &ParamSource| Ok(ParamValue::String("prod".into()));
        assert!(holds(&cmp(Op::Eq, serde_json::json!("prod")), &name).unwrap());
        assert!(holds(&cmp(Op::Lt, serde_json::json!("x")), &name).is_err());
    }
}
