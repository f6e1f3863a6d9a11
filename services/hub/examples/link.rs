//! A TCP relay with the limits of a wide-area link, for `scripts/bench-mirror.sh`: the bytes
//! towards the client pass at a bounded rate, shared by every connection (a link of that
//! capacity) or, with `per-connection`, each connection's own (a distant server, where one
//! stream's rate is its window over the round trip); `rtt=MS` holds every byte MS/2 ms in each
//! direction. A rate of 0 is no limit. Requests pass unthrottled (they are small).
//!
//! It replaces a Python relay whose own CPU, on the benchmark's two cores, moved the direct
//! download it was meant to measure by seconds from run to run.
//!
//!     link LISTEN_PORT TARGET_HOST:PORT MEGABYTES_PER_SECOND [per-connection] [rtt=MS]

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Bytes read at once; each is held and paced as one.
const PIECE: usize = 256 * 1024;

/// A token bucket of `rate` bytes per second.
struct Rate {
    bytes_per_sec: f64,
    /// When the link is free again: the end of what it has already let pass.
    free_at: tokio::sync::Mutex<Instant>,
}

impl Rate {
    fn new(megabytes_per_sec: f64) -> Arc<Self> {
        Arc::new(Rate {
            bytes_per_sec: megabytes_per_sec * 1e6,
            free_at: tokio::sync::Mutex::new(Instant::now()),
        })
    }

    /// Waits until `n` more bytes may start to pass.
    async fn take(&self, n: usize) {
        let start = {
            let mut free_at = self.free_at.lock().await;
            let start = (*free_at).max(Instant::now());
            *free_at = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// Passes what `from` reads on to `to`, at `rate` if any, each piece `delay` after it was read;
/// a queue keeps the order while later pieces arrive.
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin + Send + 'static,
    rate: Option<Arc<Rate>>,
    delay: Duration,
) {
    let (queue, mut due) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0u8; PIECE];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        if let Some(rate) = &rate {
            rate.take(n).await;
        }
        if queue
            .send((Instant::now() + delay, buffer[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(queue);
    let _ = writer.await;
}

struct Settings {
    target: String,
    megabytes_per_sec: f64,
    per_connection: bool,
    one_way: Duration,
}

/// Relays one connection; `shared` is the link's rate when its connections share one.
async fn relay(client: TcpStream, settings: Arc<Settings>, shared: Option<Arc<Rate>>) {
    let Ok(server) = TcpStream::connect(&settings.target).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let limited = settings.megabytes_per_sec > 0.0;
    let rate = match settings.per_connection {
        true => limited.then(|| Rate::new(settings.megabytes_per_sec)),
        false => shared,
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, None, settings.one_way),
        pipe(server_read, client_write, rate, settings.one_way),
    );
}

fn parse(args: &[String]) -> Option<(u16, Settings)> {
    let [port, target, rate, flags @ ..] = args else {
        return None;
    };
    let mut rtt_ms = 0.0;
    for flag in flags {
        match flag.strip_prefix("rtt=") {
            Some(ms) => rtt_ms = ms.parse().ok()?,
            None if flag == "per-connection" => {}
            None => return None,
        }
    }
    let settings = Settings {
        target: target.clone(),
        megabytes_per_sec: rate.parse().ok().filter(|r: &f64| *r >= 0.0)?,
        per_connection: flags.iter().any(|f| f == "per-connection"),
        one_way: Duration::from_secs_f64(rtt_ms / 2000.0),
    };
    Some((port.parse().ok()?, settings))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((port, settings)) = parse(&args) else {
        eprintln!(
            "usage: link LISTEN_PORT TARGET_HOST:PORT MEGABYTES_PER_SECOND [per-connection] [rtt=MS]"
        );
        return std::process::ExitCode::from(2);
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("link: cannot listen on port {port}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let settings = Arc::new(settings);
    let shared = (settings.megabytes_per_sec > 0.0 && !settings.per_connection)
        .then(|| Rate::new(settings.megabytes_per_sec));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(relay(client, settings.clone(), shared.clone()));
                }
            }
            _ = tokio::signal::ctrl_c() => return std::process::ExitCode::SUCCESS,
        }
    }
}
