//! Prometheus metrics in the text exposition format: requests by route and status, latency
//! histograms, bytes in and out. Job counts by state are read from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Xorb uploads the CAS received (whether or not they were new) and their bytes.
    xorbs_in: AtomicU64,
    xorb_bytes_in: AtomicU64,
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let histogram = latency.entry(route.to_string()).or_default();
            for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
                if seconds <= *bound {
                    *count += 1;
                }
            }
            histogram.sum += seconds;
            histogram.count += 1;
        }
    }

    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_xorb_received(&self, bytes: u64) {
        self.xorbs_in.fetch_add(1, Ordering::Relaxed);
        self.xorb_bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Renders every metric; `jobs` are the queue's counts by state.
    pub fn render(&self, jobs: &[(String, i64)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP kaiyuan_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE kaiyuan_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "kaiyuan_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                    escape(route)
                );
            }
        }
        out.push_str("# HELP kaiyuan_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE kaiyuan_http_request_duration_seconds histogram\n");
        if let Ok(latency) = self.latency.lock() {
            for (route, h) in latency.iter() {
                let route = escape(route);
                for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                    let _ = writeln!(
                        out,
                        "kaiyuan_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "kaiyuan_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                     kaiyuan_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                     kaiyuan_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP kaiyuan_bytes_received_total File bytes received by uploads.\n\
             # TYPE kaiyuan_bytes_received_total counter\n\
             kaiyuan_bytes_received_total {}\n\
             # HELP kaiyuan_bytes_sent_total File bytes sent by downloads.\n\
             # TYPE kaiyuan_bytes_sent_total counter\n\
             kaiyuan_bytes_sent_total {}\n\
             # HELP kaiyuan_xet_xorbs_received_total Xorb uploads the CAS received.\n\
             # TYPE kaiyuan_xet_xorbs_received_total counter\n\
             kaiyuan_xet_xorbs_received_total {}\n\
             # HELP kaiyuan_xet_xorb_bytes_received_total Serialized xorb bytes the CAS received.\n\
             # TYPE kaiyuan_xet_xorb_bytes_received_total counter\n\
             kaiyuan_xet_xorb_bytes_received_total {}",
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
            self.xorbs_in.load(Ordering::Relaxed),
            self.xorb_bytes_in.load(Ordering::Relaxed)
        );
        out.push_str("# HELP kaiyuan_jobs Background jobs by state.\n# TYPE kaiyuan_jobs gauge\n");
        for state in ["queued", "running", "succeeded", "failed"] {
            let count = jobs.iter().find(|(s, _)| s == state).map_or(0, |(_, c)| *c);
            let _ = writeln!(out, "kaiyuan_jobs{{state=\"{state}\"}} {count}");
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_jobs() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/healthz", 200, 0.002);
        metrics.observe_request("GET", "/healthz", 200, 0.5);
        metrics.add_bytes_out(42);
        let text = metrics.render(&[("failed".into(), 3)]);
        assert!(text.contains(
            "kaiyuan_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "kaiyuan_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("kaiyuan_http_request_duration_seconds_count{route=\"/healthz\"} 2"));
        assert!(text.contains("kaiyuan_bytes_sent_total 42"));
        assert!(text.contains("kaiyuan_jobs{state=\"failed\"} 3"));
        assert!(text.contains("kaiyuan_jobs{state=\"queued\"} 0"));
    }
}
