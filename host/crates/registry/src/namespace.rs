//! Namespaces: every registry row belongs to one, and every request works in one.
//!
//! A request names its namespace by the query parameter `namespace` or the header
//! `X-Weft-Namespace` (both at once must agree); naming none, it is in the server's default
//! (`default`, or the first namespace a restricted server accepts). A namespace is a
//! Kubernetes namespace name (lowercase letters, digits and `-`, at most 63, starting and
//! ending with a letter or digit): anything else is a 400. A server restricted to some
//! namespaces ([`Namespaces::only`], `wasm-run ui --namespace NS`) answers a request for any
//! other with 403, before the request is read any further.
//!
//! The identity headers of Kubeflow's auth proxy (`kubeflow-userid`) name a user, not a
//! namespace: which namespaces a user may use is the proxy's decision, passed on as
//! `X-Weft-Namespace`, or a server per namespace, restricted to it.

use crate::error::ApiError;
use crate::ops::Store;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;
use weft_store::{
    RegistryDialect, RegistryError, RegistryKind, RegistryPage, RegistryRow, RegistryWhere,
};

/// The namespace of a request that names none, on a server that accepts any.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The header that names a request's namespace.
pub const NAMESPACE_HEADER: &str = "x-weft-namespace";

/// Which namespaces a server accepts, and the one of requests that name none.
#[derive(Clone, Debug)]
pub struct Namespaces {
    default: String,
    /// `None`: any.
    allowed: Option<Vec<String>>,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces::any()
    }
}

impl Namespaces {
    /// Any namespace; `default` for requests that name none.
    pub fn any() -> Self {
        Namespaces {
            default: DEFAULT_NAMESPACE.into(),
            allowed: None,
        }
    }

    /// These namespaces only (the first is the default); an error naming one that is no
    /// namespace name, or when there is none.
    pub fn only<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut allowed: Vec<String> = Vec::new();
        for n in names {
            let n = n.into();
            check(&n)?;
            if !allowed.contains(&n) {
                allowed.push(n);
            }
        }
        let default = allowed
            .first()
            .cloned()
            .ok_or("no namespace given to accept")?;
        Ok(Namespaces {
            default,
            allowed: Some(allowed),
        })
    }

    /// The namespace of requests that name none.
    pub fn default_namespace(&self) -> &str {
        &self.default
    }

    /// Whether requests for `ns` are answered.
    pub fn accepts(&self, ns: &str) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|a| a.iter().any(|n| n == ns))
    }
}

/// `name` as a namespace name, or why it is none.
fn check(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid namespace `{}`: a namespace is lowercase letters, digits and `-`, at most \
             63, starting and ending with a letter or digit",
            name.escape_debug()
        ))
    }
}

/// The namespace a request names (query parameter or header), if any; a 400 when it names
/// two, or one that is no namespace name.
fn named(parts: &Parts) -> Result<Option<String>, ApiError> {
    let query = parts.uri.query().unwrap_or("");
    let mut from_query: Option<String> = None;
    for (k, v) in url_pairs(query) {
        if k == "namespace" {
            if from_query.as_ref().is_some_and(|q| *q != v) {
                return Err(ApiError::bad_request(
                    "the query names two namespaces: give one",
                ));
            }
            from_query = Some(v);
        }
    }
    let mut headers = parts.headers.get_all(NAMESPACE_HEADER).iter();
    let from_header = match (headers.next(), headers.next()) {
        (None, _) => None,
        (Some(h), None) => Some(
            h.to_str()
                .map_err(|_| ApiError::bad_request("invalid X-Weft-Namespace: not text"))?
                .to_string(),
        ),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "X-Weft-Namespace is given twice: give it once",
            ))
        }
    };
    let ns = match (from_query, from_header) {
        (Some(q), Some(h)) if q != h => {
            return Err(ApiError::bad_request(format!(
                "the query's namespace `{}` is not the X-Weft-Namespace header's `{}`",
                q.escape_debug(),
                h.escape_debug()
            )))
        }
        (q, h) => q.or(h),
    };
    if let Some(ns) = &ns {
        check(ns).map_err(ApiError::bad_request)?;
    }
    Ok(ns)
}

/// The pairs of a query string, percent-decoded (`+` as a space).
fn url_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (b'+', _, _) => out.push(b' '),
                (b'%', Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                (b, _, _) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// A request's view of the store: its namespace's rows only. Extracted from the request
/// (before its body), a 400 for a namespace named badly.
#[derive(Clone)]
pub(crate) struct Scoped {
    pub store: Store,
    pub ns: Arc<str>,
}

impl FromRequestParts<Store> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, store: &Store) -> Result<Self, ApiError> {
        let ns = named(parts)?.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        Ok(Scoped {
            store: store.clone(),
            ns: ns.into(),
        })
    }
}

/// The store's calls, in the request's namespace.
impl Scoped {
    pub fn dialect(&self) -> RegistryDialect {
        self.store.dialect()
    }

    pub fn get(&self, kind: RegistryKind, id: i64) -> Result<Option<RegistryRow>, RegistryError> {
        self.store.get(kind, &self.ns, id)
    }

    pub fn insert(
        &self,
        kind: RegistryKind,
        r: &RegistryRow,
    ) -> Result<RegistryRow, RegistryError> {
        self.store.insert(kind, &self.ns, r)
    }

    pub fn update(
        &self,
        kind: RegistryKind,
        r: &RegistryRow,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        self.store.update(kind, &self.ns, r)
    }

    pub fn find(
        &self,
        kind: RegistryKind,
        name: Option<&str>,
        external_id: Option<&str>,
        parent: Option<i64>,
    ) -> Result<Option<RegistryRow>, RegistryError> {
        self.store.find(kind, &self.ns, name, external_id, parent)
    }

    pub fn list(
        &self,
        kind: RegistryKind,
        conds: &[RegistryWhere],
        page: &RegistryPage,
    ) -> Result<(Vec<RegistryRow>, bool), RegistryError> {
        self.store.list(kind, &self.ns, conds, page)
    }

    pub fn delete(&self, kind: RegistryKind, id: i64) -> Result<bool, RegistryError> {
        self.store.delete(kind, &self.ns, id)
    }
}

/// `app` with its requests to the registry API (under [`crate::PREFIXES`]) for namespaces
/// other than `namespaces`' answered 403, and those that name none put in its default.
/// (`wasm-run ui` puts its whole app, pages and API, behind this.)
pub fn restrict(app: Router, namespaces: Namespaces) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        Arc::new(namespaces),
        guard,
    ))
}

/// The registry's routes over `store`, for `namespaces` only.
pub fn router_for(store: Arc<weft_store::RegistryStore>, namespaces: Namespaces) -> Router {
    restrict(crate::router(store), namespaces)
}

async fn guard(State(namespaces): State<Arc<Namespaces>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = crate::PREFIXES
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if !api {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let ns = match named(&parts) {
        Ok(ns) => ns.unwrap_or_else(|| namespaces.default.clone()),
        Err(e) => return e.into_response(),
    };
    if !namespaces.accepts(&ns) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("namespace `{ns}` is not served here"),
        )
        .into_response();
    }
    // The handlers read it from the header: set, it is the namespace whatever else is given
    // (the query's, when there is one, is the same).
    match HeaderValue::from_str(&ns) {
        Ok(v) => {
            parts.headers.insert(NAMESPACE_HEADER, v);
        }
        Err(_) => return ApiError::bad_request("invalid namespace").into_response(),
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kubernetes_namespace_names() {
        for ok in ["default", "team-a", "a", "0", &"x".repeat(63)] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a_b", "a.b", "é", &"x".repeat(64)] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(Namespaces::only(Vec::<String>::new()).is_err());
        let n = Namespaces::only(["b", "a", "b"]).unwrap();
        assert_eq!(n.default_namespace(), "b");
        assert!(n.accepts("a") && !n.accepts("c"));
        assert!(Namespaces::any().accepts("c"));
    }

    #[test]
    fn query_pairs_are_decoded() {
        assert_eq!(
            url_pairs("a=1&namespace=team%2Da&&x&b=c+d&e=%zz%4%é"),
            vec![
                ("a".into(), "1".into()),
                ("namespace".into(), "team-a".into()),
                ("x".into(), String::new()),
                ("b".into(), "c d".into()),
                ("e".into(), "%zz%4%é".into()),
            ]
        );
    }
}
