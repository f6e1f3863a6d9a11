//! The link of `kaiyuan_tests::link` as a process, for `scripts/bench-mirror.sh`:
//!
//!     link LISTEN_PORT TARGET_HOST:PORT MEGABYTES_PER_SECOND [per-connection] [rtt=MS]
//!
//! A rate of 0 is no limit; `rtt=MS` holds every byte MS/2 ms in each direction. It replaces a
//! Python relay whose own CPU, on the benchmark's two cores, moved the direct download it was
//! meant to measure by seconds from run to run.

use std::time::Duration;

use kaiyuan_tests::link::{Limits, serve};

fn parse(args: &[String]) -> Option<(u16, String, Limits)> {
    let [port, target, rate, flags @ ..] = args else {
        return None;
    };
    let mut rtt_ms = 0.0;
    for flag in flags {
        match flag.strip_prefix("rtt=") {
            Some(ms) => rtt_ms = ms.parse().ok().filter(|ms: &f64| *ms >= 0.0)?,
            None if flag == "per-connection" => {}
            None => return None,
        }
    }
    let limits = Limits {
        megabytes_per_sec: rate.parse().ok().filter(|r: &f64| *r >= 0.0)?,
        per_connection: flags.iter().any(|f| f == "per-connection"),
        one_way: Duration::from_secs_f64(rtt_ms / 2000.0),
    };
    Some((port.parse().ok()?, target.clone(), limits))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((port, target, limits)) = parse(&args) else {
        eprintln!(
            "usage: link LISTEN_PORT TARGET_HOST:PORT MEGABYTES_PER_SECOND [per-connection] [rtt=MS]"
        );
        return std::process::ExitCode::from(2);
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("link: cannot listen on port {port}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tokio::select! {
        () = serve(listener, target, limits) => std::process::ExitCode::FAILURE,
        _ = tokio::signal::ctrl_c() => std::process::ExitCode::SUCCESS,
    }
}
