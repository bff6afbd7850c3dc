//! `wasm-run ui`: the model registry's REST API (Kubeflow Model Registry v1alpha3) over this
//! home's metadata database. The web UI's pages come in a later slice (issue 16).

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct UiArgs {
    /// Where to listen. Loopback by default: the API has no authentication of its own (in a
    /// cluster it goes behind the ingress's auth proxy).
    #[arg(long, default_value = "127.0.0.1:8585")]
    listen: SocketAddr,
}

/// Serves until Ctrl-C or SIGTERM.
pub fn run(home: &crate::home::Home, metadata: Option<&str>, args: UiArgs) -> anyhow::Result<()> {
    let db = match metadata {
        Some(m) if m.starts_with("postgres://") || m.starts_with("postgresql://") => {
            anyhow::bail!("the model registry keeps its tables in SQLite for now; PostgreSQL comes in a later release")
        }
        Some(path) => std::path::PathBuf::from(path),
        None => home.metadata_db(),
    };
    let store = weft_registry::Registry::open(&db)
        .with_context(|| format!("opening the model registry in {}", db.display()))?;
    let app = weft_registry::router(Arc::new(store));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        eprintln!("model registry API on http://{addr}/api/model_registry/v1alpha3/");
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await?;
        anyhow::Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
