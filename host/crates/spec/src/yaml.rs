//! YAML in, typed spec out, with every error located as `file:line:column`.
//!
//! serde-saphyr locates syntax errors and unknown fields itself. For errors found after parsing
//! (a cycle, a reference to a task that does not exist), the document is also read into a tree of
//! located nodes, and an error names the path of the offending node, which [`Document::locate`]
//! turns into a line and column.

use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;

/// An error in a spec file, at a place in it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct SpecError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// A YAML node with its children located.
enum Node {
    Map(Vec<(String, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = m.next_key::<KeyText>()? {
                    entries.push((k.0, m.next_value::<Spanned<Node>>()?));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = s.next_element::<Spanned<Node>>()? {
                    items.push(v);
                }
                Ok(Node::Seq(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping key of any scalar type, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(KeyText(match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }
}

/// A parsed spec file: the typed value and the located tree.
pub struct Document<T> {
    pub file: String,
    pub value: T,
    root: Spanned<Node>,
}

/// A message as shown: messages quote names and values from the file, which may be anything
/// (a 10 MB task name, escape sequences), so each is escaped and cut to a screenful.
fn shown(message: &str) -> String {
    crate::text::truncate(&crate::text::escape_control(message), 600).into_owned()
}

/// Tags the spec does not define (`kind: !custom Pipeline`) are errors, not silently dropped:
/// a value that means something else to its author must not be read as a plain one.
fn strict() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.reject_unsupported_tags = true;
    options
}

impl<T: DeserializeOwned> Document<T> {
    /// Parses `text` (from `file`, for messages) as a `T`.
    pub fn parse(file: &str, text: &str) -> Result<Self, SpecError> {
        let located = |e: serde_saphyr::Error| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            SpecError {
                file: file.to_string(),
                line,
                column,
                message: shown(&first_line(&e.to_string())),
            }
        };
        let root: Spanned<Node> =
            serde_saphyr::from_str_with_options(text, strict()).map_err(located)?;
        let value: T = serde_saphyr::from_str_with_options(text, strict()).map_err(located)?;
        Ok(Document {
            file: file.to_string(),
            value,
            root,
        })
    }
}

impl<T> Document<T> {
    /// The same file read as another type (a shape converted to the spec it means); errors
    /// still locate in the file, at the deepest node the path shares with it.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Document<U> {
        Document {
            file: self.file,
            value: f(self.value),
            root: self.root,
        }
    }

    /// An error at the node `path` (mapping keys and sequence indexes), or at its deepest
    /// existing ancestor.
    pub fn error_at(&self, path: &[&str], message: impl Into<String>) -> SpecError {
        let (line, column) = self.locate(path);
        SpecError {
            file: self.file.clone(),
            line,
            column,
            message: shown(&message.into()),
        }
    }

    /// Line and column of the node at `path`.
    pub fn locate(&self, path: &[&str]) -> (u64, u64) {
        let mut node = &self.root;
        for step in path {
            let next = match &node.value {
                Node::Map(entries) => entries.iter().find(|(k, _)| k == step).map(|(_, v)| v),
                Node::Seq(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
                Node::Scalar => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        (node.referenced.line(), node.referenced.column())
    }
}

/// serde-saphyr renders a source snippet under its message; keep the message line only.
fn first_line(rendered: &str) -> String {
    rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(rendered)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;

    const DOC: &str = "apiVersion: weft.dev/v1alpha1
kind: Pipeline
metadata:
  name: p
spec:
  components:
    c:
      source: c.wasm
  tasks:
    a:
      component: c
      after: [b]
";

    #[test]
    fn locates_nodes_by_path() {
        let doc = Document::<Pipeline>::parse("p.yaml", DOC).unwrap();
        assert_eq!(doc.locate(&["spec", "tasks", "a", "component"]), (11, 18));
        assert_eq!(doc.locate(&["spec", "tasks", "a", "after", "0"]).0, 12);
        // A missing leaf falls back to its deepest ancestor.
        assert_eq!(doc.locate(&["spec", "tasks", "a", "nope"]).0, 11);
        let e = doc.error_at(&["spec", "tasks", "a", "after", "0"], "no such task `b`");
        assert_eq!(
            e.to_string(),
            format!("p.yaml:12:{}: no such task `b`", e.column)
        );
    }

    #[test]
    fn unknown_fields_are_located() {
        let text = DOC.replace(
            "      component: c\n",
            "      component: c\n      retires: 3\n",
        );
        let err = Document::<Pipeline>::parse("p.yaml", &text).err().unwrap();
        assert_eq!((err.file.as_str(), err.line), ("p.yaml", 12), "{err}");
        assert!(err.message.contains("retires"), "{err}");
    }
}
