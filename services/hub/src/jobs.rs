//! Background workers over the PostgreSQL queue in [`crate::db::jobs`].
//!
//! A worker claims one job at a time, runs its handler in a spawned task (a panic boundary) while
//! a heartbeat renews the lease, then records success, a retry with exponential backoff, or a
//! permanent failure kept for inspection. Idle workers sleep until `NOTIFY` or the poll interval.
//! Handlers must be idempotent: a job whose worker died is run again.

use std::time::Duration;

use anyhow::Context;
use kaiyuan_storage::{BlobStore, Sha256Digest};
use rand::Rng;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::config::Workers;
use crate::db::{self, jobs::Job};
use crate::domain::log_entry::LogEntry;
use crate::domain::task::{CommitRef, ScanBlob, Task, WebhookDelivery};

/// The `commit-created` kind (see `domain::task::Task`).
pub const COMMIT_CREATED: &str = Task::COMMIT_CREATED;

/// How a job failed.
#[derive(Debug)]
pub enum JobError {
    /// Worth another attempt (a store or database hiccup).
    Retry(anyhow::Error),
    /// Will never succeed (bad payload, unknown kind): fail now and keep it for inspection.
    Permanent(anyhow::Error),
    /// Not yet possible (it waits for another job): run again later without spending an attempt.
    Defer(Duration, String),
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        JobError::Retry(e)
    }
}

/// What handlers get to work with.
#[derive(Clone)]
pub struct JobContext {
    pub db: PgPool,
    pub store: BlobStore,
    pub settings: std::sync::Arc<crate::config::Settings>,
}

async fn dispatch(ctx: JobContext, job: Job, worker: String) -> Result<(), JobError> {
    let task = Task::from_job(&job.kind, job.payload)
        .map_err(|e| JobError::Permanent(anyhow::anyhow!(e)))?;
    match task {
        Task::CommitCreated(commit) => commit_created(ctx, commit).await,
        Task::ScanBlob(scan) => scan_blob(ctx, scan).await,
        Task::LicenseEvaluate(commit) => license_evaluate(ctx, commit).await,
        Task::SignatureVerify(commit) => signature_verify(ctx, commit).await,
        Task::VerifyCommit(verify) => {
            crate::verification::verify_commit(ctx, verify, &worker).await
        }
        Task::WebhookDeliver(delivery) => {
            webhook_deliver(ctx, delivery, job.attempts, job.max_attempts).await
        }
    }
}

/// `commit-created` `{repository_id, commit_id}`: checks that every blob of the new commit is in
/// the store with its recorded size. Later capabilities (scans, licence evaluation, signature and
/// inference checks) fan out from here.
async fn commit_created(ctx: JobContext, payload: CommitRef) -> Result<(), JobError> {
    let mut conn = ctx.db.acquire().await.context("database")?;
    let files = db::commits::files(&mut conn, payload.repository_id, &payload.commit_id)
        .await
        .context("loading commit files")?;
    drop(conn);
    for file in files {
        let digest = file.sha256;
        match ctx.store.blob_size(&digest).await.context("object store")? {
            Some(size) if size == file.size as u64 => {}
            Some(size) => {
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "{}: blob {digest} has {size} bytes in the store, {} recorded",
                    file.path,
                    file.size
                )));
            }
            None => {
                return Err(JobError::Retry(anyhow::anyhow!(
                    "{}: blob {digest} is missing from the store",
                    file.path
                )));
            }
        }
    }
    Ok(())
}

/// `license-evaluate` `{repository_id, commit_id}`: evaluates the commit against its
/// namespace's policy for commercial use and stores the report (with the catalog and policy
/// versions, so that a change of either re-queues it).
async fn license_evaluate(ctx: JobContext, payload: CommitRef) -> Result<(), JobError> {
    let Some((repo, mut conn)) = repository_of(&ctx, payload.repository_id).await? else {
        return Ok(()); // deleted since: nothing to evaluate
    };
    let api = |e: crate::domain::Error| JobError::Retry(anyhow::Error::new(e));
    let (policy, version) = crate::licensing::namespace_policy(&mut conn, repo.namespace_id)
        .await
        .map_err(api)?;
    let context = kaiyuan_license::UseContext::default();
    let report = crate::licensing::evaluate_commit(
        &mut conn,
        &ctx.store,
        &repo,
        &payload.commit_id,
        policy.as_ref(),
        &context,
    )
    .await
    .map_err(api)?;
    let json = serde_json::to_value(&report).context("report")?;
    let previous = db::licenses::evaluation(&mut conn, repo.id, &payload.commit_id)
        .await
        .context("previous evaluation")?;
    let changed = previous.as_ref().is_none_or(|p| {
        p.decision.as_str() != report.decision.as_str() || p.effective != report.effective
    });
    let mut tx = ctx.db.begin().await.context("database")?;
    if changed {
        let entry = LogEntry::LicenseDecision {
            commit: payload.commit_id.clone(),
            decision: report.decision.as_str().to_string(),
            effective: report.effective.clone(),
            catalog_version: report.catalog_version.clone(),
            policy_version: version.into(),
        };
        crate::tlog::append_about(&mut tx, &repo, &entry)
            .await
            .context("logging the decision")?;
    }
    db::licenses::store_evaluation(
        &mut tx,
        repo.id,
        &payload.commit_id,
        &report.catalog_version,
        version,
        report.decision.as_str(),
        report.effective.as_deref(),
        &json,
    )
    .await
    .context("storing the evaluation")?;
    tx.commit().await.context("committing the evaluation")?;
    Ok(())
}

/// The repository a job is about and a connection, or `None` when the repository is gone (its
/// jobs have nothing left to do).
pub(crate) async fn repository_of(
    ctx: &JobContext,
    id: i64,
) -> Result<Option<(db::repos::Repo, sqlx::pool::PoolConnection<sqlx::Postgres>)>, JobError> {
    let mut conn = ctx.db.acquire().await.context("database")?;
    let repo = db::repos::find_by_id(&mut conn, id)
        .await
        .context("repository")?;
    Ok(repo.map(|repo| (repo, conn)))
}

/// `signature-verify` `{repository_id, commit_id}`: verifies the commit's model-signing
/// bundle against the namespace's keys and anchors and stores the result.
async fn signature_verify(ctx: JobContext, payload: CommitRef) -> Result<(), JobError> {
    let Some((repo, mut conn)) = repository_of(&ctx, payload.repository_id).await? else {
        return Ok(());
    };
    let settings = ctx.settings.clone();
    let result = crate::signatures::verify_commit(
        &mut conn,
        &ctx.store,
        &settings,
        &repo,
        &payload.commit_id,
    )
    .await
    .map_err(|e| JobError::Retry(anyhow::Error::new(e)))?;
    let json = serde_json::to_value(&result).context("result")?;
    let previous = db::provenance::verification(&mut conn, repo.id, &payload.commit_id)
        .await
        .context("previous verification")?;
    let mut tx = ctx.db.begin().await.context("database")?;
    if previous.as_ref().is_none_or(|p| {
        p.status.as_str() != result.status.as_str() || p.result["signer"] != json["signer"]
    }) {
        let entry = LogEntry::Signature {
            commit: payload.commit_id.clone(),
            status: result.status.as_str().to_string(),
            signer: result.signer.as_ref().map(|s| s.fingerprint.clone()),
            root_digest: result.root_digest.clone(),
        };
        crate::tlog::append_about(&mut tx, &repo, &entry)
            .await
            .context("logging the verification")?;
    }
    db::provenance::store_verification(
        &mut tx,
        repo.id,
        &payload.commit_id,
        result.status.as_str(),
        &json,
    )
    .await
    .context("storing the verification")?;
    tx.commit().await.context("committing the verification")?;
    Ok(())
}

/// `webhook-deliver` `{delivery_id}`: POSTs the event to the webhook with an HMAC-SHA256
/// signature of the body (`X-Kaiyuan-Signature-256: sha256=<hex>`); a failure is retried with
/// the queue's backoff, and every attempt is recorded in the delivery log.
async fn webhook_deliver(
    ctx: JobContext,
    payload: WebhookDelivery,
    attempts: i32,
    max_attempts: i32,
) -> Result<(), JobError> {
    let mut conn = ctx.db.acquire().await.context("database")?;
    let Some((delivery, hook)) = db::notifications::delivery(&mut conn, payload.delivery_id)
        .await
        .context("delivery")?
    else {
        return Ok(()); // the webhook was removed
    };
    let body = serde_json::to_vec(&delivery.event).context("event")?;
    let signature = format!(
        "sha256={}",
        crate::hmac::hmac_sha256_hex(hook.secret.as_bytes(), &body)
    );
    kaiyuan_storage::install_crypto_provider();
    // Only to public addresses or configured hosts: the URL was checked when it was added, but
    // the configuration may have changed since, and a name may resolve elsewhere now.
    let destinations = std::sync::Arc::new(crate::outbound::Destinations::new(
        std::iter::empty(),
        &ctx.settings.webhooks.internal_hosts,
    ));
    let refused = url::Url::parse(&hook.url)
        .map_err(|e| e.to_string())
        .and_then(|url| destinations.check(&url))
        .err();
    if let Some(why) = refused {
        let why = format!("refused: {why}");
        db::notifications::record_attempt(&mut conn, delivery.id, None, Some(&why), false, true)
            .await
            .context("delivery log")?;
        return Err(JobError::Permanent(anyhow::anyhow!("webhook {why}")));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(crate::outbound::GuardedResolver(destinations))
        .build()
        .context("http client")?;
    let result = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("user-agent", "kaiyuan-webhooks")
        .header(
            "x-kaiyuan-event",
            delivery.event["kind"].as_str().unwrap_or("event"),
        )
        .header("x-kaiyuan-delivery", delivery.id.to_string())
        .header("x-kaiyuan-signature-256", signature)
        .body(body)
        .send()
        .await;
    let last = attempts + 1 >= max_attempts;
    match result {
        Ok(res) if res.status().is_success() => {
            db::notifications::record_attempt(
                &mut conn,
                delivery.id,
                Some(res.status().as_u16() as i32),
                None,
                true,
                false,
            )
            .await
            .context("delivery log")?;
            Ok(())
        }
        Ok(res) => {
            let status = res.status().as_u16();
            db::notifications::record_attempt(
                &mut conn,
                delivery.id,
                Some(status as i32),
                Some(&format!("HTTP {status}")),
                false,
                last,
            )
            .await
            .context("delivery log")?;
            Err(JobError::Retry(anyhow::anyhow!(
                "webhook answered HTTP {status}"
            )))
        }
        Err(e) => {
            let refused = crate::outbound::misdirected(&e);
            let message = match refused {
                Some(why) => format!("refused: {why}"),
                None => crate::outbound::describe(&e),
            };
            db::notifications::record_attempt(
                &mut conn,
                delivery.id,
                None,
                Some(&message),
                false,
                last || refused.is_some(),
            )
            .await
            .context("delivery log")?;
            match refused {
                Some(_) => Err(JobError::Permanent(anyhow::anyhow!("webhook {message}"))),
                None => Err(JobError::Retry(anyhow::anyhow!(
                    "webhook unreachable: {message}"
                ))),
            }
        }
    }
}

/// Scans a blob now, as its `scan-blob` job would (the mirror scans before a commit exists).
pub async fn scan_now(ctx: &JobContext, sha256: String, path: String) -> Result<(), JobError> {
    scan_blob(ctx.clone(), ScanBlob { sha256, path }).await
}

/// `scan-blob` `{sha256, path}`: scans the stored bytes (the path is only a format hint) and
/// stores the result for the current scanner version, which becomes the blob's verdict.
async fn scan_blob(ctx: JobContext, payload: ScanBlob) -> Result<(), JobError> {
    let digest: Sha256Digest = payload
        .sha256
        .parse()
        .map_err(|e| JobError::Permanent(anyhow::anyhow!("{e}")))?;
    let Some(size) = ctx.store.blob_size(&digest).await.context("object store")? else {
        // Collected since the job was queued: nothing left to scan.
        return Ok(());
    };
    let rules = {
        let mut conn = ctx.db.acquire().await.context("database")?;
        db::rules::latest(&mut conn).await.context("rule set")?
    };
    let version = db::rules::effective_version(rules.as_ref());
    let limits = kaiyuan_scanner::Limits {
        extra_deny: rules
            .as_ref()
            .map(|r| r.pickle_deny.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    let store = ctx.store.clone();
    let path = payload.path.clone();
    let yara = rules
        .as_ref()
        .filter(|r| !r.yara.trim().is_empty())
        .map(|r| (r.version, r.yara.clone()));
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<kaiyuan_scanner::Report> {
        let mut reader = store.open_blocking(&digest, size)?;
        let mut report = kaiyuan_scanner::scan_with(&mut reader, size, &path, &limits);
        if let Some((version, source)) = yara {
            use std::io::Seek;
            reader.seek(std::io::SeekFrom::Start(0))?;
            match crate::yara::matches(version, &source, &mut reader) {
                Ok(hits) => {
                    for rule in hits {
                        report.findings.push(kaiyuan_scanner::Finding {
                            rule: "yara-community-rule",
                            severity: kaiyuan_scanner::Verdict::Malicious,
                            location: "file".into(),
                            message: format!("matches community YARA rule `{rule}` (rule set {version})"),
                            evidence: Some(rule),
                        });
                        report.verdict = report.verdict.max(kaiyuan_scanner::Verdict::Malicious);
                    }
                }
                // A rule that times out slows this scan; it never fails it.
                Err(e) => tracing::warn!(blob.sha256 = %digest, error = %e, "community YARA rules did not finish"),
            }
        }
        Ok(report)
    })
    .await
    .map_err(|e| JobError::Retry(anyhow::anyhow!("scanner task failed: {e}")))?
    .context("reading the blob")?;
    let findings = serde_json::to_value(&report.findings).context("serialising findings")?;
    let mut tx = ctx.db.begin().await.context("database")?;
    db::scans::record(
        &mut tx,
        digest.as_bytes(),
        &version,
        report.verdict.as_str(),
        &report.format,
        &findings,
    )
    .await
    .context("storing the scan")?;
    if report.verdict == kaiyuan_scanner::Verdict::Malicious {
        let entry = LogEntry::Quarantine {
            sha256: digest.to_hex(),
            verdict: Some(report.verdict.as_str().to_string()),
            scanner_version: Some(version.clone()),
            report: None,
            reason: None,
        };
        crate::tlog::append(&mut tx, &entry)
            .await
            .context("logging the quarantine")?;
    }
    if let Some(rules) = &rules
        && report
            .findings
            .iter()
            .any(|f| f.rule == "pickle-community-rule" || f.rule == "yara-community-rule")
    {
        crate::notify::open_rule_reports(&mut tx, digest.as_bytes(), rules, &report)
            .await
            .context("opening reports")?;
    }
    tx.commit().await.context("committing the scan")?;
    tracing::info!(blob.sha256 = %digest, verdict = report.verdict.as_str(), format = %report.format, findings = report.findings.len(), "scanned blob");
    Ok(())
}

/// Delay before attempt `attempts + 1`: 2 s doubling per attempt, capped at an hour, jittered so
/// that failed jobs do not retry in lock-step.
fn backoff_secs(attempts: i32) -> f64 {
    let base = 2f64.powi(attempts.clamp(1, 20)).min(3600.0);
    base * rand::rng().random_range(0.75..1.25)
}

/// A worker identity, unique per process and task, recorded in `jobs.locked_by`.
pub fn worker_id(index: usize) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!("{host}:{}:{index}", std::process::id())
}

/// Claims and runs one job; returns whether there was one.
pub async fn run_one(ctx: &JobContext, worker: &str, lease_secs: u64) -> anyhow::Result<bool> {
    let mut conn = ctx.db.acquire().await?;
    let gpu = ctx.settings.verification.ep == kaiyuan_verifier::Ep::Cuda;
    let Some(job) = db::jobs::claim(&mut conn, worker, lease_secs as i64, gpu).await? else {
        return Ok(false);
    };
    drop(conn);
    let span = tracing::info_span!("job", job.id = job.id, job.kind = %job.kind, request.id = job.request_id.as_deref().unwrap_or(""));
    let _entered = span.enter();
    let (id, attempts) = (job.id, job.attempts);
    let mut task = tokio::spawn(dispatch(ctx.clone(), job, worker.to_string()));
    let mut heartbeat = tokio::time::interval(Duration::from_secs((lease_secs / 3).max(1)));
    heartbeat.tick().await;
    let outcome = loop {
        tokio::select! {
            joined = &mut task => break joined,
            _ = heartbeat.tick() => {
                let mut conn = ctx.db.acquire().await?;
                if !db::jobs::heartbeat(&mut conn, id, worker, lease_secs as i64).await? {
                    tracing::warn!("lost the lease; another worker will run this job");
                    task.abort();
                    return Ok(true);
                }
            }
        }
    };
    let mut conn = ctx.db.acquire().await?;
    match outcome {
        Ok(Ok(())) => {
            db::jobs::succeed(&mut conn, id, worker).await?;
            tracing::info!("job succeeded");
        }
        Ok(Err(JobError::Retry(e))) => {
            tracing::warn!(error = format!("{e:#}"), attempts, "job failed; will retry");
            db::jobs::fail(
                &mut conn,
                id,
                worker,
                &format!("{e:#}"),
                false,
                backoff_secs(attempts),
            )
            .await?;
        }
        Ok(Err(JobError::Defer(after, reason))) => {
            tracing::info!(reason = %reason, "job deferred");
            db::jobs::defer(&mut conn, id, worker, &reason, after.as_secs_f64()).await?;
        }
        Ok(Err(JobError::Permanent(e))) => {
            tracing::error!(error = format!("{e:#}"), "job failed permanently");
            db::jobs::fail(&mut conn, id, worker, &format!("{e:#}"), true, 0.0).await?;
        }
        Err(join_error) => {
            let message = format!("job handler panicked: {join_error}");
            tracing::error!(error = %message, "job failed");
            db::jobs::fail(
                &mut conn,
                id,
                worker,
                &message,
                false,
                backoff_secs(attempts),
            )
            .await?;
        }
    }
    Ok(true)
}

/// Runs queued jobs until none is runnable now (tests and one-shot maintenance).
pub async fn run_until_idle(ctx: &JobContext, lease_secs: u64) -> anyhow::Result<usize> {
    let worker = worker_id(0);
    let mut ran = 0;
    while run_one(ctx, &worker, lease_secs).await? {
        ran += 1;
    }
    Ok(ran)
}

/// A long-running worker: runs jobs until `shutdown` turns true.
pub async fn run_worker(
    ctx: JobContext,
    settings: Workers,
    index: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let worker = worker_id(index);
    let mut listener = match PgListener::connect_with(&ctx.db).await {
        Ok(mut listener) => match listener.listen(db::jobs::CHANNEL).await {
            Ok(()) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; falling back to polling");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "no listener connection; falling back to polling");
            None
        }
    };
    tracing::info!(worker = %worker, "job worker started");
    while !*shutdown.borrow() {
        match run_one(&ctx, &worker, settings.lease_secs).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "job queue unavailable"),
        }
        let poll = Duration::from_secs(settings.poll_secs.max(1));
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(poll) => {}
            notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = notified {
                    tracing::warn!(error = %e, "job notifications interrupted");
                }
            }
        }
    }
    tracing::info!(worker = %worker, "job worker stopped");
}
