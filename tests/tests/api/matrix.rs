//! The authorisation matrix, generated from the OpenAPI document: every documented operation ×
//! every kind of caller × every kind of target (public, private, missing repository; an
//! organisation one belongs to or a missing one), each answer checked against the operation's
//! rule. An operation the rules below do not classify fails the test, so a new route cannot
//! arrive without saying who may call it; and wherever a caller may not see a private target, its
//! answer must be the missing target's answer: same status, same headers, same body but for the
//! name asked.

use std::collections::BTreeMap;

use kaiyuan_tests::{TestApp, expect_status, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Anonymous,
    /// A signed-in user with no role anywhere here (write token).
    Outsider,
    /// The organisation owner's read-scoped token.
    ReadToken,
    OrgRead,
    OrgWrite,
    OrgAdmin,
    OrgOwner,
}

const ROLES: [Role; 7] = [
    Role::Anonymous,
    Role::Outsider,
    Role::ReadToken,
    Role::OrgRead,
    Role::OrgWrite,
    Role::OrgAdmin,
    Role::OrgOwner,
];

impl Role {
    fn slug(self) -> &'static str {
        match self {
            Role::Anonymous => "anonymous",
            Role::Outsider => "outsider",
            Role::ReadToken => "readtoken",
            Role::OrgRead => "orgread",
            Role::OrgWrite => "orgwrite",
            Role::OrgAdmin => "orgadmin",
            Role::OrgOwner => "orgowner",
        }
    }

    /// The role on the organisation: 1 read, 2 write, 3 admin, 4 owner.
    fn level(self) -> Option<u8> {
        match self {
            Role::OrgRead => Some(1),
            Role::OrgWrite => Some(2),
            Role::OrgAdmin => Some(3),
            Role::OrgOwner | Role::ReadToken => Some(4),
            Role::Anonymous | Role::Outsider => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Public,
    Private,
    Missing,
    /// The organisation the members belong to.
    Org,
    /// An operation that names no repository or organisation.
    None,
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Anyone.
    Open,
    /// Any signed-in user.
    SignedIn,
    /// Hub administrators and hub reviewers only (no caller here is one).
    HubStaff,
    /// Readers of the repository; writers (2) or admins (3) of its namespace.
    Repo(u8),
    /// Signed-in readers of the repository (reports, watching, access requests, acceptances).
    RepoUser,
    /// Members of the organisation with at least this level (1 read, 3 admin).
    Org(u8),
    /// Something named by an id that does not exist here: denied or not found for everyone.
    ById,
}

/// The rule of every documented operation; `None` is an unclassified operation.
fn rule(method: &str, path: &str) -> Option<Rule> {
    use Rule::*;
    let repo = "/api/v1/repos/{namespace}/{name}";
    let sub = path.strip_prefix(repo);
    Some(match (method, path, sub) {
        ("get", "/healthz" | "/readyz" | "/metrics" | "/api/v1/openapi.json", _) => Open,
        ("get", "/api/v1/repos", _) => Open,
        ("post", "/api/v1/repos", _) => SignedIn,
        ("get", p, _) if p.starts_with("/api/v1/log/") => Open,
        ("get", "/api/v1/advisories", _) => Open,
        (_, p, _) if p.starts_with("/api/v1/advisories/{id}") => ById,
        (_, p, _) if p.starts_with("/api/v1/reports/{id}") => ById,
        (_, p, _) if p.starts_with("/api/v1/admin/") => HubStaff,
        ("post", "/api/v1/users", _) => HubStaff,
        (_, "/api/v1/rules", _) => HubStaff,
        ("get", "/api/v1/whoami" | "/api/v1/tokens" | "/api/v1/notifications", _) => SignedIn,
        ("get", "/api/v1/reviews/queue", _) => SignedIn,
        ("post", "/api/v1/tokens" | "/api/v1/orgs", _) => SignedIn,
        ("delete", "/api/v1/tokens/{id}", _) => ById,
        ("post", "/api/v1/notifications/{id}/read", _) => ById,
        // Organisations.
        ("get", "/api/v1/orgs/{org}/members", _) => Org(1),
        (_, "/api/v1/orgs/{org}/members/{user}", _) => Org(3),
        ("get", "/api/v1/orgs/{namespace}/license-policy", _) => Org(1),
        ("get", "/api/v1/orgs/{namespace}/license-report", _) => Org(1),
        ("get", "/api/v1/orgs/{namespace}/signing-keys", _) => Org(1),
        (_, p, _) if p.starts_with("/api/v1/orgs/{namespace}/") => Org(3),
        // Repositories.
        ("get", _, Some("" | "/commits" | "/scan" | "/tree/{revision}" | "/refs")) => Repo(1),
        ("get", _, Some("/license" | "/sbom" | "/signature" | "/attestation" | "/provenance")) => {
            Repo(1)
        }
        ("get", _, Some("/verification" | "/advisories" | "/review-attestations" | "/log")) => {
            Repo(1)
        }
        ("get", _, Some("/reports")) => Repo(1),
        ("post", _, Some("/compliance")) => Repo(1),
        ("get", _, Some("/audit" | "/access-requests" | "/license-acceptances")) => Repo(3),
        ("patch" | "delete", _, Some("")) => Repo(3),
        ("put", _, Some("/access-requests/{user}")) => Repo(3),
        ("post", _, Some("/uploads" | "/commits/{branch}" | "/verification")) => Repo(2),
        ("put" | "delete", _, Some("/{kind}/{ref_name}")) => Repo(2),
        ("post", _, Some("/reports" | "/access-request" | "/license-acceptance")) => RepoUser,
        ("put" | "delete", _, Some("/watch")) => RepoUser,
        // Only reviewers attest; the signed-in readers who are not get 403.
        ("post", _, Some("/review-attestations")) => HubStaff,
        ("get" | "head", "/{namespace}/{name}/resolve/{revision}/{path}", _) => Repo(1),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed,
    Denied,
    /// Denied, and exactly the answer the missing target gets.
    LikeMissing,
}

fn expect(rule: Rule, role: Role, target: Target, writes: bool) -> Expect {
    use Expect::*;
    if writes && role == Role::ReadToken {
        return Denied;
    }
    let signed_in = role != Role::Anonymous;
    match rule {
        Rule::Open => Allowed,
        Rule::SignedIn if signed_in => Allowed,
        Rule::SignedIn | Rule::HubStaff | Rule::ById => Denied,
        Rule::Repo(_) | Rule::RepoUser | Rule::Org(_) if target == Target::Missing => Denied,
        Rule::Repo(_) | Rule::RepoUser | Rule::Org(_)
            if role.level().is_none() && matches!(target, Target::Private | Target::Org) =>
        {
            LikeMissing
        }
        Rule::Repo(1) => Allowed,
        Rule::Repo(need) | Rule::Org(need) if role.level().is_some_and(|l| l >= need) => Allowed,
        Rule::RepoUser if signed_in => Allowed,
        Rule::Repo(_) | Rule::Org(_) | Rule::RepoUser => Denied,
    }
}

/// The parts of an answer a client can compare (no request id, no date).
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    headers: Vec<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn denied(&self) -> bool {
        matches!(self.status.as_u16(), 401 | 403 | 404)
    }

    /// Past authorisation: anything but 401/403 and the 404 of an invisible target.
    fn allowed(&self) -> bool {
        let hidden = self.status == StatusCode::NOT_FOUND
            && matches!(
                self.code(),
                "repository-not-found" | "namespace-not-found" | "org-not-found"
            );
        !matches!(self.status.as_u16(), 401 | 403) && !hidden
    }

    /// The body with the asked name replaced, for comparing private with missing.
    fn comparable(&self, asked: &str) -> (StatusCode, Vec<String>, String) {
        (
            self.status,
            self.headers.clone(),
            self.body.to_string().replace(asked, "NAME"),
        )
    }
}

struct Fixture {
    tokens: BTreeMap<Role, Option<String>>,
}

async fn token_for(app: &TestApp, name: &str) -> String {
    app.create_user(name).await
}

async fn fixture(app: &TestApp) -> Fixture {
    let owner = token_for(app, "olga").await;
    let mut tokens = BTreeMap::new();
    tokens.insert(Role::Anonymous, None);
    tokens.insert(Role::Outsider, Some(token_for(app, "mallory").await));
    // The user that operations naming a `{user}` act on: nobody's role.
    token_for(app, "victor").await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&owner), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    for (role, user, level) in [
        (Role::OrgRead, "rita", "read"),
        (Role::OrgWrite, "wes", "write"),
        (Role::OrgAdmin, "ada", "admin"),
    ] {
        let token = token_for(app, user).await;
        expect_status(
            app.send_json(
                Method::PUT,
                &format!("/api/v1/orgs/acme/members/{user}"),
                Some(&owner),
                &json!({"role": level}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        tokens.insert(role, Some(token));
    }
    tokens.insert(Role::ReadToken, Some(app.read_token(&owner).await));
    // Every caller acts on repositories of their own, so that one caller's deletion cannot
    // change what the next one sees.
    for role in ROLES {
        for (kind, visibility) in [("pub", "public"), ("priv", "private")] {
            let name = format!("{kind}-{}", role.slug());
            app.create_repo(&owner, "acme", &name, visibility).await;
            app.commit_files(&owner, &format!("acme/{name}"), &[("a.txt", b"a")])
                .await;
        }
    }
    tokens.insert(Role::OrgOwner, Some(owner));
    Fixture { tokens }
}

/// The concrete path of `template` for this role and target.
fn fill(template: &str, role: Role, target: Target) -> String {
    let repo_name = match target {
        Target::Public => format!("pub-{}", role.slug()),
        Target::Private => format!("priv-{}", role.slug()),
        _ => format!("nope-{}", role.slug()),
    };
    let org = match target {
        Target::Missing => "nope-org",
        _ => "acme",
    };
    let is_repo = template.contains("{name}");
    let mut out = String::new();
    for (i, segment) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let value = match segment {
            "{namespace}" if is_repo => "acme".to_string(),
            "{namespace}" | "{org}" => org.to_string(),
            "{name}" => repo_name.clone(),
            "{revision}" | "{branch}" => "main".into(),
            "{kind}" => "branches".into(),
            "{ref_name}" => "matrix-ref".into(),
            "{path}" => "a.txt".into(),
            "{id}" | "{attachment}" => "999999".into(),
            "{user}" => "victor".into(),
            "{sha256}" => "0".repeat(64),
            "{level}" => "0".into(),
            "{index}" => "000".into(),
            s if s.starts_with('{') => panic!("{template}: no value for the parameter {s}"),
            s => s.to_string(),
        };
        out.push_str(&value);
    }
    out
}

/// A request body the schema accepts: its example where it has one, else the required
/// properties filled with the first enum value or a plain value of their type. A body that
/// parses is what lets an operation reach its authorisation check.
fn example(schema: &Value, doc: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return example(&doc["components"]["schemas"][name], doc, depth + 1);
    }
    if let Some(value) = schema.get("example") {
        return value.clone();
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema[key]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["type"] != "null").or_else(|| s.first()))
        {
            return example(first, doc, depth + 1);
        }
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds
            .iter()
            .find(|k| *k != "null")
            .and_then(Value::as_str)
            .unwrap_or("object"),
        Value::String(kind) => kind.as_str(),
        _ if schema.get("properties").is_some() => "object",
        _ => "null",
    };
    match kind {
        "object" => {
            let mut object = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                object.insert(
                    name.to_string(),
                    example(&schema["properties"][name], doc, depth + 1),
                );
            }
            Value::Object(object)
        }
        "array" => json!([]),
        "string" => json!("matrix"),
        "integer" | "number" => json!(1),
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    op: &Value,
    doc: &Value,
    token: Option<&str>,
) -> Answer {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut req = app.request(method, path, token);
    let content = &op["requestBody"]["content"];
    if let Some(json_body) = content.get("application/json") {
        req = req.json(&example(&json_body["schema"], doc, 0));
    } else if content.as_object().is_some_and(|c| !c.is_empty()) {
        req = req
            .header("content-type", "application/octet-stream")
            .body(b"matrix".to_vec());
    }
    let res = req.send().await.expect("request sent");
    let status = res.status();
    let mut headers: Vec<String> = res
        .headers()
        .iter()
        // `connection: close` says whether the body had been read when the answer left: timing
        // of the transport, not content.
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "x-request-id" | "date" | "content-length" | "connection"
            )
        })
        .map(|(k, v)| {
            if k == "x-error-message" {
                k.to_string()
            } else {
                format!("{k}: {}", v.to_str().unwrap_or("?"))
            }
        })
        .collect();
    headers.sort();
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn every_operation_answers_every_caller_as_its_rule_says(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = fixture(&app).await;
    let doc = expect_status(app.get("/api/v1/openapi.json", None).await, StatusCode::OK).await;
    let mut operations: Vec<(String, String, Value)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if matches!(
                method.as_str(),
                "get" | "post" | "put" | "patch" | "delete" | "head"
            ) {
                operations.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    let unclassified: Vec<String> = operations
        .iter()
        .filter(|(m, p, _)| rule(m, p).is_none())
        .map(|(m, p, _)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(
        unclassified.is_empty(),
        "operations without an authorisation rule: {unclassified:#?}"
    );
    // Deleting a repository goes last: every other operation still finds the fixtures.
    operations.sort_by_key(|(m, p, _)| {
        (
            m == "delete" && p == "/api/v1/repos/{namespace}/{name}",
            p.clone(),
            m.clone(),
        )
    });

    let mut failures = Vec::new();
    let mut requests = 0;
    for (method, template, op) in &operations {
        let rule = rule(method, template).unwrap();
        let reads = matches!(method.as_str(), "get" | "head")
            || (method == "post" && template.ends_with("/compliance"));
        let writes = !reads;
        let targets: &[Target] = if template.contains("{name}") {
            &[Target::Missing, Target::Private, Target::Public]
        } else if template.contains("{namespace}") || template.contains("{org}") {
            &[Target::Missing, Target::Org]
        } else {
            &[Target::None]
        };
        for role in ROLES {
            let token = fixture.tokens[&role].as_deref();
            let mut missing: Option<(Answer, String)> = None;
            for &target in targets {
                let path = fill(template, role, target);
                let answer = call(&app, method, &path, op, &doc, token).await;
                requests += 1;
                let wanted = expect(rule, role, target, writes);
                let what = format!(
                    "{} {path} as {role:?} ({target:?}, rule {rule:?}): {} {}",
                    method.to_uppercase(),
                    answer.status,
                    answer.body
                );
                if answer.status.is_server_error() {
                    failures.push(format!("server error: {what}"));
                    continue;
                }
                match wanted {
                    Expect::Allowed if !answer.allowed() => {
                        failures.push(format!("expected allowed: {what}"))
                    }
                    Expect::Denied | Expect::LikeMissing if !answer.denied() => {
                        failures.push(format!("expected denied: {what}"))
                    }
                    _ => {}
                }
                if wanted == Expect::LikeMissing {
                    let (missing_answer, missing_path) = missing.as_ref().expect("missing first");
                    // The name asked: the repository's, else the organisation's.
                    let asked = |p: &str| {
                        p.split('/')
                            .find(|s| s.starts_with("nope-") || s.starts_with("priv-"))
                            .unwrap_or("acme")
                            .to_string()
                    };
                    let hidden = answer.comparable(&asked(&path));
                    let absent = missing_answer.comparable(&asked(missing_path));
                    if hidden != absent {
                        failures.push(format!(
                            "private differs from missing: {what}\n    missing: {absent:?}\n    private: {hidden:?}"
                        ));
                    }
                }
                if target == Target::Missing {
                    missing = Some((answer, path));
                }
            }
        }
    }
    println!(
        "authorisation matrix: {} operations × {} callers, {requests} requests",
        operations.len(),
        ROLES.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} answers break their rule:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
