//! The licence engine inside the hub: the facts of a repository revision (card, licence and
//! notice files, GGUF headers) and a resolver that finds base models on this hub.

use std::collections::HashMap;

use futures_util::StreamExt;
use kaiyuan_license::card;
use kaiyuan_license::detect::MAX_TEXT;
use kaiyuan_license::folder::{is_license_path, is_notice_file};
use kaiyuan_license::lineage::{Chain, Resolver, UpstreamModel};
use kaiyuan_license::{ModelFacts, Policy, Report, TextFile, UseContext, evaluate};
use kaiyuan_storage::{BlobStore, Sha256Digest};
use sqlx::PgConnection;

use crate::db;
use crate::db::repos::Repo;
use crate::domain::Error;

/// GGUF headers read per evaluation.
const MAX_GGUF_HEADERS: usize = 3;

/// Most hub repositories one evaluation follows through base-model links.
const MAX_LINKED: usize = 64;

/// A small stored file as text (cards, licences): at most `MAX_TEXT` bytes, lossy UTF-8.
pub(crate) async fn read_text(
    store: &BlobStore,
    sha: &Sha256Digest,
    size: i64,
) -> Result<String, Error> {
    let len = (size as u64).min(MAX_TEXT as u64);
    let mut stream = store.read(sha, 0..len).await?;
    let mut buf = Vec::with_capacity(len as usize);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The licence-relevant facts of one commit. Licence files count at the top level only.
pub async fn facts_at(
    conn: &mut PgConnection,
    store: &BlobStore,
    repo: &Repo,
    commit_id: &str,
) -> Result<ModelFacts, Error> {
    // Only the candidate rows, through their partial indexes (a commit of 100k files costs
    // what one of ten does); the rules below decide. A GGUF file that is also a licence or
    // notice candidate is read as that, so a few more GGUF rows are fetched than are read.
    use db::commits::FactFiles;
    let mut files = db::commits::fact_files(conn, repo.id, commit_id, FactFiles::Licences).await?;
    let gguf_rows = MAX_GGUF_HEADERS + files.len();
    files.extend(
        db::commits::fact_files(conn, repo.id, commit_id, FactFiles::Gguf(gguf_rows as i64))
            .await?,
    );
    facts_of(store, repo.full_name(), files).await
}

/// Whether a file can carry licence facts read as text: the card, a licence or a notice.
pub fn is_fact_text(path: &str) -> bool {
    let top = !path.contains('/');
    (top && path.eq_ignore_ascii_case("README.md"))
        || is_license_path(path)
        || (top && is_notice_file(path))
}

/// Whether a file is a GGUF model, whose header may declare a licence.
pub fn is_gguf(path: &str) -> bool {
    path.to_lowercase().ends_with(".gguf")
}

/// The licence-relevant facts of model `name` from its candidate files (any others are
/// skipped): those of a commit here, or those a mirror fetched first.
pub async fn facts_of(
    store: &BlobStore,
    name: String,
    mut files: Vec<db::commits::FileRow>,
) -> Result<ModelFacts, Error> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    let mut gguf_read = 0;
    let mut facts = ModelFacts {
        name: Some(name),
        ..Default::default()
    };
    for f in files {
        let top = !f.path.contains('/');
        if top && f.path.eq_ignore_ascii_case("README.md") {
            let text = read_text(store, &f.sha256, f.size).await?;
            // A card whose YAML does not parse declares nothing; the report says so.
            facts.card = card::parse(&text).unwrap_or_default();
            facts.card_body = card::body(&text).to_string();
        } else if is_license_path(&f.path) {
            // Top-level licences, `LICENSES/`, and a component's licence one folder down
            // (the engine tells them apart by path).
            facts.license_files.push(TextFile {
                path: f.path.clone(),
                text: read_text(store, &f.sha256, f.size).await?,
            });
        } else if top && is_notice_file(&f.path) {
            facts.notice_files.push(TextFile {
                path: f.path.clone(),
                text: read_text(store, &f.sha256, f.size).await?,
            });
        } else if is_gguf(&f.path) && gguf_read < MAX_GGUF_HEADERS {
            // Quantization repositories hold dozens of GGUF files with the same metadata; a
            // header (with its vocabulary) is megabytes, so a few are enough.
            gguf_read += 1;
            let store = store.clone();
            let d = f.sha256;
            let size = f.size as u64;
            let keys = tokio::task::spawn_blocking(move || {
                let reader = store.open_blocking(&d, size).ok()?;
                kaiyuan_license::gguf::licence_keys(std::io::BufReader::new(reader))
                    .ok()
                    .flatten()
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
            if let Some(keys) = keys {
                let get = |k: &str| {
                    keys.iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.clone())
                };
                if let Some(l) = get("general.license") {
                    let value = match get("general.license.name") {
                        Some(n) if l.eq_ignore_ascii_case("other") => format!("other:{n}"),
                        _ => l,
                    };
                    facts.metadata_licenses.push((f.path.clone(), value));
                }
            }
        }
    }
    Ok(facts)
}

/// Base models, teachers and datasets found on this hub, loaded before the (synchronous)
/// engine runs. Only public repositories and those of the evaluated repository's own
/// namespace are used, so an evaluation never reveals a private repository's licence.
#[derive(Default)]
pub struct HubResolver {
    models: HashMap<String, UpstreamModel>,
}

impl Resolver for HubResolver {
    fn model(&self, id: &str) -> Option<UpstreamModel> {
        self.models.get(&id.to_lowercase()).cloned()
    }
    fn dataset(&self, id: &str) -> Option<(String, String)> {
        // Dataset repositories are not hosted yet; their licences come from the lineage file.
        let _ = id;
        None
    }
}

impl HubResolver {
    /// `namespace_id`: the evaluated model's namespace, whose private repositories it may
    /// follow (`None`: public ones only).
    pub async fn load(
        conn: &mut PgConnection,
        store: &BlobStore,
        namespace_id: Option<i64>,
        facts: &ModelFacts,
    ) -> Result<HubResolver, Error> {
        let mut resolver = HubResolver::default();
        let mut queue: Vec<String> = facts
            .card
            .base_models
            .iter()
            .chain(&facts.card.distilled_from)
            .chain(&facts.card.datasets)
            .cloned()
            .collect();
        let mut seen = 0;
        while let Some(id) = queue.pop() {
            if seen >= MAX_LINKED || resolver.models.contains_key(&id.to_lowercase()) {
                continue;
            }
            seen += 1;
            let Some((ns, name)) = id.split_once('/') else {
                continue;
            };
            let Some(upstream) = db::repos::find_live(conn, ns, name).await? else {
                continue;
            };
            if !upstream.is_public() && Some(upstream.namespace_id) != namespace_id {
                continue;
            }
            let Some(head) = db::commits::resolve(conn, upstream.id, "main").await? else {
                continue;
            };
            let stored = db::licenses::evaluation(conn, upstream.id, &head).await?;
            let up_facts = facts_at(conn, store, &upstream, &head).await?;
            // Its stored effective licence already includes its own lineage.
            let (license, bases) = match stored.and_then(|s| s.effective) {
                Some(effective) => (effective, vec![]),
                None => {
                    let c = &up_facts.card;
                    let license = match (&c.license, &c.license_name) {
                        (Some(l), Some(n)) if l.eq_ignore_ascii_case("other") => {
                            format!("other:{n}")
                        }
                        (Some(l), _) => l.clone(),
                        (None, _) => continue,
                    };
                    (license, c.base_models.clone())
                }
            };
            queue.extend(bases.iter().cloned());
            resolver.models.insert(
                id.to_lowercase(),
                UpstreamModel {
                    license,
                    source: "hub".into(),
                    base_models: bases,
                    relation: up_facts.card.base_model_relation.clone(),
                    multimodal: up_facts.card.multimodal(),
                },
            );
        }
        Ok(resolver)
    }
}

/// The namespace's policy, if it has one, with its version (0 without).
pub async fn namespace_policy(
    conn: &mut PgConnection,
    namespace_id: i64,
) -> Result<(Option<Policy>, i32), Error> {
    match db::licenses::policy(conn, namespace_id).await? {
        Some(row) => {
            let policy: Policy = serde_json::from_value(row.document)
                .map_err(|e| Error::Internal(format!("stored policy: {e}")))?;
            Ok((Some(policy), row.version))
        }
        None => Ok((None, 0)),
    }
}

/// Evaluates a commit of a repository.
pub async fn evaluate_commit(
    conn: &mut PgConnection,
    store: &BlobStore,
    repo: &Repo,
    commit_id: &str,
    policy: Option<&Policy>,
    context: &UseContext,
) -> Result<Report, Error> {
    evaluate_declared(conn, store, repo, commit_id, None, policy, context).await
}

/// As [`evaluate_commit`], with the declared licence given through the API instead of the
/// card's (a `license` value: HF tag, `other:<name>` or SPDX expression).
pub async fn evaluate_declared(
    conn: &mut PgConnection,
    store: &BlobStore,
    repo: &Repo,
    commit_id: &str,
    declared: Option<&str>,
    policy: Option<&Policy>,
    context: &UseContext,
) -> Result<Report, Error> {
    let mut facts = facts_at(conn, store, repo, commit_id).await?;
    if let Some(d) = declared {
        match d.split_once(':') {
            Some((head, name)) if head.eq_ignore_ascii_case("other") => {
                facts.card.license = Some("other".into());
                facts.card.license_name = Some(name.into());
            }
            _ => {
                facts.card.license = Some(d.into());
                facts.card.license_name = None;
            }
        }
    }
    evaluate_facts(
        conn,
        store,
        Some(repo.namespace_id),
        &facts,
        policy,
        context,
    )
    .await
}

/// Evaluates facts, with base models found on this hub (see [`HubResolver::load`]).
pub async fn evaluate_facts(
    conn: &mut PgConnection,
    store: &BlobStore,
    namespace_id: Option<i64>,
    facts: &ModelFacts,
    policy: Option<&Policy>,
    context: &UseContext,
) -> Result<Report, Error> {
    let hub = HubResolver::load(conn, store, namespace_id, facts).await?;
    let chain = Chain {
        file: None,
        inner: Some(&hub),
    };
    Ok(evaluate(facts, &chain, policy, context))
}

/// A licence a user must accept before downloading: (id, name, version).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequiredAcceptance {
    pub license: String,
    pub name: String,
    pub version: String,
}

/// Licences of a commit's effective licence that require acceptance (from the stored
/// evaluation, or evaluated now when the job has not run yet).
pub async fn required_acceptances(
    conn: &mut PgConnection,
    store: &BlobStore,
    repo: &Repo,
    commit: &str,
) -> Result<Vec<RequiredAcceptance>, Error> {
    let effective = match db::licenses::evaluation(conn, repo.id, commit).await? {
        Some(row) => row.effective,
        None => {
            evaluate_commit(conn, store, repo, commit, None, &UseContext::default())
                .await?
                .effective
        }
    };
    let Some(effective) = effective else {
        return Ok(vec![]);
    };
    let Ok(expr) = kaiyuan_license::lineage::license_expr(&effective) else {
        return Ok(vec![]);
    };
    let catalog = kaiyuan_license::catalog::catalog();
    Ok(expr
        .leaves()
        .into_iter()
        .map(|leaf| catalog.terms(&leaf))
        .filter(|t| t.requires_acceptance)
        .map(|t| RequiredAcceptance {
            version: t.version_date.clone().unwrap_or_else(|| "1".into()),
            license: t.id,
            name: t.name,
        })
        .collect())
}

/// The licences of the commit that `caller` must accept before downloading, each with whether
/// they have. Members of the owning namespace are the licensors' side and must accept none: the
/// download gate and the model page both ask here, so they cannot disagree.
pub async fn acceptances_for(
    conn: &mut PgConnection,
    store: &BlobStore,
    caller: &crate::domain::actor::Actor,
    repo: &Repo,
    commit: &str,
) -> Result<Vec<(RequiredAcceptance, bool)>, Error> {
    let required = required_acceptances(conn, store, repo, commit).await?;
    acceptances_of(conn, caller, repo, required).await
}

async fn acceptances_of(
    conn: &mut PgConnection,
    caller: &crate::domain::actor::Actor,
    repo: &Repo,
    required: Vec<RequiredAcceptance>,
) -> Result<Vec<(RequiredAcceptance, bool)>, Error> {
    let role =
        crate::domain::actor::namespace_role(conn, caller, repo.namespace_id, repo.namespace_kind)
            .await?;
    if required.is_empty() || role.is_some() {
        return Ok(vec![]);
    }
    let mut out = Vec::with_capacity(required.len());
    for r in required {
        let accepted = match &caller.user {
            Some(user) => {
                db::licenses::accepted(conn, repo.id, user.id, &r.license, &r.version).await?
            }
            None => false,
        };
        out.push((r, accepted));
    }
    Ok(out)
}

/// Checks that the caller accepted every licence of the commit that requires acceptance
/// ([`acceptances_for`]). Returns whether the commit is behind such a licence (for anyone
/// outside the namespace): its bytes must not sit in a shared cache, which would hand them to
/// people who have not accepted.
pub async fn authorize_license(
    conn: &mut PgConnection,
    store: &BlobStore,
    caller: &crate::domain::actor::Actor,
    repo: &Repo,
    commit: &str,
) -> Result<bool, Error> {
    let required = required_acceptances(conn, store, repo, commit).await?;
    let gated = !required.is_empty();
    for (r, accepted) in acceptances_of(conn, caller, repo, required).await? {
        if accepted {
            continue;
        }
        let how = format!(
            "`{}` is under the {} ({}, version {}): read it and accept it with POST /api/v1/repos/{}/license-acceptance {{\"license\": \"{}\", \"version\": \"{}\"}} before downloading",
            repo.full_name(),
            r.name,
            r.license,
            r.version,
            repo.full_name(),
            r.license,
            r.version
        );
        return Err(match caller.user {
            Some(_) => Error::Gated {
                signed_in: true,
                message: how,
            },
            None => Error::Gated {
                signed_in: false,
                message: format!("{how} (sign in first)"),
            },
        });
    }
    Ok(gated)
}
