//! Wiring: the actix application over the shared state (`state.rs`), and its server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware::from_fn, web};
use kaiyuan_storage::BlobStore;
use sqlx::PgPool;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::{middleware, routes};

pub use crate::state::AppState;

/// The HTTP server, bound but not yet running (so callers can ask for port 0 and learn the port).
pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
}

impl Application {
    pub fn build(settings: Settings, db: PgPool, store: BlobStore) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let store = crate::xet::recipes::attach(store, db.clone());
        let mirror = crate::mirror::Mirror::new(&settings.mirror);
        let state = web::Data::new(AppState {
            db,
            store,
            mirror,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::default()),
            signing_key: tokio::sync::OnceCell::new(),
        });
        let shared = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .configure(|cfg| routes::configure(cfg, &shared.settings))
                .wrap(from_fn(crate::web::render::error_pages))
                .wrap(from_fn(crate::auth::authenticate))
                .wrap(from_fn(middleware::observe))
        })
        // Clients keep connections for a while between requests (a client reading a
        // response, then validating or hashing it, comes back after seconds); closing idle
        // connections after actix's default 5 s races with their next request.
        .keep_alive(std::time::Duration::from_secs(75))
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self {
            server,
            port,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
