//! A TCP relay with the limits of a wide-area link: the bytes towards the client pass at a
//! bounded rate, shared by every connection (a link of that capacity) or each connection's own
//! (a distant server, where one stream's rate is its window over the round trip), and every
//! byte in either direction is held half a round trip. Requests pass unthrottled (they are
//! small). The tests put it between a mirror and its upstream; `scripts/bench-mirror.sh` runs it
//! as the `link` example.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Bytes read at once; each is held and paced as one.
const PIECE: usize = 256 * 1024;

/// What the link does to the bytes it relays.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Bytes per second towards the client; 0 is no limit.
    pub megabytes_per_sec: f64,
    /// Whether each connection gets the rate of its own.
    pub per_connection: bool,
    /// How long every byte is held, in each direction (half the round trip).
    pub one_way: Duration,
}

/// Relays every connection `listener` accepts to `target` (`host:port`) within `limits`.
pub async fn serve(listener: TcpListener, target: String, limits: Limits) {
    let target = Arc::new(target);
    let shared = (limits.megabytes_per_sec > 0.0 && !limits.per_connection)
        .then(|| Rate::new(limits.megabytes_per_sec));
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(relay(client, target.clone(), limits, shared.clone()));
    }
}

/// A link to `upstream` (`http://host:port`) on a port of its own: its URL.
pub async fn start(upstream: &str, limits: Limits) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let target = upstream.trim_start_matches("http://").to_string();
    tokio::spawn(serve(listener, target, limits));
    format!("http://{address}")
}

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

/// Relays one connection; `shared` is the link's rate when its connections share one.
async fn relay(client: TcpStream, target: Arc<String>, limits: Limits, shared: Option<Arc<Rate>>) {
    let Ok(server) = TcpStream::connect(target.as_str()).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let rate = match limits.per_connection && limits.megabytes_per_sec > 0.0 {
        true => Some(Rate::new(limits.megabytes_per_sec)),
        false => shared,
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, None, limits.one_way),
        pipe(server_read, client_write, rate, limits.one_way),
    );
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
