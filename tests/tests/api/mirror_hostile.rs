//! Mirror mode against an upstream that lies: a proxy in front of a real kaiyuan upstream that
//! rewrites its answers. It redirects downloads to internal addresses, names an internal CAS,
//! signs fetch URLs for internal hosts, sends more than the range it names, has no
//! reconstruction for a file it advertises through Xet, refuses parts of its signed ranges, and
//! lets one of their URLs expire.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kaiyuan_tests::{Backend, TestApp, expect_error, noise, spawn_app_with};
use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::mirror::{
    objects_once_settled, refused_leaving_no_repository, route_requests, upload_with_xet,
    upstream_app, upstream_resolve_gets, upstream_with_xet_file,
};

/// One answer of the upstream, which a [`Tamper`] may change before the mirror sees it.
pub(super) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Changes the answer to a request (its method, and its path with the query).
pub(super) type Tamper = Arc<dyn Fn(&str, &str, &mut Answer) + Send + Sync>;

/// An HTTP proxy to `upstream` whose answers `tamper` rewrites: a hostile upstream, built from
/// a real one. The client's `Host` goes on to the upstream, so the URLs the upstream writes (its
/// token route, its CAS, the signed fetch URLs) name the proxy and come back through it.
pub(super) async fn rewriting_proxy(upstream: &str, tamper: Tamper) -> String {
    proxy(upstream, tamper, None).await
}

/// Xorb pieces a [`paced_proxy`] is sending at once, and the most it ever sent at once.
#[derive(Default)]
pub(super) struct PiecesAtOnce {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl PiecesAtOnce {
    pub(super) fn most(&self) -> usize {
        self.most.load(Ordering::Relaxed)
    }
}

/// A proxy to `upstream` that sends each answer of its CAS's fetch route at `bytes_per_sec`,
/// and counts how many of them it is sending at once.
pub(super) async fn paced_proxy(
    upstream: &str,
    bytes_per_sec: usize,
) -> (String, Arc<PiecesAtOnce>) {
    let pieces = Arc::new(PiecesAtOnce::default());
    let pace = Pace {
        bytes_per_sec,
        pieces: pieces.clone(),
    };
    (
        proxy(upstream, Arc::new(|_, _, _| {}), Some(pace)).await,
        pieces,
    )
}

/// How a [`paced_proxy`] sends the pieces of xorbs.
#[derive(Clone)]
struct Pace {
    bytes_per_sec: usize,
    pieces: Arc<PiecesAtOnce>,
}

impl Pace {
    async fn send(&self, stream: &mut tokio::net::TcpStream, body: &[u8]) -> std::io::Result<()> {
        let now = self.pieces.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.pieces.most.fetch_max(now, Ordering::Relaxed);
        let sent = async {
            // The pause comes first: once the last part is written, the piece is no longer
            // being sent.
            for part in body.chunks(64 << 10) {
                let pause = part.len() as f64 / self.bytes_per_sec as f64;
                tokio::time::sleep(std::time::Duration::from_secs_f64(pause)).await;
                stream.write_all(part).await?;
            }
            Ok(())
        }
        .await;
        self.pieces.now.fetch_sub(1, Ordering::Relaxed);
        sent
    }
}

async fn proxy(upstream: &str, tamper: Tamper, pace: Option<Pace>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let upstream = upstream.to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (upstream, client, tamper) = (upstream.clone(), client.clone(), tamper.clone());
            let pace = pace.clone();
            tokio::spawn(async move {
                let _ = relay(stream, &upstream, &client, &*tamper, pace.as_ref()).await;
            });
        }
    });
    format!("http://{address}")
}

/// Relays one request (the mirror sends no bodies) and writes back the tampered answer, then
/// closes the connection.
async fn relay(
    mut stream: tokio::net::TcpStream,
    upstream: &str,
    client: &reqwest::Client,
    tamper: &(dyn Fn(&str, &str, &mut Answer) + Send + Sync),
    pace: Option<&Pace>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    let end = loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&head[..end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        request_line.next().unwrap_or_default().to_string(),
        request_line.next().unwrap_or_default().to_string(),
    );
    let mut request = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{upstream}{target}"),
    );
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        if !name.eq_ignore_ascii_case("connection") {
            request = request.header(name.trim(), value.trim());
        }
    }
    let Ok(response) = request.send().await else {
        return Ok(());
    };
    let hop_by_hop = ["connection", "transfer-encoding", "keep-alive"];
    let mut answer = Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .filter(|(name, _)| !hop_by_hop.contains(&name.as_str()))
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: response.bytes().await.unwrap_or_default().to_vec(),
    };
    tamper(&method, &target, &mut answer);
    let mut out = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", answer.status);
    for (name, value) in &answer.headers {
        // A HEAD keeps the upstream's length; a GET gets the length of the body it is sent.
        if name != "content-length" || method == "HEAD" {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if method != "HEAD" {
        out.push_str(&format!("content-length: {}\r\n", answer.body.len()));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    if method != "HEAD" {
        match pace.filter(|_| target.starts_with("/cas/v1/fetch/")) {
            Some(pace) => pace.send(&mut stream, &answer.body).await?,
            None => stream.write_all(&answer.body).await?,
        }
    }
    stream.shutdown().await
}

/// A listener that only counts the connections made to it: an internal service the upstream
/// would like the mirror to reach.
async fn trap() -> (u16, Arc<Mutex<u32>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(Mutex::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            *counted.lock().unwrap() += 1;
        }
    });
    (port, connections)
}

async fn mirror_through(pool: &PgPool, proxy: String, internal_hosts: Vec<String>) -> TestApp {
    spawn_app_with(pool.clone(), Backend::Local, move |s| {
        s.mirror.upstream = Some(proxy);
        s.mirror.timeout_secs = 5;
        s.mirror.internal_hosts = internal_hosts;
    })
    .await
}

/// What the hostile upstream does, switched between requests.
#[derive(Clone, Default)]
enum Lie {
    #[default]
    None,
    /// Redirects downloads of files to this URL.
    Redirect(String),
    /// Names this CAS in its read tokens.
    CasUrl(String),
    /// Signs fetch URLs of this origin in its reconstructions.
    FetchOrigin(String),
}

fn lying(lie: Arc<Mutex<Lie>>) -> Tamper {
    Arc::new(
        move |method, target, answer| match lie.lock().unwrap().clone() {
            Lie::None => {}
            Lie::Redirect(to) if method == "GET" && target.contains("/resolve/") => {
                answer.status = 302;
                answer.headers.retain(|(n, _)| n != "location");
                answer.headers.push(("location".into(), to));
                answer.body.clear();
            }
            Lie::CasUrl(cas) if target.contains("/xet-read-token/") => {
                let mut token: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
                token["casUrl"] = cas.into();
                answer.body = serde_json::to_vec(&token).unwrap();
            }
            Lie::FetchOrigin(origin) if target.starts_with("/cas/v1/reconstructions/") => {
                let mut plan: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
                for fetches in plan["fetch_info"].as_object_mut().unwrap().values_mut() {
                    for fetch in fetches.as_array_mut().unwrap() {
                        let url = url::Url::parse(fetch["url"].as_str().unwrap()).unwrap();
                        fetch["url"] =
                            format!("{origin}{}?{}", url.path(), url.query().unwrap()).into();
                    }
                }
                answer.body = serde_json::to_vec(&plan).unwrap();
            }
            _ => {}
        },
    )
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_hostile_upstream_cannot_send_the_mirror_to_internal_addresses(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream
        .create_repo(&alice, "alice", "small", "public")
        .await;
    upstream.create_repo(&alice, "alice", "x", "public").await;
    // Under 1 MiB: read through resolve, never through the CAS.
    let small = noise(300 << 10, 31);
    let commit = upstream
        .commit_files(&alice, "alice/small", &[("w.bin", &small)])
        .await;
    let commit = commit["id"].as_str().unwrap().to_string();
    let weights = noise(12 << 20, 32);
    upload_with_xet(
        &upstream,
        &alice,
        "alice/x",
        &[("model.safetensors", &weights)],
    )
    .await;

    let lie = Arc::new(Mutex::new(Lie::None));
    let proxy = rewriting_proxy(&upstream.base, lying(lie.clone())).await;
    // The mirror is told of one internal host: the real upstream's own address (the proxy
    // stands in front of it), as an internal upstream's S3 server would be.
    let upstream_host = upstream.base.trim_start_matches("http://").to_string();
    let mirror = mirror_through(&pool, proxy.clone(), vec![upstream_host]).await;
    let (trap_port, trapped) = trap().await;

    // Redirects to internal services, by address and by name, are refused before connecting.
    for to in [
        format!("http://127.0.0.1:{trap_port}/latest/meta-data/"),
        format!("http://localhost:{trap_port}/"),
        format!("http://[::ffff:127.0.0.1]:{trap_port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        *lie.lock().unwrap() = Lie::Redirect(to.clone());
        let res = mirror.get("/alice/small/resolve/main/w.bin", None).await;
        let message = expect_error(res, StatusCode::BAD_GATEWAY, "upstream-failed").await;
        assert!(
            message.contains("redirected to") && message.contains("not a public address"),
            "{to}: {message}"
        );
    }
    assert_eq!(*trapped.lock().unwrap(), 0, "the mirror reached the trap");
    // A redirect to a host the configuration names is followed.
    *lie.lock().unwrap() = Lie::Redirect(format!(
        "{}/alice/small/resolve/{commit}/w.bin",
        upstream.base
    ));
    let res = mirror.get("/alice/small/resolve/main/w.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == small.as_slice());

    // Signed fetch URLs on an internal host: refused, and nothing is kept.
    *lie.lock().unwrap() = Lie::FetchOrigin(format!("http://127.0.0.1:{trap_port}"));
    let res = mirror
        .get("/alice/x/resolve/main/model.safetensors", None)
        .await;
    let message = expect_error(res, StatusCode::BAD_GATEWAY, "upstream-failed").await;
    assert!(message.contains("not a public address"), "{message}");
    // An internal CAS: not asked; the file comes through resolve, checked by its sha256.
    *lie.lock().unwrap() = Lie::CasUrl(format!("http://127.0.0.1:{trap_port}/cas"));
    let reconstructions_before =
        route_requests(&upstream, "GET", "/cas/v1/reconstructions/{file_id}").await;
    let res = mirror
        .get("/alice/x/resolve/main/model.safetensors", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == weights.as_slice());
    assert_eq!(
        route_requests(&upstream, "GET", "/cas/v1/reconstructions/{file_id}").await,
        reconstructions_before
    );
    assert_eq!(*trapped.lock().unwrap(), 0, "the mirror reached the trap");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_upstreams_cas_is_held_to_what_it_names(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    for name in ["long", "plain"] {
        upstream.create_repo(&alice, "alice", name, "public").await;
    }
    let (long, plain) = (noise(11 << 20, 41), noise(11 << 20, 42));
    upload_with_xet(&upstream, &alice, "alice/long", &[("w.bin", &long)]).await;
    upload_with_xet(&upstream, &alice, "alice/plain", &[("w.bin", &plain)]).await;
    // Ranges of `long` come with more bytes than they name; `plain` has no reconstruction.
    let plain_hash = xet_hash(&upstream, "/alice/plain/resolve/main/w.bin").await;
    let no_plan = format!("/cas/v1/reconstructions/{plain_hash}");
    let tamper: Tamper = Arc::new(move |_, target, answer| {
        if target.starts_with("/cas/v1/fetch/") && answer.status < 300 {
            answer.body.extend_from_slice(&noise(4096, 43));
        }
        if target.starts_with(&no_plan) {
            *answer = Answer {
                status: 503,
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"error": "unavailable"}"#.to_vec(),
            };
        }
    });
    let proxy = rewriting_proxy(&upstream.base, tamper).await;
    let mirror = mirror_through(&pool, proxy, Vec::new()).await;

    let message =
        refused_leaving_no_repository(&mirror, &pool, "/alice/long/resolve/main/w.bin").await;
    assert!(message.contains("more than the range"), "{message}");
    let left = objects_once_settled(&mirror, &["/xorbs/", "/staging/", "/blobs/"], 0).await;
    assert!(left.is_empty(), "{left:?}");

    // No reconstruction: the file comes through resolve, is chunked here, and gets the Xet
    // hash the upstream advertises.
    let res = mirror.get("/alice/plain/resolve/main/w.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == plain.as_slice());
    assert_eq!(upstream_resolve_gets(&upstream).await, 1, "only `plain`");
    assert_eq!(
        xet_hash(&mirror, "/alice/plain/resolve/main/w.bin").await,
        plain_hash
    );
}

/// The fetch requests a CAS was sent: for parts of a signed range, and for whole ones.
#[derive(Clone, Default)]
struct Fetches {
    parts: Arc<AtomicUsize>,
    whole: Arc<AtomicUsize>,
}

/// A CAS whose fetch URLs are signed for their exact range, as a CDN's signed-URL policy can
/// be: a request for part of a range is refused. With `expire`, the `n`-th request for a whole
/// range is refused too, as a URL that expired meanwhile.
fn exact_range_cas(fetches: Fetches, expire: Option<usize>) -> Tamper {
    Arc::new(move |_, target, answer| {
        let Some((_, query)) = target
            .strip_prefix("/cas/v1/fetch/")
            .and_then(|t| t.split_once('?'))
        else {
            return;
        };
        let signed = query.split('&').find_map(|p| p.strip_prefix("bytes="));
        let served = answer
            .headers
            .iter()
            .find(|(name, _)| name == "content-range")
            .map(|(_, v)| v.trim_start_matches("bytes ").trim_end_matches("/*"));
        let part = served.is_none() || served != signed;
        let counter = if part { &fetches.parts } else { &fetches.whole };
        let nth = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if part || Some(nth) == expire {
            *answer = Answer {
                status: 403,
                headers: vec![("content-type".into(), "application/xml".into())],
                body: b"<Error><Code>AccessDenied</Code></Error>".to_vec(),
            };
        }
    })
}

/// An upstream whose fetch URLs are signed for their exact range: it refuses the mirror's
/// first piece of a range, and the mirror then reads each range whole, one at a time, and
/// still gets the file.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_upstream_that_signs_exact_ranges_is_read_a_whole_range_at_a_time(pool: PgPool) {
    // Over one piece (4 MiB): its range is asked in parts.
    let (_, whole) = read_from_exact_range_cas(&pool, 20 << 20, None).await;
    assert!(whole >= 1, "no whole range was read");
}

/// The same upstream, whose URL for the second range has expired by the time the mirror asks
/// for it (read a range at a time, a large model on a slow link outlasts them): the mirror gets
/// the ranges signed again and reads on.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_exact_range_upstream_whose_urls_expire_has_them_signed_again(pool: PgPool) {
    // Over one xorb (64 MiB at most): two ranges.
    let (upstream, whole) = read_from_exact_range_cas(&pool, 72 << 20, Some(2)).await;
    assert_eq!(
        whole, 3,
        "the first range, then the second, refused and asked again"
    );
    let reconstructions =
        route_requests(&upstream, "GET", "/cas/v1/reconstructions/{file_id}").await;
    assert_eq!(reconstructions, 2, "the first, and the one signed again");
}

/// Reads a file of `size` bytes through a mirror of an [`exact_range_cas`] (which refuses the
/// `expire`-th whole range): the bytes must arrive whole, after parts were refused. Returns the
/// upstream and how many whole ranges it was asked for.
async fn read_from_exact_range_cas(
    pool: &PgPool,
    size: usize,
    expire: Option<usize>,
) -> (TestApp, usize) {
    let weights = noise(size, 44);
    let (upstream, _) = upstream_with_xet_file(pool, &weights).await;
    let fetches = Fetches::default();
    let proxy = rewriting_proxy(&upstream.base, exact_range_cas(fetches.clone(), expire)).await;
    let mirror = mirror_through(pool, proxy, Vec::new()).await;
    let res = mirror.get("/alice/m/resolve/main/w.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == weights.as_slice());
    let (parts, whole) = fetches.counts();
    assert!(parts >= 1, "no part of a range was asked for");
    (upstream, whole)
}

impl Fetches {
    /// Requests for parts of a range, and for whole ranges.
    fn counts(&self) -> (usize, usize) {
        (
            self.parts.load(Ordering::Relaxed),
            self.whole.load(Ordering::Relaxed),
        )
    }
}

/// The `X-Xet-Hash` a hub gives for the file at `path`.
async fn xet_hash(app: &TestApp, path: &str) -> String {
    let head = app
        .request(reqwest::Method::HEAD, path, None)
        .send()
        .await
        .unwrap();
    head.headers()["x-xet-hash"].to_str().unwrap().to_string()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_upstream_listing_is_read_up_to_a_limit(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    for name in ["huge", "junk", "badsha", "traversal"] {
        upstream.create_repo(&alice, "alice", name, "public").await;
        upstream
            .commit_files(&alice, &format!("alice/{name}"), &[("w.bin", b"weights")])
            .await;
    }
    // A listing longer than any repository's (the hub would hold it all in memory), one that
    // is not JSON, and two that lie about what the mirror records.
    let tamper: Tamper = Arc::new(|_, target, answer| {
        if target.starts_with("/api/models/alice/huge/revision/") {
            let mut body = br#"{"sha": ""#.to_vec();
            body.resize(65 << 20, b'a');
            body.extend_from_slice(br#""}"#);
            answer.body = body;
        }
        if target.starts_with("/api/models/alice/junk/revision/") {
            answer.body = b"<html>a captive portal</html>".to_vec();
        }
        // A commit id too long to record, and a file the client would write outside its
        // download folder.
        let mut listing = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            change(&mut json);
            answer.body = serde_json::to_vec(&json).unwrap();
        };
        if target.starts_with("/api/models/alice/badsha/revision/") {
            listing(&|json| json["sha"] = "a".repeat(4000).into());
        }
        if target.starts_with("/api/models/alice/traversal/revision/") {
            listing(&|json| json["siblings"][0]["rfilename"] = "../../.bashrc".into());
        }
    });
    let proxy = rewriting_proxy(&upstream.base, tamper).await;
    let mirror = mirror_through(&pool, proxy, Vec::new()).await;
    for (name, why) in [
        ("huge", "is over 67108864 bytes"),
        ("junk", "expected value"),
        ("badsha", "is not 40 or 64 hexadecimal characters"),
        ("traversal", "is not a valid file path"),
    ] {
        let res = mirror
            .get(&format!("/api/models/alice/{name}/revision/main"), None)
            .await;
        let message = expect_error(res, StatusCode::BAD_GATEWAY, "upstream-failed").await;
        assert!(
            message.contains("is unusable") && message.contains(why),
            "{name}: {message}"
        );
    }
    let repos: i64 = sqlx::query_scalar("SELECT count(*) FROM repositories")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(repos, 0, "nothing was mirrored");
}

/// A name this hub could not hold is never asked of the upstream: decoded from the request's
/// path, a `?`, `#` or `/` in it would rewrite the URL the mirror builds, and the mirror would
/// ask its upstream, with the organisation's token, for something nobody named.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn names_that_are_not_names_never_reach_the_upstream(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    upstream
        .commit_files(&alice, "alice/m", &[("f.txt", b"mirrored")])
        .await;
    let asked = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = asked.clone();
    let tamper: Tamper = Arc::new(move |method, path, _| {
        seen.lock().unwrap().push(format!("{method} {path}"));
    });
    let proxy = rewriting_proxy(&upstream.base, tamper).await;
    let mirror = mirror_through(&pool, proxy, Vec::new()).await;
    for path in [
        "/alice/m%3Fexpand=1/resolve/main/f.txt",
        "/alice/m%23x/resolve/main/f.txt",
        "/alice/m%2F..%2Fm/resolve/main/f.txt",
        "/alice/m%2Fresolve%2Fmain/resolve/main/f.txt",
        "/%2E%2E/m/resolve/main/f.txt",
        "/api/models/alice/m%3Fblobs=1/revision/main",
        "/api/models/alice/m%2Fx/tree/main",
    ] {
        let res = mirror.get(path, None).await;
        assert!(res.status().is_client_error(), "{path}: {}", res.status());
        assert!(
            asked.lock().unwrap().is_empty(),
            "{path} reached the upstream as {:?}",
            asked.lock().unwrap()
        );
    }
    // A real name is fetched as usual.
    let res = mirror.get("/alice/m/resolve/main/f.txt", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"mirrored");
    assert!(!asked.lock().unwrap().is_empty());
}

/// An upstream that fails for a moment: its revision listing answers 503 once, and four of the
/// pieces of a file's range fail once each (a rate limit with its reset, a 502, a connection
/// that ends early, a 503). A fetch of gigabytes should not be lost to one such answer: each
/// request is asked again, after the wait the upstream named, and the file arrives whole.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_upstream_that_fails_for_a_moment_is_asked_again(pool: PgPool) {
    // Five pieces of 4 MiB, read several at a time.
    let weights = noise(20 << 20, 45);
    let (upstream, _) = upstream_with_xet_file(&pool, &weights).await;
    let (listings, fetches) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (listed, fetched) = (listings.clone(), fetches.clone());
    let tamper: Tamper = Arc::new(move |_, target, answer| {
        let not_now = |status, headers: &[(&str, &str)]| Answer {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        };
        if target.starts_with("/api/models/alice/m/revision/")
            && listed.fetch_add(1, Ordering::Relaxed) == 0
        {
            *answer = not_now(503, &[("retry-after", "1")]);
        }
        if target.starts_with("/cas/v1/fetch/") {
            match fetched.fetch_add(1, Ordering::Relaxed) {
                0 => *answer = not_now(429, &[("ratelimit", "\"cas\";r=0;t=1")]),
                1 => *answer = not_now(502, &[]),
                2 => answer.body.truncate(answer.body.len() / 2),
                3 => *answer = not_now(503, &[]),
                _ => {}
            }
        }
    });
    let proxy = rewriting_proxy(&upstream.base, tamper).await;
    let mirror = mirror_through(&pool, proxy, Vec::new()).await;
    let res = mirror.get("/alice/m/resolve/main/w.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == weights.as_slice());
    assert_eq!(
        listings.load(Ordering::Relaxed),
        2,
        "the 503 was asked again once"
    );
    // Five pieces, four of them asked twice.
    assert!(
        fetches.load(Ordering::Relaxed) >= 9,
        "a failed piece was not asked again"
    );
}

/// An upstream that rate-limits the organisation's identity for longer than a client waits:
/// the mirror's clients are told so, with the upstream's reset as their `Retry-After`, and the
/// mirror sends the upstream nothing more until then (its clients' retries would spend the
/// identity's next window). Nothing is kept.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_upstream_rate_limit_is_passed_on_and_respected(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let tamper: Tamper = Arc::new(move |_, _, answer| {
        counted.fetch_add(1, Ordering::Relaxed);
        *answer = Answer {
            status: 429,
            headers: vec![
                ("ratelimit".into(), "\"api\";r=0;t=120".into()),
                (
                    "ratelimit-policy".into(),
                    "\"fixed window\";\"api\";q=500;w=300".into(),
                ),
            ],
            body: b"{\"error\":\"rate limited\"}".to_vec(),
        };
    });
    let proxy = rewriting_proxy(&upstream.base, tamper).await;
    let mirror = mirror_through(&pool, proxy, Vec::new()).await;
    for (attempt, path) in ["/api/models/alice/m", "/alice/m/resolve/main/README.md"]
        .iter()
        .enumerate()
    {
        let started = std::time::Instant::now();
        let res = mirror.get(path, None).await;
        let retry_after: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let message = expect_error(res, StatusCode::SERVICE_UNAVAILABLE, "upstream-busy").await;
        assert!(message.contains("rate-limiting this mirror"), "{message}");
        assert!(message.contains("answered 429"), "{message}");
        assert!(
            (115..=120).contains(&retry_after),
            "Retry-After {retry_after} on try {attempt}"
        );
        assert!(
            started.elapsed().as_secs() < 5,
            "the mirror sat out the wait"
        );
    }
    assert_eq!(
        asked.load(Ordering::Relaxed),
        1,
        "asked again within the wait"
    );
    let repos: i64 = sqlx::query_scalar("SELECT count(*) FROM repositories WHERE name = 'm'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(repos, 0, "a repository appeared on the mirror");
}
