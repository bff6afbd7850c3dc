//! `filterQuery`: upstream's SQL-like filter language, parsed here and run as a condition of
//! the list's SQL query (so keyset paging works on the filtered rows).
//!
//! Comparisons `= != <> > < >= <= LIKE ILIKE IN`, joined by `AND`/`OR` and grouped by
//! parentheses; values are strings (single or double quotes, backslash escapes), numbers,
//! `true`/`false` and `( ... )` lists for `IN`. A property is one of the entity's fields
//! (`id name externalId description state createTimeSinceEpoch lastUpdateTimeSinceEpoch` and
//! its type's own, e.g. `owner`, `registeredModelId`, `uri`, `desiredState`), or else a
//! custom property by name, `.string_value`/`.double_value`/`.int_value`/`.bool_value`
//! choosing which value (by default: the literal's type; a number matches either numeric
//! value). Names with other characters go in backticks: `` `mlflow.source.type` = "nb" ``.
//! `LIKE` is case-sensitive (`%` and `_`), `ILIKE` is not. A query is at most
//! [`MAX_LEN`] characters, with at most [`parse::MAX_CONDITIONS`] comparisons and parentheses
//! [`parse::MAX_DEPTH`] deep; anything else is a 400 naming the position.

mod lex;
pub mod parse;
mod sql;

pub(crate) use sql::{common_field, json_int, Field, Ty};

use crate::error::ApiError;
use weft_store::{RegistryDialect, RegistryWhere};

/// The longest query taken, in characters.
pub const MAX_LEN: usize = 4096;

/// A query that does not parse: where (a character index from 0) and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid filterQuery at character {}: {message}", .pos + 1)]
pub struct FilterError {
    pub pos: usize,
    pub message: String,
}

impl FilterError {
    pub(crate) fn at(pos: usize, message: impl Into<String>) -> Self {
        FilterError {
            pos,
            message: message.into(),
        }
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// `query` as a condition in `dialect` on rows of an entity whose fields `field` looks up;
/// `None` for an empty query.
pub(crate) fn condition(
    query: &str,
    field: &dyn Fn(&str) -> Option<Field>,
    dialect: RegistryDialect,
) -> Result<Option<RegistryWhere>, FilterError> {
    let len = query.chars().count();
    if len > MAX_LEN {
        return Err(FilterError::at(
            MAX_LEN,
            format!("longer than {MAX_LEN} characters"),
        ));
    }
    let toks = lex::tokens(query)?;
    if toks.is_empty() {
        return Ok(None);
    }
    let expr = parse::parse(toks, len)?;
    sql::condition(&expr, field, dialect).map(Some)
}

/// Parses `query` without a store: `Ok` when it would be taken for an entity with only the
/// common fields. For tests of the parser's bounds.
pub fn check(query: &str) -> Result<(), FilterError> {
    condition(query, &common_field, RegistryDialect::Sqlite)?;
    condition(query, &common_field, RegistryDialect::Postgres).map(|_| ())
}

#[cfg(test)]
mod tests;
