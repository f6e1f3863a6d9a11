//! `kaiyuan license audit DIR`: the licence engine on a local model folder, before it is
//! published. Exit code 0 for allow and allow_with_obligations, 1 for flag_review and deny,
//! 2 for usage errors.

use std::io::Write;
use std::path::PathBuf;

use kaiyuan_license::folder::read_folder;
use kaiyuan_license::lineage::{Chain, LineageFile};
use kaiyuan_license::{Decision, Policy, Purpose, Report, UseContext, evaluate};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// The model folder (README.md card, LICENSE*, NOTICE*, model files).
    pub dir: PathBuf,
    /// Repository id it will be published under (naming rules apply); default: the folder name.
    #[arg(long)]
    pub name: Option<String>,
    /// Organisation policy, JSON or YAML (the document the API accepts).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Intended use: commercial, production (non-commercial production), research, evaluation, personal.
    #[arg(long, default_value = "commercial")]
    pub purpose: String,
    /// Monthly active users of your products today.
    #[arg(long)]
    pub mau: Option<u64>,
    /// Annual revenue in USD (licences with a revenue threshold).
    #[arg(long)]
    pub revenue: Option<u64>,
    /// Monthly active users in a past month, `YYYY-MM=N` (repeatable), for thresholds measured
    /// at a licence's release date.
    #[arg(long = "mau-on", value_name = "YYYY-MM=N")]
    pub mau_on: Vec<String>,
    /// Where you are domiciled: an ISO 3166 alpha-2 code or EU.
    #[arg(long)]
    pub region: Option<String>,
    /// Application domain checked against licences' prohibited uses (repeatable): military,
    /// weapons, critical-infrastructure, malware, harm-to-minors, medical-advice,
    /// law-enforcement, automated-legal-decisions, disinformation, guardrail-removal.
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// You receive the model inside a licensee's integrated end-user product.
    #[arg(long)]
    pub integrated_end_user: bool,
    /// Something you did that licences treat as a termination trigger (repeatable):
    /// patent-litigation, copyright-litigation, ip-litigation, guardrail-bypass, breach.
    #[arg(long = "event")]
    pub events: Vec<String>,
    /// Licences of base models and datasets: `{"models": {...}, "datasets": {...}}`, JSON or YAML.
    #[arg(long)]
    pub lineage: Option<PathBuf>,
    /// One JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,
}

fn usage(message: String) -> Result<Report, String> {
    Err(message)
}

fn audit(args: &AuditArgs) -> Result<Report, String> {
    let Some(purpose) = Purpose::parse(&args.purpose) else {
        return usage(format!(
            "--purpose {}: expected commercial, production, research, evaluation or personal",
            args.purpose
        ));
    };
    let mut ctx = UseContext {
        purpose,
        mau: args.mau,
        annual_revenue: args.revenue,
        region: args.region.clone(),
        domains: args.domains.iter().map(|d| d.to_lowercase()).collect(),
        integrated_end_user: args.integrated_end_user,
        events: args.events.iter().map(|e| e.to_lowercase()).collect(),
        ..Default::default()
    };
    for entry in &args.mau_on {
        let (month, n) = entry
            .split_once('=')
            .ok_or(format!("--mau-on {entry}: expected YYYY-MM=N"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("--mau-on {entry}: {n} is not a number"))?;
        ctx.mau_history.insert(month.trim().to_string(), n);
    }
    ctx.validate()?;
    let read =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let policy = match &args.policy {
        Some(p) => Some(
            Policy::from_json_or_yaml(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?,
        ),
        None => None,
    };
    let lineage = match &args.lineage {
        Some(p) => LineageFile::from_json_or_yaml(&read(p)?)
            .map_err(|e| format!("{}: {e}", p.display()))?,
        None => LineageFile::default(),
    };
    let name = args.name.clone().or_else(|| {
        let dir = std::fs::canonicalize(&args.dir).ok()?;
        Some(dir.file_name()?.to_string_lossy().into_owned())
    });
    let facts = read_folder(&args.dir, name)?;
    let chain = Chain {
        file: Some(&lineage),
        inner: None,
    };
    Ok(evaluate(&facts, &chain, policy.as_ref(), &ctx))
}

/// Runs the audit and prints the report; returns the exit code.
pub fn run(args: &AuditArgs) -> u8 {
    let report = match audit(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kaiyuan license audit: {e}");
            return 2;
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        let _ = write!(out, "{}", readable(&report));
    }
    match report.decision {
        Decision::Allow | Decision::AllowWithObligations => 0,
        Decision::FlagReview | Decision::Deny => 1,
    }
}

fn readable(r: &Report) -> String {
    let mut s = format!(
        "{}  {}\n",
        r.decision.as_str(),
        r.name.as_deref().unwrap_or("")
    );
    s += &format!(
        "  declared:  {}\n",
        r.declared.as_deref().unwrap_or("(none)")
    );
    s += &format!(
        "  expression: {}\n",
        r.expression.as_deref().unwrap_or("(none)")
    );
    for d in &r.detected {
        s += &format!(
            "  detected:  {} in {} ({}, {:.2}{})\n",
            d.id,
            d.file,
            d.method,
            d.confidence,
            if d.modified { ", modified" } else { "" }
        );
    }
    s += &format!(
        "  effective: {}\n",
        r.effective.as_deref().unwrap_or("(unknown)")
    );
    for n in &r.lineage {
        s += &format!(
            "  {}: {} -> {}\n",
            n.kind,
            n.id,
            n.license.as_deref().unwrap_or("unknown")
        );
    }
    for f in &r.findings {
        s += &format!("  [{:?}] {}: {}\n", f.severity, f.code, f.message);
    }
    for o in &r.obligations {
        s += &format!("  must: {o}\n");
    }
    s
}
