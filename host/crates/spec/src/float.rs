//! Floats in JSON as given, NaN and infinities included.
//!
//! JSON has no NaN or infinity, so serde_json writes them as `null`, which then fails to read
//! back into an `f64`. Metrics are recorded as a step reports them (a diverging loss is `NaN`
//! or `inf`, and that is the point of recording it), so wherever a metric value goes through
//! JSON it goes through this module: finite values stay JSON numbers, the others become the
//! strings `"NaN"`, `"Infinity"` and `"-Infinity"` (JavaScript's names, which
//! `Number("Infinity")` reads). Reading also takes `null` as NaN: what serde_json wrote before.
//!
//! Use `#[serde(with = "weft_spec::float")]` on an `f64` field, or [`Float`] inside other types.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// The JSON string for a non-finite value, `None` for a finite one.
fn name(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Infinity")
    } else if v == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// Writes `v` as a number, or as its name when it is not finite.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    match name(*v) {
        Some(n) => s.serialize_str(n),
        None => s.serialize_f64(*v),
    }
}

/// Reads a number, a name [`serialize`] writes, or `null` (NaN).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(FloatVisitor)
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
}

/// An `f64` that goes through JSON as this module writes it: for values inside tuples and
/// collections, where a field attribute cannot reach.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Float(pub f64);

impl Serialize for Float {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize(d).map(Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct M {
        #[serde(with = "super")]
        v: f64,
    }

    fn round_trip(v: f64) -> (String, f64) {
        let text = serde_json::to_string(&M { v }).unwrap();
        let back: M = serde_json::from_str(&text).unwrap();
        (text, back.v)
    }

    #[test]
    fn non_finite_values_round_trip_through_json() {
        let (text, v) = round_trip(f64::NAN);
        assert_eq!(text, r#"{"v":"NaN"}"#);
        assert!(v.is_nan());
        assert_eq!(
            round_trip(f64::INFINITY),
            (r#"{"v":"Infinity"}"#.into(), f64::INFINITY)
        );
        assert_eq!(
            round_trip(f64::NEG_INFINITY),
            (r#"{"v":"-Infinity"}"#.into(), f64::NEG_INFINITY)
        );
    }

    #[test]
    fn finite_values_stay_numbers() {
        assert_eq!(round_trip(0.25), (r#"{"v":0.25}"#.into(), 0.25));
        assert_eq!(round_trip(-3.0), (r#"{"v":-3.0}"#.into(), -3.0));
        let whole: M = serde_json::from_str(r#"{"v":7}"#).unwrap();
        assert_eq!(whole.v, 7.0);
    }

    #[test]
    fn null_reads_as_nan_and_other_strings_are_refused() {
        let old: M = serde_json::from_str(r#"{"v":null}"#).unwrap();
        assert!(old.v.is_nan());
        let err = serde_json::from_str::<M>(r#"{"v":"inf"}"#).unwrap_err();
        assert!(err.to_string().contains("\"Infinity\""), "{err}");
        let pairs: Vec<(String, Float)> =
            serde_json::from_str(r#"[["a","-Infinity"],["b",1.5]]"#).unwrap();
        assert_eq!(pairs[0].1, Float(f64::NEG_INFINITY));
        assert_eq!(
            serde_json::to_string(&pairs).unwrap(),
            r#"[["a","-Infinity"],["b",1.5]]"#
        );
    }
}
