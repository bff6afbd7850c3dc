//! `wasm-run ui`: the web UI (runs, graphs, logs, artifacts, comparison, experiments, models)
//! and the model registry's REST API (Kubeflow Model Registry v1alpha3), one server over this
//! home's stores.

use anyhow::Context;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(clap::Args)]
#[command(after_help = "\
Pages: /runs (filter by state, pipeline, experiment), /runs/ID (the graph, live while it runs;
tasks, logs, artifacts, metrics), /artifacts/DIGEST (previews), /compare?run=A&run=B...,
/experiments, /models, /serving (models and traffic of each --serving server). API:
/api/model_registry/v1alpha3/ (and /v1).

Local use binds to loopback and needs no login. In a cluster, put it behind the ingress's auth
proxy; --token adds a bearer token every request must carry (the proxy can inject it).")]
pub struct UiArgs {
    /// Where to listen. Loopback by default; any other address needs --token or
    /// --behind-auth-proxy.
    #[arg(long, default_value = "127.0.0.1:8585")]
    listen: SocketAddr,
    /// A token every request must carry as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "WEFT_UI_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve a non-loopback address without a token: an auth proxy in front checks users.
    #[arg(long)]
    behind_auth_proxy: bool,
    /// Answer the registry API for this namespace only (repeatable; the first is the one of
    /// requests that name none); any other is 403. By default every namespace, `default`
    /// for requests that name none.
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// A model server (`wasm-run serve`'s data port, http://HOST:PORT) whose models and
    /// traffic split the Serving page shows. Repeatable.
    #[arg(long, value_name = "URL", value_parser = http_url)]
    serving: Vec<String>,
}

fn http_url(s: &str) -> Result<String, String> {
    match s.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() => Ok(s.trim_end_matches('/').to_string()),
        _ => Err(format!("`{s}` is not an http://HOST:PORT address")),
    }
}

/// Serves until Ctrl-C or SIGTERM.
pub fn run(home: &crate::home::Home, metadata: Option<&str>, args: UiArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() && args.token.is_none() && !args.behind_auth_proxy {
        anyhow::bail!(
            "--listen {} is not loopback: give --token (or --behind-auth-proxy when an auth proxy checks every request)",
            args.listen
        );
    }
    let namespaces = if args.namespaces.is_empty() {
        weft_registry::Namespaces::any()
    } else {
        weft_registry::Namespaces::only(args.namespaces).map_err(anyhow::Error::msg)?
    };
    // The registry's tables are in the metadata database, SQLite or PostgreSQL.
    let registry = Arc::new(match metadata {
        Some(location) => weft_registry::Registry::connect(location)
            .context("opening the model registry in the metadata database")?,
        None => {
            let db = home.metadata_db();
            weft_registry::Registry::open(&db)
                .with_context(|| format!("opening the model registry in {}", db.display()))?
        }
    });
    let ui = Arc::new(weft_ui::Ui {
        metadata: home.open_metadata()?,
        artifacts: home.open_artifacts()?,
        registry,
        logs_dir: home.logs(),
        serving: args.serving,
        namespaces: namespaces.clone(),
    });
    let app = weft_registry::restrict(app(ui, args.token), namespaces);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        eprintln!(
            "Weft UI on http://{addr}/ (model registry API under /api/model_registry/v1alpha3/)"
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await?;
        anyhow::Ok(())
    })
}

/// The pages and the registry API, behind the token when there is one.
fn app(ui: Arc<weft_ui::Ui>, token: Option<String>) -> Router {
    let app = weft_ui::app(ui);
    match token {
        Some(t) => app.layer(middleware::from_fn_with_state(Arc::new(t), bearer)),
        None => app,
    }
}

async fn bearer(
    axum::extract::State(token): axum::extract::State<Arc<String>>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in constant time: the token is a password.
    let ok = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required (Authorization: Bearer TOKEN)\n",
        )
            .into_response()
    }
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
