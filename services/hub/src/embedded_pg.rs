//! The embedded default database: a PostgreSQL cluster under `<data-dir>/postgres`, owned by the
//! hub, listening on loopback only, with a random password kept in `<data-dir>/postgres.password`.
//!
//! PostgreSQL refuses to run as root, so when the hub runs as root the cluster belongs to the
//! `postgres` system user (created by Debian's package) and its tools run through `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;

use crate::config::Settings;

/// A running embedded cluster; dropping it stops the cluster if this process started it.
pub struct EmbeddedPostgres {
    cluster: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<String>,
    started_here: bool,
    port: u16,
    pub url: String,
    /// The same server's maintenance database, used to create `kaiyuan`.
    admin_url: String,
}

/// Finds `initdb` and `pg_ctl`: the configured directory, else the newest Debian install, else PATH.
fn find_bin_dir(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = configured {
        return Ok(dir.to_path_buf());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        if Path::new(dir).join("initdb").exists() && Path::new(dir).join("pg_ctl").exists() {
            return Ok(PathBuf::from(dir));
        }
    }
    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found: install Debian's `postgresql` \
         package (scripts/install-deps.sh does), set embedded_postgres.bin_dir, or set DATABASE_URL"
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The cluster's port: the configured one, else the one chosen when this data directory's
/// cluster was first started (`postgres.port`), else a free loopback port, remembered there.
fn cluster_port(data_dir: &Path, configured: Option<u16>) -> anyhow::Result<u16> {
    if let Some(port) = configured {
        return Ok(port);
    }
    let file = data_dir.join("postgres.port");
    if let Ok(text) = std::fs::read_to_string(&file) {
        return text
            .trim()
            .parse()
            .with_context(|| format!("{} does not hold a port number", file.display()));
    }
    // A cluster made before ports were remembered ran on the old fixed default.
    let port = if data_dir.join("postgres/PG_VERSION").exists() {
        54329
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    };
    std::fs::write(&file, format!("{port}\n"))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(port)
}

impl EmbeddedPostgres {
    fn tool(&self, name: &str) -> Command {
        let program = self.bin_dir.join(name);
        match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn run(&self, mut cmd: Command, what: &str) -> anyhow::Result<()> {
        let output = cmd.output().with_context(|| format!("running {what}"))?;
        if !output.status.success() {
            bail!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok(())
    }

    /// Initialises the cluster on first use, starts it unless it already runs, and makes sure the
    /// `kaiyuan` database exists.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let data_dir = &settings.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        let port = cluster_port(&data_dir, settings.embedded_postgres.port)?;
        let mut pg = EmbeddedPostgres {
            cluster: data_dir.join("postgres"),
            bin_dir: find_bin_dir(settings.embedded_postgres.bin_dir.as_deref())?,
            run_as: running_as_root().then(|| "postgres".to_string()),
            started_here: false,
            port,
            url: String::new(),
            admin_url: String::new(),
        };
        let password_file = data_dir.join("postgres.password");
        if !pg.cluster.join("PG_VERSION").exists() {
            pg.init(&password_file)?;
        }
        let password = std::fs::read_to_string(&password_file)
            .with_context(|| format!("reading {}", password_file.display()))?;
        let server = format!("postgres://kaiyuan:{}@127.0.0.1:{port}", password.trim());
        pg.url = format!("{server}/kaiyuan");
        pg.admin_url = format!("{server}/postgres");

        if !pg.is_running() {
            pg.start_server()?;
            pg.started_here = true;
        }
        pg.ensure_database().await?;
        tracing::info!(cluster = %pg.cluster.display(), port, "embedded PostgreSQL ready");
        Ok(pg)
    }

    fn is_running(&self) -> bool {
        let mut status = self.tool("pg_ctl");
        status.arg("status").arg("-D").arg(&self.cluster);
        status.output().map(|o| o.status.success()).unwrap_or(false)
    }

    /// Starts the server and waits until it accepts connections.
    fn start_server(&self) -> anyhow::Result<()> {
        // Inside the cluster directory: the cluster's owner may write there.
        let log = self.cluster.join("server.log");
        let mut start = self.tool("pg_ctl");
        start
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&self.cluster)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories=''",
                self.port
            ));
        self.run(start, "pg_ctl start")
            .with_context(|| format!("see {} for PostgreSQL's own log", log.display()))
    }

    /// Keeps the cluster this process started running: checked every `SUPERVISE_EVERY`, restarted
    /// when it stopped (a crash, the OOM killer, a stray `kill -9`), with a backoff that doubles
    /// up to `SUPERVISE_MAX_BACKOFF` while restarts fail. Meanwhile the hub answers 503.
    pub async fn supervise(
        self: std::sync::Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        const SUPERVISE_EVERY: Duration = Duration::from_secs(2);
        const SUPERVISE_MAX_BACKOFF: Duration = Duration::from_secs(30);
        if !self.started_here {
            return;
        }
        let mut wait = SUPERVISE_EVERY;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            let pg = self.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                if pg.is_running() {
                    return Ok(false);
                }
                pg.start_server().map(|()| true)
            })
            .await;
            wait = match outcome {
                Ok(Ok(false)) => SUPERVISE_EVERY,
                Ok(Ok(true)) => {
                    tracing::warn!(cluster = %self.cluster.display(), "embedded PostgreSQL had stopped; restarted it");
                    SUPERVISE_EVERY
                }
                Ok(Err(e)) => {
                    let next = (wait * 2).min(SUPERVISE_MAX_BACKOFF);
                    tracing::error!(
                        error = format!("{e:#}"),
                        retry_in_secs = next.as_secs(),
                        "embedded PostgreSQL is down and did not restart"
                    );
                    next
                }
                Err(e) => {
                    tracing::error!(error = %e, "embedded PostgreSQL supervision check failed");
                    SUPERVISE_MAX_BACKOFF
                }
            };
        }
    }

    fn init(&self, password_file: &Path) -> anyhow::Result<()> {
        let password = hex::encode(rand::rng().random::<[u8; 16]>());
        std::fs::create_dir_all(&self.cluster)?;
        write_private(password_file, &password)?;
        // initdb reads the password from a file the cluster's owner can read.
        let pwfile = self.cluster.with_file_name("postgres.initpw");
        write_private(&pwfile, &password)?;
        if let Some(user) = &self.run_as {
            let mut chown = Command::new("chown");
            chown
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(&self.cluster)
                .arg(&pwfile);
            self.run(chown, "chown of the cluster directory")?;
        }
        let mut initdb = self.tool("initdb");
        initdb
            .arg("-D")
            .arg(&self.cluster)
            .args([
                "-U",
                "kaiyuan",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        let result = self.run(initdb, "initdb").with_context(|| {
            format!(
                "the cluster owner must be able to reach {} (every parent directory needs o+x)",
                self.cluster.display()
            )
        });
        let _ = std::fs::remove_file(&pwfile);
        result
    }

    async fn ensure_database(&self) -> anyhow::Result<()> {
        let pool = crate::db::connect(&self.admin_url, 1).await?;
        crate::db::ensure_database(&pool, "kaiyuan").await?;
        pool.close().await;
        Ok(())
    }

    /// Stops the cluster if this process started it.
    fn stop(&self) {
        if !self.started_here {
            return;
        }
        let mut stop = self.tool("pg_ctl");
        stop.arg("stop")
            .arg("-m")
            .arg("fast")
            .arg("-D")
            .arg(&self.cluster);
        match self.run(stop, "pg_ctl stop") {
            Ok(()) => tracing::info!("embedded PostgreSQL stopped"),
            Err(e) => tracing::warn!(error = %e, "could not stop embedded PostgreSQL"),
        }
    }
}

/// Every exit path stops the cluster this process started: an early `?` included.
impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}
