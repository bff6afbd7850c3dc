//! List parameters (`pageSize`, `orderBy`, `sortOrder`, `nextPageToken`) and page tokens.
//!
//! A token names where the previous page ended: the order it was listed in, and the last
//! row's value of that order and id (keyset paging, so rows added meanwhile neither repeat
//! nor hide others). It is hex text, checked when it comes back: a token this server did not
//! give, or one given for another order, is a 400.

use crate::error::ApiError;
use serde::Deserialize;
use weft_store::{RegistryOrder, RegistryPage, RegistryRow};

/// Upstream's default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Larger pages are cut to this.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The query of a list request. Every value is taken as text and parsed here, so a bad one
/// is answered with the parameter's name.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pub page_size: Option<String>,
    pub order_by: Option<String>,
    pub sort_order: Option<String>,
    pub next_page_token: Option<String>,
    pub filter_query: Option<String>,
    pub artifact_type: Option<String>,
    /// Only the items with this name (lists of a parent's children, metric history).
    pub name: Option<String>,
    pub external_id: Option<String>,
    /// Metric history only: the steps wanted, `1,2,3`.
    pub step_ids: Option<String>,
}

impl ListQuery {
    /// The page asked for.
    pub fn page(&self) -> Result<RegistryPage, ApiError> {
        let limit = match self.page_size.as_deref() {
            None | Some("") => DEFAULT_PAGE_SIZE,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if n > 0 => n.min(MAX_PAGE_SIZE),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid pageSize `{s}`: expected a positive integer"
                    )))
                }
            },
        };
        let order = match self.order_by.as_deref() {
            None | Some("") | Some("ID") => RegistryOrder::Id,
            Some("CREATE_TIME") => RegistryOrder::CreateTime,
            Some("LAST_UPDATE_TIME") => RegistryOrder::UpdateTime,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid orderBy `{other}`: expected CREATE_TIME, LAST_UPDATE_TIME or ID"
                )))
            }
        };
        let descending = match self.sort_order.as_deref() {
            None | Some("") | Some("ASC") => false,
            Some("DESC") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid sortOrder `{other}`: expected ASC or DESC"
                )))
            }
        };
        let after = match self.next_page_token.as_deref() {
            None | Some("") => None,
            Some(t) => Some(decode(t, order, descending)?),
        };
        Ok(RegistryPage {
            order,
            descending,
            limit,
            after,
        })
    }
}

fn order_name(order: RegistryOrder, descending: bool) -> String {
    let o = match order {
        RegistryOrder::CreateTime => "CREATE_TIME",
        RegistryOrder::UpdateTime => "LAST_UPDATE_TIME",
        RegistryOrder::Id => "ID",
    };
    format!("{o}:{}", if descending { "DESC" } else { "ASC" })
}

/// The token for the page after `last` in `page`'s order.
pub fn encode(page: &RegistryPage, last: &RegistryRow) -> String {
    let value = match page.order {
        RegistryOrder::CreateTime => last.created_ms,
        RegistryOrder::UpdateTime => last.updated_ms,
        RegistryOrder::Id => last.id,
    };
    let text = format!(
        "{}:{value}:{}",
        order_name(page.order, page.descending),
        last.id
    );
    hex::encode(text)
}

fn decode(token: &str, order: RegistryOrder, descending: bool) -> Result<(i64, i64), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid nextPageToken `{token}`"));
    let text = hex::decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (head, rest) = text.rsplit_once(':').ok_or_else(bad)?;
    let (prefix, value) = head.rsplit_once(':').ok_or_else(bad)?;
    let id = rest.parse::<i64>().map_err(|_| bad())?;
    let value = value.parse::<i64>().map_err(|_| bad())?;
    if prefix != order_name(order, descending) {
        return Err(ApiError::bad_request(format!(
            "invalid nextPageToken: it was given for the order {prefix}, not {}",
            order_name(order, descending)
        )));
    }
    Ok((value, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_comes_back_as_it_went_and_garbage_is_refused() {
        let page = ListQuery::default().page().unwrap();
        let row = RegistryRow {
            id: 7,
            parent: None,
            artifact_type: String::new(),
            name: None,
            external_id: None,
            state: None,
            created_ms: 5,
            updated_ms: 6,
            body_json: "{}".into(),
        };
        let t = encode(&page, &row);
        assert_eq!(decode(&t, RegistryOrder::Id, false).unwrap(), (7, 7));
        assert!(decode(&t, RegistryOrder::Id, true).is_err());
        for garbage in ["zz", "00", &hex::encode("ID:ASC:x:1"), &hex::encode("1")] {
            assert!(
                decode(garbage, RegistryOrder::Id, false).is_err(),
                "{garbage}"
            );
        }
    }
}
