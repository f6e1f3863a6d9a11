//! `kaiyuan`: the hub's one binary. `serve` runs the API with in-process workers; `worker` runs
//! workers alone; `migrate` applies the schema; `admin` manages accounts; `gc` collects garbage.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kaiyuan_hub::app::Application;
use kaiyuan_hub::config::Settings;
use kaiyuan_hub::embedded_pg::EmbeddedPostgres;
use kaiyuan_hub::jobs::{self, JobContext};
use kaiyuan_hub::{db, domain, gc, telemetry};
use kaiyuan_storage::BlobStore;
use sqlx::PgPool;
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "kaiyuan",
    version,
    about = "Open model hub with licence, provenance and safety checks"
)]
struct Cli {
    /// TOML config file (also `KAIYUAN_CONFIG`); environment variables override it.
    #[arg(long, global = true, env = "KAIYUAN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory for the embedded PostgreSQL cluster and local object store.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the API (and run job workers and the garbage collector in-process).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Mirror this upstream hub (e.g. https://huggingface.co): repositories not held here are
        /// fetched on first use, checked, and served from here. Also `KAIYUAN_UPSTREAM`.
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Run job workers only, against the configured database and store.
    Worker {
        /// Number of concurrent workers in this process.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Execution provider for model verification: cpu, cuda (a GPU worker; it also takes
        /// jobs that ask for a GPU) or auto. Overrides `verification.ep`.
        #[arg(long, value_parser = kaiyuan_verifier::Ep::parse)]
        ep: Option<kaiyuan_verifier::Ep>,
    },
    /// Apply database migrations (an explicit step for production deployments).
    Migrate,
    /// Account administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Run the garbage collector once.
    Gc,
    /// Mirror mode (`mirror.upstream`): fetch a repository ahead of time, or list what is mirrored.
    Mirror {
        #[command(subcommand)]
        command: MirrorCommand,
    },
    /// Queue a background rescan of every stored file (workers run it; uploads are not blocked).
    Rescan,
    /// Scan files and directories for malicious or malformed content, without a server.
    /// Exit code: 0 all clean, 1 something suspicious, malicious or malformed, 2 usage or I/O error.
    Scan {
        /// Files or directories (walked recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// One JSON object per file instead of the readable report.
        #[arg(long)]
        json: bool,
    },
    /// Sign a model folder (OpenSSF model signing), or `sign verify` one, without a server.
    Sign(kaiyuan_hub::sign_cli::SignArgs),
    /// Verify ONNX models by sample inference (load, smoke run, test vectors, determinism,
    /// timings) without a server. Exit code: 0 all passed, 1 any failed, 3 inconclusive (none
    /// failed, but no realistic input ran for some), 2 usage error.
    Verify(kaiyuan_hub::verify_cli::VerifyArgs),
    /// A child verifier process (started by `verify` and the workers, not by people).
    #[command(name = "verify-model", hide = true)]
    VerifyModel { request: String },
    /// Transparency-log tools that need no server.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Licence compliance tools that need no server.
    License {
        #[command(subcommand)]
        command: LicenseCommand,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Verify a checkpoint, an entry's inclusion and consistency with an older checkpoint.
    /// Exit code: 0 all checks pass, 1 one fails, 2 usage error.
    Verify(kaiyuan_hub::log_cli::LogVerifyArgs),
}

#[derive(Subcommand)]
enum LicenseCommand {
    /// Audit a local model folder before it is published.
    /// Exit code: 0 allow / allow_with_obligations, 1 flag_review / deny, 2 usage error.
    Audit(kaiyuan_hub::license_cli::AuditArgs),
}

#[derive(Subcommand)]
enum MirrorCommand {
    /// Fetch ORG/NAME[@REVISION] (default revision `main`) from the upstream now: checked and
    /// scanned as on a client's first read.
    Add { repo: String },
    /// Every mirrored repository, its upstream and when it was last fetched.
    Status,
    /// Re-sync every mirrored branch with the upstream now.
    Sync,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user and print a write token for them (shown once).
    CreateUser {
        name: String,
        /// Make the user a hub administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Start signing attestations with a new key; older keys stay published as retired.
    RotateAttestationKey,
}

/// The database pool, and the embedded cluster behind it when no `DATABASE_URL` is set.
async fn open_database(
    settings: &Settings,
    migrate_embedded: bool,
) -> anyhow::Result<(PgPool, Option<EmbeddedPostgres>)> {
    match &settings.database_url {
        Some(url) => Ok((
            db::connect(url, 20)
                .await
                .context("connecting to DATABASE_URL")?,
            None,
        )),
        None => {
            let pg = EmbeddedPostgres::start(settings).await?;
            let pool = db::connect(&pg.url, 20).await?;
            if migrate_embedded {
                db::MIGRATOR
                    .run(&pool)
                    .await
                    .context("applying migrations")?;
            }
            Ok((pool, Some(pg)))
        }
    }
}

/// Refuses to start against a database whose schema is behind this binary.
async fn check_schema(pool: &PgPool) -> anyhow::Result<()> {
    let applied = db::applied_migrations(pool).await.unwrap_or_default();
    let missing: Vec<i64> = db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!("the database lacks migrations {missing:?}: run `kaiyuan migrate` first");
    }
    Ok(())
}

fn open_store(settings: &Settings) -> anyhow::Result<BlobStore> {
    let url = settings.effective_store_url()?;
    BlobStore::from_url(&url).with_context(|| format!("opening object store {url}"))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

fn spawn_workers(
    ctx: &JobContext,
    settings: &Settings,
    count: usize,
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..count)
        .map(|i| {
            tokio::spawn(jobs::run_worker(
                ctx.clone(),
                settings.workers.clone(),
                i,
                shutdown.clone(),
            ))
        })
        .collect()
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let (pool, pg) = open_database(&settings, true).await?;
    let pg = pg.map(std::sync::Arc::new);
    let result = async {
        check_schema(&pool).await?;
        let process_id = kaiyuan_hub::liveness::process_id(&settings.listen);
        let store = kaiyuan_hub::liveness::register(&pool, open_store(&settings)?, &process_id).await?;
        let store = kaiyuan_hub::xet::recipes::attach(store, pool.clone());
        tracing::info!(store = %store.describe(), process = %process_id, "object store ready");
        let mut conn = pool.acquire().await?;
        if db::accounts::count_users(&mut conn).await? == 0 {
            tracing::warn!(
                "no users yet: create the first admin with `kaiyuan admin create-user NAME --admin` \
                 (or `cargo run --release -p kaiyuan-hub --bin kaiyuan -- admin create-user NAME --admin`)"
            );
        }
        // Results of an older scanner version are replaced in the background.
        let scanner_version = db::rules::current_version(&mut conn).await?;
        let queued = db::scans::enqueue_rescans(&mut conn, &scanner_version, false).await?;
        if queued > 0 {
            tracing::info!(queued, scanner.version = %scanner_version, "queued rescans for the new scanner version");
        }
        // Evaluations made with an older licence catalog are redone in the background.
        let catalog = &kaiyuan_license::catalog::catalog().version;
        let queued = db::licenses::enqueue_stale(&mut conn, catalog).await?;
        if queued > 0 {
            tracing::info!(queued, catalog.version = %catalog, "queued licence re-evaluations for the new catalog");
        }
        drop(conn);
        let app = Application::build(settings.clone(), pool.clone(), store.clone())?;
        tracing::info!("kaiyuan listening on http://{}", settings.listen);
        let handle = app.handle();
        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = JobContext { db: pool.clone(), store: store.clone(), settings: std::sync::Arc::new(settings.clone()) };
        let mut tasks = spawn_workers(&ctx, &settings, settings.workers.in_process, &stop_rx);
        if let Some(pg) = &pg {
            tasks.push(tokio::spawn(pg.clone().supervise(stop_rx.clone())));
        }
        tasks.push(tokio::spawn(kaiyuan_hub::liveness::heartbeat(pool.clone(), process_id, stop_rx.clone())));
        if settings.gc.interval_secs > 0 {
            let (pool, store, gc_settings, mut stop) = (pool.clone(), store.clone(), settings.gc.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(gc_settings.interval_secs));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            if let Err(e) = gc::collect(&pool, &store, &gc_settings).await {
                                tracing::warn!(error = format!("{e:#}"), "garbage collection failed");
                            }
                        }
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
        if settings.mirror.configured() && settings.mirror.sync_secs > 0 {
            let (state, mut stop) = (app.state(), stop_rx.clone());
            let every = Duration::from_secs(settings.mirror.sync_secs);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tokio::select! {
                        _ = tick.tick() => match kaiyuan_hub::mirror::sync(&state).await {
                            Ok(report) => tracing::info!(?report, "mirror re-sync finished"),
                            Err(e) => tracing::warn!(error = %e.message, "mirror re-sync failed"),
                        },
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
        let server = tokio::spawn(app.run_until_stopped());
        shutdown_signal().await;
        tracing::info!("shutting down");
        handle.stop(true).await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        server.await??;
        anyhow::Ok(())
    }
    .await;
    pool.close().await;
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Scan { paths, json } = &cli.command {
        let code = kaiyuan_hub::scan_cli::run(paths, *json);
        std::process::exit(code as i32);
    }
    if let Command::License {
        command: LicenseCommand::Audit(args),
    } = &cli.command
    {
        std::process::exit(kaiyuan_hub::license_cli::run(args) as i32);
    }
    if let Command::Log {
        command: LogCommand::Verify(args),
    } = &cli.command
    {
        std::process::exit(kaiyuan_hub::log_cli::run(args) as i32);
    }
    if let Command::Verify(args) = &cli.command {
        std::process::exit(kaiyuan_hub::verify_cli::run(args) as i32);
    }
    if let Command::VerifyModel { request } = &cli.command {
        std::process::exit(kaiyuan_verifier::sandbox::child_main(request));
    }
    if let Command::Sign(args) = &cli.command {
        std::process::exit(kaiyuan_hub::sign_cli::run(args) as i32);
    }
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        settings.data_dir = dir;
    }
    match cli.command {
        Command::Serve { listen, upstream } => {
            if let Some(listen) = listen {
                settings.listen = listen;
            }
            if upstream.is_some() {
                settings.mirror.upstream = upstream;
            }
            serve(settings).await
        }
        Command::Worker { workers, ep } => {
            if let Some(ep) = ep {
                settings.verification.ep = ep;
            }
            let (pool, _pg) = open_database(&settings, false).await?;
            check_schema(&pool).await?;
            let ctx = JobContext {
                db: pool.clone(),
                store: kaiyuan_hub::xet::recipes::attach(open_store(&settings)?, pool.clone()),
                settings: std::sync::Arc::new(settings.clone()),
            };
            let (stop_tx, stop_rx) = watch::channel(false);
            let tasks = spawn_workers(&ctx, &settings, workers, &stop_rx);
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            for task in tasks {
                let _ = task.await;
            }
            pool.close().await;
            Ok(())
        }
        Command::Migrate => {
            let (pool, _pg) = open_database(&settings, false).await?;
            let result = db::MIGRATOR.run(&pool).await.context("applying migrations");
            pool.close().await;
            result?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::CreateUser { name, admin },
        } => {
            let (pool, _pg) = open_database(&settings, true).await?;
            let actor = domain::actor::Actor::default();
            let result = domain::accounts::create_user(&pool, &actor, &name, admin).await;
            pool.close().await;
            let created = result?;
            eprintln!(
                "created {}user `{}`; its write token (shown once):",
                if admin { "admin " } else { "" },
                created.name
            );
            println!("{}", created.token);
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::RotateAttestationKey,
        } => {
            let (pool, _pg) = open_database(&settings, false).await?;
            check_schema(&pool).await?;
            let result = async {
                let mut tx = pool.begin().await?;
                let (_, fingerprint) = kaiyuan_hub::signatures::rotate_attestation_key(&mut tx)
                    .await
                    .map_err(anyhow::Error::new)?;
                tx.commit().await?;
                anyhow::Ok(fingerprint)
            }
            .await;
            pool.close().await;
            println!("attestations are now signed with {}", result?);
            Ok(())
        }
        Command::Scan { .. }
        | Command::License { .. }
        | Command::Sign(_)
        | Command::Log { .. }
        | Command::Verify(_)
        | Command::VerifyModel { .. } => {
            unreachable!("handled before settings are read")
        }
        Command::Rescan => {
            let (pool, _pg) = open_database(&settings, false).await?;
            check_schema(&pool).await?;
            let mut conn = pool.acquire().await?;
            let queued = match db::rules::current_version(&mut conn).await {
                Ok(version) => db::scans::enqueue_rescans(&mut conn, &version, true).await,
                Err(e) => Err(e),
            };
            drop(conn);
            pool.close().await;
            eprintln!(
                "queued {} blob scans; running workers (serve or worker) will process them",
                queued?
            );
            Ok(())
        }
        Command::Mirror { command } => {
            let (pool, _pg) = open_database(&settings, false).await?;
            let result = mirror_command(command, &settings, &pool).await;
            pool.close().await;
            result
        }
        Command::Gc => {
            let (pool, _pg) = open_database(&settings, false).await?;
            let report = gc::collect(&pool, &open_store(&settings)?, &settings.gc).await;
            pool.close().await;
            println!("{}", serde_json::to_string(&report?)?);
            Ok(())
        }
    }
}

/// The state the mirror's functions need, outside a server; it waits for whole fetches.
fn mirror_state(
    settings: &Settings,
    pool: &PgPool,
) -> anyhow::Result<actix_web::web::Data<kaiyuan_hub::state::AppState>> {
    let store = kaiyuan_hub::xet::recipes::attach(open_store(settings)?, pool.clone());
    let mut settings = settings.clone();
    settings.mirror.wait_secs = 7 * 24 * 3600;
    Ok(actix_web::web::Data::new(kaiyuan_hub::state::AppState {
        db: pool.clone(),
        store,
        mirror: kaiyuan_hub::mirror::Mirror::new(&settings.mirror),
        settings: std::sync::Arc::new(settings),
        metrics: Default::default(),
        signing_key: tokio::sync::OnceCell::new(),
    }))
}

async fn mirror_command(
    command: MirrorCommand,
    settings: &Settings,
    pool: &PgPool,
) -> anyhow::Result<()> {
    match command {
        MirrorCommand::Add { repo } => {
            let (repo, revision) = repo.split_once('@').unwrap_or((&repo, "main"));
            // The command's state waits for the whole fetch (see `mirror_state`).
            let state = mirror_state(settings, pool)?;
            let commit = kaiyuan_hub::mirror::prefetch(&state, &Default::default(), repo, revision)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!(
                "mirrored {repo}@{revision} as commit {}",
                commit.unwrap_or_default()
            );
            Ok(())
        }
        MirrorCommand::Sync => {
            let state = mirror_state(settings, pool)?;
            let report = kaiyuan_hub::mirror::sync(&state)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        MirrorCommand::Status => {
            let mut conn = pool.acquire().await?;
            for (repo, upstream, synced, commits) in db::mirror::status(&mut conn).await? {
                println!(
                    "{repo}\t{upstream}\t{}\t{commits} commits",
                    synced.to_rfc3339()
                );
            }
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
