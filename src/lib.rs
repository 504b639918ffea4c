//! Millrace: a self-hosted CI/CD control plane that speaks the AWS
//! CodePipeline API (AWS JSON 1.1, SigV4) on PostgreSQL.
//!
//! `main.rs` only parses the command line; tests build the same [`App`] and
//! [`router`] and serve them on an ephemeral port.

pub mod api;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod engine;
pub mod pipeline;
pub mod protocol;
pub mod store;
pub mod telemetry;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sqlx::PgPool;
use tokio::net::TcpListener;

use config::Config;
use crypto::SecretBox;

/// Everything a request handler may use, built once at start.
pub struct App {
    pub db: store::db::Db,
    pub secrets: SecretBox,
    pub config: Config,
    /// Verified access keys; live only while [`Server::run`] listens for changes.
    pub keys: Arc<protocol::keys::KeyCache>,
    pub declarations: engine::Declarations,
    pub job_lanes: api::jobs::JobLanes,
    pub alone_jobs: api::jobs::AloneJobs,
    pub settling: api::jobs::Settling,
}

impl App {
    pub fn new(pool: PgPool, secrets: SecretBox, config: Config) -> App {
        App {
            db: store::db::Db::new(pool),
            secrets,
            config,
            keys: Default::default(),
            declarations: Default::default(),
            job_lanes: Default::default(),
            alone_jobs: Default::default(),
            settling: Default::default(),
        }
    }
}

pub fn router(app: Arc<App>) -> Router {
    let webhooks = web::webhooks::Endpoint::new(app.clone());
    Router::new()
        .route("/", post(protocol::handle))
        .route("/webhooks/{id}", post(web::webhooks::receive).with_state(webhooks))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(app)
}

/// Ready when the database answers.
async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    let answered = async { sqlx::query("select 1").execute(&mut *app.db.acquire().await?).await }.await;
    match answered {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// A bound, not yet running server: tests read `local_addr` before serving.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

impl Server {
    pub async fn bind(mut app: App) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(app.config.listen).await?;
        // The default public URL names the listen address; with port 0 that
        // is only known now.
        if app.config.public_url.is_none() {
            app.config.public_url = Some(format!("http://{}", listener.local_addr()?));
        }
        Ok(Server { listener, app: Arc::new(app) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves (and runs the sweeper) until `shutdown` resolves, then
    /// finishes in-flight requests and the sweeper's current pass.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sweeper = tokio::spawn(engine::sweeper::run(self.app.clone(), stopped.clone()));
        let keys = tokio::spawn(protocol::keys::listen(self.app.keys.clone(), self.app.db.pool().clone(), stopped));
        let db = self.app.db.clone();
        let router = router(self.app);
        let served =
            axum::serve(self.listener, router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await;
        let _ = stop.send(true);
        let _ = sweeper.await;
        let _ = keys.await;
        // The pool can close only once every connection is back in it.
        db.drain();
        Ok(served?)
    }
}
