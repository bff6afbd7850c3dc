//! Typed parameter values, as Kubeflow Pipelines types them (string, int, float, bool, JSON).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One parameter value. Mirrors `weft:pipeline/types.param-value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum ParamValue {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Json(serde_json::Value),
}

/// A parameter that could not be parsed; names the parameter and says what was expected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamError {
    #[error("parameter `{0}` has no `=`: write NAME=VALUE or NAME:TYPE=VALUE")]
    MissingEquals(String),
    #[error("parameter has an empty name in `{0}`")]
    EmptyName(String),
    #[error("parameter `{name}`: unknown type `{ty}` (expected string, int, float, bool or json)")]
    UnknownType { name: String, ty: String },
    #[error("parameter `{name}`: `{value}` is not a valid {ty}: {reason}")]
    BadValue {
        name: String,
        ty: &'static str,
        value: String,
        reason: String,
    },
}

impl ParamValue {
    /// The type's name as users write it in `NAME:TYPE=VALUE`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamValue::String(_) => "string",
            ParamValue::Int(_) => "int",
            ParamValue::Float(_) => "float",
            ParamValue::Bool(_) => "bool",
            ParamValue::Json(_) => "json",
        }
    }

    /// Infers the type of an untyped command-line value the way a KFP user expects: integers,
    /// then floats, then `true`/`false`, then JSON objects and lists, else a string. Use
    /// `NAME:string=VALUE` to keep `42` a string.
    pub fn infer(text: &str) -> ParamValue {
        if let Ok(i) = text.parse::<i64>() {
            return ParamValue::Int(i);
        }
        if let Ok(f) = text.parse::<f64>() {
            if !text.trim().is_empty() && text.chars().any(|c| c.is_ascii_digit()) {
                return ParamValue::Float(f);
            }
        }
        match text {
            "true" => return ParamValue::Bool(true),
            "false" => return ParamValue::Bool(false),
            _ => {}
        }
        if text.starts_with('{') || text.starts_with('[') {
            if let Ok(v) = serde_json::from_str(text) {
                return ParamValue::Json(v);
            }
        }
        ParamValue::String(text.to_string())
    }

    /// A YAML/JSON literal as a parameter value: strings, integers, floats and booleans keep
    /// their type; lists, objects and null become JSON.
    pub fn infer_json(v: &serde_json::Value) -> ParamValue {
        match v {
            serde_json::Value::String(s) => ParamValue::String(s.clone()),
            serde_json::Value::Bool(b) => ParamValue::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => ParamValue::Int(i),
                None => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            other => ParamValue::Json(other.clone()),
        }
    }

    /// Parses `value` as the named type.
    pub fn parse_typed(name: &str, ty: &str, value: &str) -> Result<ParamValue, ParamError> {
        let bad = |ty: &'static str, reason: String| ParamError::BadValue {
            name: name.to_string(),
            ty,
            value: value.to_string(),
            reason,
        };
        Ok(match ty {
            "string" | "str" => ParamValue::String(value.to_string()),
            "int" => ParamValue::Int(value.parse().map_err(|e| bad("int", format!("{e}")))?),
            "float" => ParamValue::Float(value.parse().map_err(|e| bad("float", format!("{e}")))?),
            "bool" => ParamValue::Bool(value.parse().map_err(|e| bad("bool", format!("{e}")))?),
            "json" => ParamValue::Json(
                serde_json::from_str(value).map_err(|e| bad("json", format!("{e}")))?,
            ),
            other => {
                return Err(ParamError::UnknownType {
                    name: name.to_string(),
                    ty: other.to_string(),
                })
            }
        })
    }

    /// Parses a command-line `NAME=VALUE` (type inferred) or `NAME:TYPE=VALUE`.
    pub fn parse_assignment(arg: &str) -> Result<(String, ParamValue), ParamError> {
        let (lhs, value) = arg
            .split_once('=')
            .ok_or_else(|| ParamError::MissingEquals(arg.to_string()))?;
        let (name, ty) = match lhs.split_once(':') {
            Some((n, t)) => (n, Some(t)),
            None => (lhs, None),
        };
        if name.is_empty() {
            return Err(ParamError::EmptyName(arg.to_string()));
        }
        let value = match ty {
            Some(ty) => ParamValue::parse_typed(name, ty, value)?,
            None => ParamValue::infer(value),
        };
        Ok((name.to_string(), value))
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::String(s) => write!(f, "{s}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Json(v) => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_kfp_types() {
        assert_eq!(ParamValue::infer("42"), ParamValue::Int(42));
        assert_eq!(ParamValue::infer("0.5"), ParamValue::Float(0.5));
        assert_eq!(ParamValue::infer("true"), ParamValue::Bool(true));
        assert_eq!(
            ParamValue::infer("[1,2]"),
            ParamValue::Json(serde_json::json!([1, 2]))
        );
        assert_eq!(ParamValue::infer("inf"), ParamValue::String("inf".into()));
        assert_eq!(
            ParamValue::infer("[not json"),
            ParamValue::String("[not json".into())
        );
        assert_eq!(
            ParamValue::infer("hello"),
            ParamValue::String("hello".into())
        );
    }

    #[test]
    fn explicit_types_win_and_bad_values_name_the_parameter() {
        assert_eq!(
            ParamValue::parse_assignment("id:string=42").unwrap(),
            ("id".to_string(), ParamValue::String("42".into()))
        );
        let err = ParamValue::parse_assignment("epochs:int=ten").unwrap_err();
        assert!(err.to_string().contains("parameter `epochs`"), "{err}");
        assert!(matches!(
            ParamValue::parse_assignment("novalue"),
            Err(ParamError::MissingEquals(_))
        ));
        assert!(matches!(
            ParamValue::parse_assignment("x:date=1"),
            Err(ParamError::UnknownType { .. })
        ));
    }
}
