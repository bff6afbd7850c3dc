//! What a reconcile can fail with; the variant name is the `error` label of the failure metric.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{0} has no namespace")]
    NoNamespace(String),
    #[error("serialising {0}: {1}")]
    Serialise(&'static str, String),
    /// The model registry did not answer (counted, and retried with backoff by the
    /// InferenceService controller itself).
    #[error("model registry: {0}")]
    Registry(String),
}

impl Error {
    /// A short stable name for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.metric_label(),
                _ => "finalizer",
            },
            Error::NoNamespace(_) => "no-namespace",
            Error::Serialise(..) => "serialise",
            Error::Registry(_) => "registry",
        }
    }
}
