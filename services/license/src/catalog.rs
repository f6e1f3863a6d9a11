//! The terms catalog: structured terms for the licences open models use, loaded from the
//! reviewed data files under `catalog/`, plus category defaults for every other SPDX id.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const LICENSES_TOML: &str = include_str!("../catalog/licenses.toml");
const UPSTREAM_TOML: &str = include_str!("../catalog/upstream.toml");

/// Texts vendored for detection, by file name.
const TEXTS: &[(&str, &str)] = &[
    (
        "llama-2-license-2023.txt",
        include_str!("../catalog/texts/llama-2-license-2023.txt"),
    ),
    (
        "llama-3-license-2024.txt",
        include_str!("../catalog/texts/llama-3-license-2024.txt"),
    ),
    (
        "llama-3-use-policy-2024.txt",
        include_str!("../catalog/texts/llama-3-use-policy-2024.txt"),
    ),
    (
        "llama-3.1-license-2024.txt",
        include_str!("../catalog/texts/llama-3.1-license-2024.txt"),
    ),
    (
        "llama-3.2-license-2024.txt",
        include_str!("../catalog/texts/llama-3.2-license-2024.txt"),
    ),
    (
        "llama-3.3-license-2024.txt",
        include_str!("../catalog/texts/llama-3.3-license-2024.txt"),
    ),
    (
        "llama-4-cla-2025.txt",
        include_str!("../catalog/texts/llama-4-cla-2025.txt"),
    ),
    (
        "gemma-tou-2024-04-01.txt",
        include_str!("../catalog/texts/gemma-tou-2024-04-01.txt"),
    ),
    (
        "gemma-tou-2025-03-24.txt",
        include_str!("../catalog/texts/gemma-tou-2025-03-24.txt"),
    ),
    (
        "bigscience-open-rail-m.txt",
        include_str!("../catalog/texts/bigscience-open-rail-m.txt"),
    ),
    (
        "bigscience-open-rail-m2.txt",
        include_str!("../catalog/texts/bigscience-open-rail-m2.txt"),
    ),
    (
        "bigscience-rail-1.0.txt",
        include_str!("../catalog/texts/bigscience-rail-1.0.txt"),
    ),
    (
        "bigcode-open-rail-m-v1.txt",
        include_str!("../catalog/texts/bigcode-open-rail-m-v1.txt"),
    ),
    (
        "stable-diffusion-2022-08-22.txt",
        include_str!("../catalog/texts/stable-diffusion-2022-08-22.txt"),
    ),
    (
        "deepseek-la-1.0.txt",
        include_str!("../catalog/texts/deepseek-la-1.0.txt"),
    ),
    (
        "qwen-2024.txt",
        include_str!("../catalog/texts/qwen-2024.txt"),
    ),
    (
        "tongyi-qianwen-2023.txt",
        include_str!("../catalog/texts/tongyi-qianwen-2023.txt"),
    ),
    (
        "tongyi-qianwen-research-2023.txt",
        include_str!("../catalog/texts/tongyi-qianwen-research-2023.txt"),
    ),
    (
        "stability-ai-nc-research-community-2023.txt",
        include_str!("../catalog/texts/stability-ai-nc-research-community-2023.txt"),
    ),
    (
        "deepfloyd-if-2023.txt",
        include_str!("../catalog/texts/deepfloyd-if-2023.txt"),
    ),
    (
        "minimax-model-2025.txt",
        include_str!("../catalog/texts/minimax-model-2025.txt"),
    ),
    (
        "apple-amlr-2025.txt",
        include_str!("../catalog/texts/apple-amlr-2025.txt"),
    ),
    (
        "stability-ai-nc-community-2024-03-18.txt",
        include_str!("../catalog/texts/stability-ai-nc-community-2024-03-18.txt"),
    ),
    (
        "falcon-2-11b-1.0.txt",
        include_str!("../catalog/texts/falcon-2-11b-1.0.txt"),
    ),
    (
        "nvidia-open-model-2025-04-28.txt",
        include_str!("../catalog/texts/nvidia-open-model-2025-04-28.txt"),
    ),
    (
        "stability-ai-community-2024-07-05.txt",
        include_str!("../catalog/texts/stability-ai-community-2024-07-05.txt"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Commercial {
    Yes,
    No,
    Conditional,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MauAnchor {
    /// Measured in the calendar month before the licence version's release date.
    ReleaseDate,
    /// Measured whenever the model is used.
    #[default]
    Current,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Derivatives {
    /// Any licence for the new contribution (the base's notices stay).
    Any,
    /// Derivatives must carry the same licence (share-alike / copyleft).
    SameLicense,
    /// The base agreement travels with every copy and keeps governing the base material.
    KeepTerms,
    /// Any licence, as long as it carries the same use restrictions as enforceable terms.
    RestrictionsFlowDown,
    /// Derivatives stay non-commercial.
    NoncommercialOnly,
    /// No derivatives may be shared.
    None,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LicenseCopy {
    None,
    /// A duty on redistribution that can be met by adding the text.
    #[default]
    Obligation,
    /// The grant itself depends on it: shipping without it breaks the licence.
    Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Outputs {
    #[default]
    Unrestricted,
    /// Models trained on outputs must carry the licence's name prefix.
    NamingDuty,
    /// Models trained on outputs must display a phrase.
    DisplayDuty,
    /// Outputs may not improve other models (derivatives of the same family excepted).
    NoTrainingOtherModels,
    /// A model distilled from outputs is itself a derivative under these terms.
    DerivativeIfDistilled,
}

fn yes() -> bool {
    true
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Structured terms of one licence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_date: Option<String>,
    #[serde(default, skip_serializing)]
    pub hf_tags: Vec<String>,
    #[serde(default, skip_serializing)]
    pub aliases: Vec<String>,
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default)]
    pub osi_approved: bool,
    #[serde(default)]
    pub commercial: Commercial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mau_over: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_over: Option<u64>,
    #[serde(default)]
    pub mau_anchor: MauAnchor,
    #[serde(default)]
    pub end_user_exempt: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licensor: Option<String>,
    #[serde(default = "yes")]
    pub production: bool,
    #[serde(default)]
    pub derivatives: Derivatives,
    #[serde(default)]
    pub license_copy: LicenseCopy,
    #[serde(default)]
    pub mark_changes: bool,
    #[serde(default)]
    pub keep_notice_file: bool,
    #[serde(default)]
    pub keep_documentation: bool,
    #[serde(default)]
    pub attribution: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub display: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prohibited_uses: Vec<String>,
    #[serde(default)]
    pub outputs: Outputs,
    #[serde(default)]
    pub share_alike: bool,
    #[serde(default)]
    pub network_source_offer: bool,
    #[serde(default)]
    pub eu_multimodal_excluded: bool,
    #[serde(default)]
    pub always_multimodal: bool,
    #[serde(default)]
    pub results_unrestricted: bool,
    #[serde(default)]
    pub patent_grant: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub termination: Vec<String>,
    #[serde(default)]
    pub needs_text: bool,
    /// For a tag that names a family (`gpl`, `bsd`, `openrail`): id prefixes of the licences
    /// it covers, so that a shipped text of one of them says which variant applies.
    #[serde(default, skip_serializing)]
    pub variants: Vec<String>,
    #[serde(default)]
    pub requires_acceptance: bool,
    /// Substrings of URLs that point at this licence (a card's `license_link`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing)]
    pub text: Vec<String>,
    #[serde(default, skip_serializing)]
    pub titles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Whether the terms come from the catalog (false: category defaults from SPDX data).
    #[serde(default)]
    pub curated: bool,
    /// `open-source` (OSI-approved), `open` (permissive or public domain, not OSI-approved),
    /// `open-weights-restricted` (community or use-restricted terms), `non-commercial`, or
    /// `unknown`. Whether a model conforms to the OSI's Open Source AI Definition also depends
    /// on its data information and code, so it is never derived from this.
    #[serde(default, skip_deserializing)]
    pub openness: String,
}

impl Terms {
    pub fn has_category(&self, category: &str) -> bool {
        self.categories.iter().any(|c| c == category)
            || match category {
                // Broader categories include their narrower forms, so that a policy denying
                // "copyleft" also denies AGPL and one denying "noncommercial" denies research-only.
                "copyleft" => self.has_category("network-copyleft"),
                "noncommercial" => self.commercial == Commercial::No,
                "use-restricted" => !self.prohibited_uses.is_empty() || self.use_policy.is_some(),
                _ => false,
            }
    }

    /// Whether the licence makes its use restrictions bind every later user: the RAIL
    /// family's paragraph 5, Gemma's and DeepSeek's flow-down, the acceptable-use policies that
    /// Llama and others incorporate.
    pub fn passes_down_restrictions(&self) -> bool {
        self.derivatives == Derivatives::RestrictionsFlowDown
            || self.use_policy.is_some()
            || !self.prohibited_uses.is_empty()
    }

    pub fn is_unknown(&self) -> bool {
        self.categories.iter().any(|c| c == "unknown")
    }

    /// Restrictiveness rank, used to pick the stricter of two disagreeing claims.
    pub fn restrictiveness(&self) -> u8 {
        if self.is_unknown() {
            7
        } else if self.commercial == Commercial::No || !self.production {
            6
        } else if self.has_category("use-restricted") || self.has_category("community") {
            5
        } else if self.has_category("network-copyleft") {
            4
        } else if self.has_category("copyleft") {
            3
        } else if self.has_category("weak-copyleft") {
            2
        } else if self.has_category("permissive") {
            1
        } else {
            0
        }
    }
}

#[derive(Debug, Deserialize)]
struct LicensesFile {
    version: String,
    license: Vec<Terms>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    pub pattern: String,
    pub license: String,
    #[serde(default)]
    pub multimodal: bool,
}

#[derive(Debug, Deserialize)]
struct UpstreamFile {
    version: String,
    #[serde(default)]
    model: Vec<UpstreamEntry>,
    #[serde(default)]
    dataset: Vec<UpstreamEntry>,
}

pub struct Catalog {
    pub version: String,
    pub upstream_version: String,
    licenses: Vec<Terms>,
    by_id: HashMap<String, usize>,
    /// Lower-cased HF tags, aliases and ids.
    by_key: HashMap<String, usize>,
    models: Vec<UpstreamEntry>,
    datasets: Vec<UpstreamEntry>,
    /// ScanCode LicenseDB categories by lower-cased SPDX id (catalog/scancode-categories.toml).
    scancode: HashMap<String, ScancodeCategory>,
    /// Categories reviewed here for SPDX ids newer than that data, with the deciding clause
    /// (catalog/reviewed-categories.toml).
    reviewed: HashMap<String, (ScancodeCategory, String)>,
}

/// The catalog compiled into this binary.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        Catalog::from_toml(LICENSES_TOML, UPSTREAM_TOML).expect("the bundled catalog is valid")
    })
}

impl Catalog {
    pub fn from_toml(licenses: &str, upstream: &str) -> Result<Self, String> {
        let file: LicensesFile = toml::from_str(licenses).map_err(|e| format!("licenses: {e}"))?;
        let up: UpstreamFile = toml::from_str(upstream).map_err(|e| format!("upstream: {e}"))?;
        let mut by_id = HashMap::new();
        let mut by_key = HashMap::new();
        let mut licenses = file.license;
        for (i, t) in licenses.iter_mut().enumerate() {
            t.curated = true;
            if let Some(l) = spdx::license_id(&t.id) {
                t.osi_approved |= l.is_osi_approved();
            }
            t.openness = openness(t);
            for text in &t.text {
                if !TEXTS.iter().any(|(name, _)| name == text) {
                    return Err(format!("{}: text {text} is not bundled", t.id));
                }
            }
            if by_id.insert(t.id.clone(), i).is_some() {
                return Err(format!("duplicate id {}", t.id));
            }
            for key in t.hf_tags.iter().chain(&t.aliases).chain([&t.id]) {
                if let Some(prev) = by_key.insert(key.to_lowercase(), i)
                    && prev != i
                {
                    return Err(format!("{key} names two licences"));
                }
            }
        }
        let catalog = Catalog {
            version: file.version,
            upstream_version: up.version,
            licenses,
            by_id,
            by_key,
            models: up.model,
            datasets: up.dataset,
            scancode: scancode_categories(SCANCODE_TOML)?,
            reviewed: reviewed_categories(REVIEWED_TOML)?,
        };
        for e in catalog.models.iter().chain(&catalog.datasets) {
            if e.license != "other" && catalog.resolve_key(&e.license).is_none() {
                return Err(format!(
                    "upstream {}: unknown licence {}",
                    e.pattern, e.license
                ));
            }
        }
        Ok(catalog)
    }

    pub fn licenses(&self) -> &[Terms] {
        &self.licenses
    }

    pub fn get(&self, id: &str) -> Option<&Terms> {
        self.by_id.get(id).map(|&i| &self.licenses[i])
    }

    /// Resolves an HF tag, alias, `license_name` or id (case-insensitive) to a canonical id:
    /// catalog entries first, then the SPDX list.
    pub fn resolve_key(&self, key: &str) -> Option<String> {
        let lower = key.trim().to_lowercase();
        if let Some(&i) = self.by_key.get(&lower) {
            return Some(self.licenses[i].id.clone());
        }
        if let Some((_, id)) = HF_SPDX_TAGS.iter().find(|(tag, _)| *tag == lower) {
            return Some(id.to_string());
        }
        spdx::identifiers::LICENSES
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(&lower) && !l.flags_deprecated())
            .map(|l| l.name.to_string())
    }

    /// Terms for one licence requirement (`X`, `X WITH Y`, `X+`).
    pub fn terms(&self, requirement: &str) -> Terms {
        let base = requirement
            .split(" WITH ")
            .next()
            .unwrap_or(requirement)
            .trim();
        let base = base.trim_end_matches('+');
        if let Some(t) = self.get(base) {
            return t.clone();
        }
        // An SPDX id a curated entry lists among its aliases (C-UDA-1.0): the curated terms.
        if spdx::license_id(base).is_some()
            && let Some(&i) = self.by_key.get(&base.to_lowercase())
        {
            return self.licenses[i].clone();
        }
        spdx_defaults(base, |id| self.category(id))
    }

    /// An SPDX id's category and where it comes from: the ScanCode LicenseDB, else this
    /// project's review of the SPDX text.
    fn category(&self, id: &str) -> Option<(ScancodeCategory, String)> {
        let key = id.to_lowercase();
        if let Some(&c) = self.scancode.get(&key) {
            return Some((
                c,
                "the ScanCode LicenseDB; catalog/scancode-categories.toml".into(),
            ));
        }
        self.reviewed.get(&key).map(|(c, why)| {
            (
                *c,
                format!(
                    "kaiyuan's review of the SPDX text: {why}; catalog/reviewed-categories.toml"
                ),
            )
        })
    }

    /// Bundled canonical texts of a catalog licence.
    pub fn texts(&self, id: &str) -> Vec<&'static str> {
        let Some(t) = self.get(id) else {
            return spdx::license_id(id)
                .map(|l| vec![l.text()])
                .unwrap_or_default();
        };
        let mut texts: Vec<&'static str> = t
            .text
            .iter()
            .filter_map(|name| TEXTS.iter().find(|(n, _)| n == name).map(|(_, body)| *body))
            .collect();
        if texts.is_empty()
            && let Some(l) = spdx::license_id(id)
        {
            texts.push(l.text());
        }
        texts
    }

    /// The licence a URL points at, by the catalog's URL fragments.
    pub fn by_url(&self, url: &str) -> Option<&Terms> {
        let lower = url.to_lowercase();
        self.licenses
            .iter()
            .find(|t| t.urls.iter().any(|u| lower.contains(&u.to_lowercase())))
    }

    pub fn upstream_model(&self, id: &str) -> Option<&UpstreamEntry> {
        find_pattern(&self.models, id)
    }

    pub fn upstream_dataset(&self, id: &str) -> Option<&UpstreamEntry> {
        find_pattern(&self.datasets, id)
    }
}

/// Hugging Face licence tags whose spelling is neither an SPDX id nor a catalog key.
const HF_SPDX_TAGS: &[(&str, &str)] = &[("odbl", "ODbL-1.0"), ("pddl", "PDDL-1.0")];

trait DeprecatedFlag {
    fn flags_deprecated(&self) -> bool;
}

impl DeprecatedFlag for spdx::License {
    fn flags_deprecated(&self) -> bool {
        self.flags & spdx::flags::IS_DEPRECATED != 0
    }
}

fn find_pattern<'a>(entries: &'a [UpstreamEntry], id: &str) -> Option<&'a UpstreamEntry> {
    let id = id.trim().to_lowercase();
    entries.iter().find(|e| {
        let pattern = e.pattern.to_lowercase();
        // An id without an owner ("Llama-2-70b-chat") matches on the name part.
        if !id.contains('/') {
            let name = pattern.rsplit('/').next().unwrap_or(&pattern);
            return glob(name, &id);
        }
        glob(&pattern, &id)
    })
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    if parts.is_empty() {
        return rest.is_empty();
    }
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

const WEAK_COPYLEFT: &[&str] = &[
    "LGPL",
    "MPL",
    "EPL",
    "CDDL",
    "MS-RL",
    "CECILL-C",
    "OSL",
    "EUPL",
    "CDLA-SHARING",
    "CPL-",
    "IPL-",
    "APSL-",
    "SPL-",
    "NPL-",
    "RPSL-",
    "ERLPL-",
    "NOKIA",
    "MOTOSOTO",
    "CPAL-",
];
const STRONG_COPYLEFT: &[&str] = &[
    "GPL",
    "AGPL",
    "CC-BY-SA",
    "CC-SA-",
    "CECILL-2",
    "ODBL",
    "SLEEPYCAT",
    "SMAIL-GPL",
    "RPL-",
    "SIMPL-",
    "QPL-",
    "GFDL",
];
/// Families of permissive licences that are neither OSI-approved nor FSF-libre on the SPDX
/// list (variants of BSD, MIT, HPND and the like): notice-keeping, no field-of-use limits.
const PERMISSIVE_FAMILIES: &[&str] = &[
    "BSD-",
    "MIT",
    "X11",
    "HPND",
    "APACHE-",
    "CURL",
    "LIBPNG",
    "ZLIB",
    "ISC",
    "PSF-",
    "PYTHON-",
    "CNRI-",
    "AFL-",
    "ECL-",
    "BEERWARE",
    "NTP",
    "TCL",
    "BLESSING",
    "BOEHM-GC",
    "ICU",
    "UNICODE-",
    "W3C",
    "MIROS",
    "LIBTIFF",
    "SPENCER-",
    "OLDAP-",
    "INFO-ZIP",
    "XNET",
    "FSFAP",
    "FSFUL",
    "SGI-B-2.0",
    "IMAGEMAGICK",
    "OPENSSL",
    "SSLEAY",
    "CDLA-PERMISSIVE",
    "ODC-BY",
    "POSTGRESQL",
    "UPL-",
    "NCSA",
    "BSL-1.0",
    "ARTISTIC-2.0",
    "MS-PL",
    "ETALAB-",
    "OGL-UK-",
    "OGL-CANADA-",
    "DL-DE-",
    "NLOD-",
    "O-UDA-",
    "C-UDA-",
    "OPUBL-",
];

/// Category defaults for an SPDX id the catalog does not curate: from the SPDX list's data
/// (OSI/FSF flags, copyleft, Creative Commons, public-domain and non-commercial names), else
/// from the id's ScanCode LicenseDB or reviewed category (`category`), else from the naming conventions
/// of licence families and a permissive-notice reading of the text.
fn spdx_defaults(id: &str, category: impl Fn(&str) -> Option<(ScancodeCategory, String)>) -> Terms {
    let mut t = Terms {
        id: id.to_string(),
        name: id.to_string(),
        version_date: None,
        hf_tags: vec![],
        aliases: vec![],
        categories: vec!["unknown".into()],
        family: None,
        osi_approved: false,
        commercial: Commercial::Unknown,
        mau_over: None,
        revenue_over: None,
        mau_anchor: MauAnchor::Current,
        end_user_exempt: false,
        licensor: None,
        production: true,
        derivatives: Derivatives::Unknown,
        license_copy: LicenseCopy::Obligation,
        mark_changes: false,
        keep_notice_file: false,
        keep_documentation: false,
        attribution: false,
        notice_file: None,
        name_prefix: None,
        display: vec![],
        use_policy: None,
        prohibited_uses: vec![],
        outputs: Outputs::Unrestricted,
        share_alike: false,
        network_source_offer: false,
        eu_multimodal_excluded: false,
        always_multimodal: false,
        results_unrestricted: false,
        patent_grant: false,
        termination: vec![],
        needs_text: false,
        variants: vec![],
        requires_acceptance: false,
        urls: vec![],
        text: vec![],
        titles: vec![],
        notes: None,
        curated: false,
        openness: String::new(),
    };
    let Some(l) = spdx::license_id(id) else {
        t.notes = Some("not in the catalog or on the SPDX list: terms unknown".into());
        return t;
    };
    t.name = l.full_name.to_string();
    t.osi_approved = l.is_osi_approved();
    let upper = id.to_uppercase();
    let full_name = l.full_name.to_lowercase().replace(' ', "-");
    let mut check_commercial = false;
    let default = if upper.contains("-NC")
        || upper.contains("NONCOMMERCIAL")
        || full_name.contains("non-commercial")
        || full_name.contains("noncommercial")
    {
        CategoryDefault::Noncommercial
    } else if upper.starts_with("SSPL") || upper.starts_with("AGPL") {
        CategoryDefault::NetworkCopyleft
    } else if l.is_copyleft()
        || upper.starts_with("COPYLEFT-NEXT")
        || WEAK_COPYLEFT
            .iter()
            .chain(STRONG_COPYLEFT)
            .any(|p| upper.starts_with(p))
    {
        // The SPDX flags mark only some copyleft licences; family prefixes fill the gaps.
        if WEAK_COPYLEFT.iter().any(|p| upper.starts_with(p)) {
            CategoryDefault::WeakCopyleft
        } else {
            CategoryDefault::Copyleft
        }
    } else if [
        "CC0",
        "UNLICENSE",
        "PDDL",
        "0BSD",
        "CC-PDDC",
        "CC-PDM",
        "WTFPL",
    ]
    .iter()
    .any(|p| upper.starts_with(p))
        || l.full_name.to_lowercase().contains("public domain")
    {
        CategoryDefault::PublicDomain
    } else if upper.contains("-ND") {
        CategoryDefault::NoDerivatives
    } else if l.is_osi_approved() || l.is_fsf_free_libre() {
        CategoryDefault::Permissive
    } else if upper.starts_with("CC-BY-") {
        // CC BY 1.0-4.0 and their ports (CC-BY-3.0-US ...): credit and a licence link.
        t.attribution = true;
        CategoryDefault::Permissive
    } else if let Some((category, source)) = category(id) {
        // No signal in the SPDX data: a reviewed category (ScanCode's, else ours) comes before
        // the naming and wording guesses below.
        let default = category.default_terms();
        // ScanCode files the Aladdin Free Public License, the Peer Production License and
        // OpenPBS 2.3 under copyleft although they limit commercial use or distribution.
        check_commercial = matches!(
            default,
            CategoryDefault::Copyleft | CategoryDefault::WeakCopyleft
        ) && mentions_noncommercial(l.text());
        t.notes = Some(format!(
            "category {} from {source}; not OSI-approved or FSF-libre on the SPDX list{}",
            category.name(),
            if default == CategoryDefault::Restricted {
                ": a person must check the terms before commercial use"
            } else if check_commercial {
                "; the text speaks of non-commercial use: a person must check commercial use"
            } else {
                ""
            }
        ));
        default
    } else if PERMISSIVE_FAMILIES.iter().any(|p| upper.starts_with(p)) || permissive_text(l.text())
    {
        t.notes = Some(
            "category from the licence family (not OSI-approved or FSF-libre on the SPDX list)"
                .into(),
        );
        CategoryDefault::Permissive
    } else {
        t.notes = Some(
            "on the SPDX list but neither OSI-approved nor FSF-libre, and not in the ScanCode \
             LicenseDB data: review the terms"
                .into(),
        );
        CategoryDefault::Unknown
    };
    default.apply(&mut t);
    if check_commercial {
        t.commercial = Commercial::Conditional;
    }
    t.openness = openness(&t);
    t
}

/// The default terms of a category, shared by the SPDX list's signals and the ScanCode
/// LicenseDB categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CategoryDefault {
    Noncommercial,
    NetworkCopyleft,
    Copyleft,
    WeakCopyleft,
    PublicDomain,
    NoDerivatives,
    Permissive,
    /// Free to use under conditions nobody has reviewed here (field-of-use limits,
    /// source-available, proprietary terms): commercial use needs a person's review.
    Restricted,
    Unknown,
}

impl CategoryDefault {
    fn apply(self, t: &mut Terms) {
        let category = match self {
            CategoryDefault::Noncommercial => {
                t.commercial = Commercial::No;
                t.derivatives = Derivatives::NoncommercialOnly;
                "noncommercial"
            }
            CategoryDefault::NetworkCopyleft
            | CategoryDefault::Copyleft
            | CategoryDefault::WeakCopyleft => {
                t.commercial = Commercial::Yes;
                t.derivatives = Derivatives::SameLicense;
                t.share_alike = true;
                match self {
                    CategoryDefault::NetworkCopyleft => {
                        t.network_source_offer = true;
                        "network-copyleft"
                    }
                    CategoryDefault::WeakCopyleft => "weak-copyleft",
                    _ => "copyleft",
                }
            }
            CategoryDefault::PublicDomain => {
                t.commercial = Commercial::Yes;
                t.derivatives = Derivatives::Any;
                t.license_copy = LicenseCopy::None;
                "public-domain"
            }
            CategoryDefault::NoDerivatives => {
                t.commercial = Commercial::Yes;
                t.derivatives = Derivatives::None;
                "no-derivatives"
            }
            CategoryDefault::Permissive => {
                t.commercial = Commercial::Yes;
                t.derivatives = Derivatives::Any;
                "permissive"
            }
            CategoryDefault::Restricted => {
                t.commercial = Commercial::Conditional;
                t.derivatives = Derivatives::Unknown;
                "use-restricted"
            }
            CategoryDefault::Unknown => "unknown",
        };
        t.categories = vec![category.to_string()];
    }
}

/// A ScanCode LicenseDB category (`category` in its licence data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScancodeCategory {
    Permissive,
    PublicDomain,
    Copyleft,
    CopyleftLimited,
    FreeRestricted,
    ProprietaryFree,
    SourceAvailable,
    Commercial,
    PatentLicense,
    Cla,
    UnstatedLicense,
}

impl ScancodeCategory {
    const ALL: [(ScancodeCategory, &'static str); 11] = [
        (ScancodeCategory::Permissive, "Permissive"),
        (ScancodeCategory::PublicDomain, "Public Domain"),
        (ScancodeCategory::Copyleft, "Copyleft"),
        (ScancodeCategory::CopyleftLimited, "Copyleft Limited"),
        (ScancodeCategory::FreeRestricted, "Free Restricted"),
        (ScancodeCategory::ProprietaryFree, "Proprietary Free"),
        (ScancodeCategory::SourceAvailable, "Source-available"),
        (ScancodeCategory::Commercial, "Commercial"),
        (ScancodeCategory::PatentLicense, "Patent License"),
        (ScancodeCategory::Cla, "CLA"),
        (ScancodeCategory::UnstatedLicense, "Unstated License"),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }

    /// Only the free categories give usable defaults; the others never allow commercial use
    /// without a person's review.
    fn default_terms(self) -> CategoryDefault {
        match self {
            ScancodeCategory::Permissive => CategoryDefault::Permissive,
            ScancodeCategory::PublicDomain => CategoryDefault::PublicDomain,
            ScancodeCategory::Copyleft => CategoryDefault::Copyleft,
            ScancodeCategory::CopyleftLimited => CategoryDefault::WeakCopyleft,
            ScancodeCategory::FreeRestricted
            | ScancodeCategory::ProprietaryFree
            | ScancodeCategory::SourceAvailable
            | ScancodeCategory::Commercial
            | ScancodeCategory::PatentLicense
            | ScancodeCategory::Cla
            | ScancodeCategory::UnstatedLicense => CategoryDefault::Restricted,
        }
    }
}

const SCANCODE_TOML: &str = include_str!("../catalog/scancode-categories.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScancodeFile {
    // Provenance, checked for presence; the header comment says the rest.
    #[serde(rename = "source")]
    _source: String,
    #[serde(rename = "spdx_list_version")]
    _spdx_list_version: String,
    #[serde(rename = "retrieved")]
    _retrieved: String,
    category: HashMap<String, String>,
}

const REVIEWED_TOML: &str = include_str!("../catalog/reviewed-categories.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewedFile {
    category: HashMap<String, ReviewedEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewedEntry {
    category: String,
    why: String,
}

/// The reviewed table: every id must be on the SPDX list and unknown to the ScanCode data
/// (so the two never disagree), and every entry must say why.
fn reviewed_categories(toml: &str) -> Result<HashMap<String, (ScancodeCategory, String)>, String> {
    let file: ReviewedFile =
        toml::from_str(toml).map_err(|e| format!("reviewed-categories: {e}"))?;
    file.category
        .into_iter()
        .map(|(id, e)| {
            let category = ScancodeCategory::parse(&e.category).ok_or_else(|| {
                format!("reviewed-categories: {id}: unknown category {}", e.category)
            })?;
            if spdx::license_id(&id).is_none() {
                return Err(format!("reviewed-categories: {id} is not an SPDX id"));
            }
            if e.why.trim().is_empty() {
                return Err(format!("reviewed-categories: {id}: no reason given"));
            }
            Ok((id.to_lowercase(), (category, e.why)))
        })
        .collect()
}

fn scancode_categories(toml: &str) -> Result<HashMap<String, ScancodeCategory>, String> {
    let file: ScancodeFile =
        toml::from_str(toml).map_err(|e| format!("scancode-categories: {e}"))?;
    file.category
        .into_iter()
        .map(|(id, name)| {
            ScancodeCategory::parse(&name)
                .map(|c| (id.to_lowercase(), c))
                .ok_or_else(|| format!("scancode-categories: {id}: unknown category {name}"))
        })
        .collect()
}

/// Whether a licence text speaks of non-commercial use (a copyleft licence that limits
/// commercial use or distribution).
fn mentions_noncommercial(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("noncommercial") || lower.contains("non-commercial")
}

/// A short notice-style grant ("Permission is hereby granted ... to use, copy, modify") with
/// no word on commercial use, field of use or conduct: the many one-off permissive licences
/// on the SPDX list that are neither OSI-approved nor FSF-libre.
fn permissive_text(text: &str) -> bool {
    let lower = text.to_lowercase();
    let grants = [
        "permission is hereby granted",
        "permission to use, copy, modify",
        "redistribution and use in source and binary forms",
        "may be freely",
        "you may copy",
        "free to use, copy, modify",
    ]
    .iter()
    .any(|g| lower.contains(g));
    let limits = [
        "commercial",
        "not evil",
        "military",
        "must not be sold",
        "may not be sold",
        "shall not be sold",
        "for personal use",
        "fee",
        "human rights",
        "source code of",
        "same license",
        "same terms",
    ]
    .iter()
    .any(|w| lower.contains(w));
    grants && !limits && text.len() < 12_000
}

fn openness(t: &Terms) -> String {
    let class = if t.is_unknown() {
        "unknown"
    } else if t.commercial == Commercial::No || !t.production {
        "non-commercial"
    } else if t.osi_approved {
        "open-source"
    } else if t.has_category("use-restricted") || t.has_category("community") {
        "open-weights-restricted"
    } else {
        "open"
    };
    class.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_catalog_loads_and_resolves_tags() {
        let c = catalog();
        assert_eq!(c.resolve_key("apache-2.0").as_deref(), Some("Apache-2.0"));
        assert_eq!(
            c.resolve_key("LLAMA3.1").as_deref(),
            Some("LicenseRef-scancode-llama-3.1-license-2024")
        );
        assert_eq!(
            c.resolve_key("cc-by-sa-3.0").as_deref(),
            Some("CC-BY-SA-3.0")
        );
        assert_eq!(c.resolve_key("no-such-thing"), None);
        assert!(!c.texts("LicenseRef-Gemma-ToU").is_empty());
        assert!(c.get("Apache-2.0").unwrap().osi_approved);
        assert_eq!(c.get("Apache-2.0").unwrap().openness, "open-source");
        assert_eq!(c.get("OpenMDW-1.0").unwrap().openness, "open");
        assert_eq!(
            c.get("LicenseRef-Gemma-ToU").unwrap().openness,
            "open-weights-restricted"
        );
        assert_eq!(
            c.get("LicenseRef-Apple-AMLR").unwrap().openness,
            "non-commercial"
        );
    }

    #[test]
    fn spdx_ids_get_category_defaults() {
        let c = catalog();
        assert!(c.terms("EPL-2.0").has_category("weak-copyleft"));
        assert!(c.terms("AGPL-3.0-or-later").has_category("copyleft"));
        assert_eq!(c.terms("CC-BY-NC-3.0").commercial, Commercial::No);
        assert!(c.terms("Zlib").has_category("permissive"));
        assert!(c.terms("LicenseRef-whatever").is_unknown());
        assert!(
            c.terms("Apache-2.0 WITH LLVM-exception")
                .has_category("permissive")
        );
    }

    #[test]
    fn scancode_categories_fill_spdx_ids_without_an_spdx_signal() {
        let c = catalog();
        assert!(c.scancode.len() >= 690, "{}", c.scancode.len());
        // Formerly unknown; their SPDX texts grant use for any purpose, commercial included.
        for (id, grant) in [
            (
                "Cube",
                "to use this software for any purpose, including commercial applications",
            ),
            (
                "UnixCrypt",
                "for non-commercial or commercial purposes and without fee",
            ),
            (
                "Graphics-Gems",
                "permitted in any program, product, or library, non-commercial",
            ),
        ] {
            assert_eq!(c.scancode[&id.to_lowercase()], ScancodeCategory::Permissive);
            assert!(spdx::license_id(id).unwrap().text().contains(grant), "{id}");
            let t = c.terms(id);
            assert!(t.has_category("permissive") && !t.curated, "{id}: {t:?}");
            assert_eq!(t.commercial, Commercial::Yes, "{id}");
            assert!(t.notes.as_deref().unwrap().contains("ScanCode"), "{id}");
        }
        // Licence Art Libre 1.3: derivatives "avec la même licence", "les principes du copyleft".
        let lal = spdx::license_id("LAL-1.3").unwrap().text();
        assert!(lal.contains("principes du copyleft") && lal.contains("avec la même licence"));
        assert_eq!(c.scancode["lal-1.3"], ScancodeCategory::Copyleft);
        let t = c.terms("LAL-1.3");
        assert!(t.has_category("copyleft") && t.share_alike);
        assert_eq!(
            (t.commercial, t.derivatives),
            (Commercial::Yes, Derivatives::SameLicense)
        );
        // The Non-Commercial Government Licence (ScanCode: Free Restricted) grants use "for
        // Non-Commercial purposes only"; its SPDX name says so.
        let ncgl = spdx::license_id("NCGL-UK-2.0").unwrap().text();
        assert!(ncgl.contains("to use the Information for Non-Commercial purposes only"));
        assert_eq!(c.scancode["ncgl-uk-2.0"], ScancodeCategory::FreeRestricted);
        let t = c.terms("NCGL-UK-2.0");
        assert_eq!(t.commercial, Commercial::No);
        assert!(t.has_category("noncommercial"));
        // Source-available (BUSL: "non-production use") and the ScanCode copylefts whose text
        // limits commercial use (Aladdin) need a person before commercial use.
        let t = c.terms("BUSL-1.1");
        assert!(t.has_category("use-restricted"), "{t:?}");
        assert_eq!(t.commercial, Commercial::Conditional);
        let t = c.terms("Aladdin");
        assert!(t.has_category("copyleft"));
        assert_eq!(t.commercial, Commercial::Conditional);
    }

    #[test]
    fn spdx_ids_newer_than_the_scancode_data_take_their_reviewed_category() {
        let c = catalog();
        assert!(c.reviewed.len() >= 30, "{}", c.reviewed.len());
        for (key, (category, why)) in &c.reviewed {
            // The two tables never both speak for an id.
            assert!(
                !c.scancode.contains_key(key),
                "{key} is in the ScanCode data too"
            );
            let id = spdx::identifiers::LICENSES
                .iter()
                .find(|l| l.name.eq_ignore_ascii_case(key))
                .unwrap()
                .name;
            let t = c.terms(id);
            assert!(!t.is_unknown(), "{id}: {t:?}");
            assert!(t.notes.as_deref().unwrap().contains(why.as_str()), "{id}");
            assert_eq!(
                t.commercial == Commercial::Yes,
                category.default_terms() != CategoryDefault::Restricted,
                "{id}: {t:?}"
            );
        }
        // The permissive type of the ESA licence, from its text.
        let esa = spdx::license_id("ESA-PL-permissive-2.4").unwrap().text();
        assert!(esa.contains("Permissive (Type 3)"));
        let t = c.terms("ESA-PL-permissive-2.4");
        assert!(t.has_category("permissive") && t.commercial == Commercial::Yes);
        assert!(
            c.terms("ESA-PL-strong-copyleft-2.4")
                .has_category("copyleft")
        );
        // A BSD name does not make a licence permissive: Open WebUI's clause 4 keeps the
        // branding above fifty users, so commercial use needs a person.
        let owui = spdx::license_id("BSD-3-Clause-OpenWebUI").unwrap().text();
        assert!(owui.contains("fifty (50)") && owui.contains("branding"));
        let t = c.terms("BSD-3-Clause-OpenWebUI");
        assert!(!t.has_category("permissive"), "{t:?}");
        assert_eq!(t.commercial, Commercial::Conditional);
        // UnRAR may not be used to re-create the RAR algorithm.
        assert!(
            spdx::license_id("UnRAR")
                .unwrap()
                .text()
                .contains("re-create RAR")
        );
        assert_eq!(c.terms("UnRAR").commercial, Commercial::Conditional);
        // NOASSERTION says nothing is known: it stays unknown.
        assert!(c.terms("NOASSERTION").is_unknown());
    }

    #[test]
    fn reviewed_categories_reject_unknown_ids_categories_and_missing_reasons() {
        let entry = |id: &str, cat: &str, why: &str| {
            format!("[category.\"{id}\"]\ncategory = \"{cat}\"\nwhy = \"{why}\"\n")
        };
        assert!(reviewed_categories(&entry("UnRAR", "Free Restricted", "x")).is_ok());
        for bad in [
            entry("Not-An-Id", "Permissive", "x"),
            entry("UnRAR", "Liberal", "x"),
            entry("UnRAR", "Permissive", " "),
        ] {
            assert!(reviewed_categories(&bad).is_err(), "{bad}");
        }
        assert!(reviewed_categories(REVIEWED_TOML).is_ok());
    }

    #[test]
    fn curated_terms_and_spdx_signals_override_scancode_categories() {
        let c = catalog();
        // Curated: unchanged whatever ScanCode says.
        let apache = c.terms("Apache-2.0");
        assert!(apache.curated && apache.patent_grant);
        assert_eq!(apache.categories, ["permissive"]);
        assert_eq!(c.scancode["json"], ScancodeCategory::Permissive);
        let json = c.terms("JSON");
        assert!(json.curated && json.has_category("use-restricted"));
        assert_eq!(json.commercial, Commercial::Conditional);
        // An SPDX id that a curated entry lists as an alias takes that entry's terms
        // (ScanCode files C-UDA-1.0 under Free Restricted).
        assert_eq!(c.scancode["c-uda-1.0"], ScancodeCategory::FreeRestricted);
        let cuda = c.terms("C-UDA-1.0");
        assert!(cuda.curated && cuda.results_unrestricted);
        assert_eq!(cuda.commercial, Commercial::Yes);
        // Every curated SPDX id keeps its curated terms.
        for t in c.licenses() {
            assert!(c.terms(&t.id).curated, "{}", t.id);
        }
        // SPDX signals: ScanCode calls CC-BY-NC-3.0 "Source-available" and CERN-OHL-S-2.0
        // "Copyleft"; the -NC name and the OSI flag decide.
        assert_eq!(
            c.scancode["cc-by-nc-3.0"],
            ScancodeCategory::SourceAvailable
        );
        assert_eq!(c.terms("CC-BY-NC-3.0").commercial, Commercial::No);
        assert!(c.terms("EPL-2.0").has_category("weak-copyleft"));
        // Before the family guesses: ScanCode files the Arphic licence under Copyleft and the
        // BSD no-nuclear variant under Free Restricted.
        assert!(c.terms("Arphic-1999").has_category("copyleft"));
        assert_eq!(
            c.terms("BSD-3-Clause-No-Nuclear-License").commercial,
            Commercial::Conditional
        );
    }

    #[test]
    fn scancode_data_rejects_unknown_categories() {
        let bad = "source = \"x\"\nspdx_list_version = \"3.27\"\nretrieved = \"2026-12-06\"\n\
                   [category]\n\"MIT\" = \"Mostly Harmless\"\n";
        assert!(
            scancode_categories(bad)
                .unwrap_err()
                .contains("Mostly Harmless")
        );
        assert!(scancode_categories(SCANCODE_TOML).is_ok());
    }

    #[test]
    fn upstream_patterns_match_case_insensitively() {
        let c = catalog();
        assert_eq!(
            c.upstream_model("meta-llama/llama-3.1-8b").unwrap().license,
            "llama3.1"
        );
        assert_eq!(
            c.upstream_model("Qwen/Qwen2.5-3B-Instruct")
                .unwrap()
                .license,
            "qwen-research"
        );
        assert_eq!(
            c.upstream_model("Qwen/Qwen2.5-7B").unwrap().license,
            "apache-2.0"
        );
        assert_eq!(
            c.upstream_model("Llama-2-70b-chat").unwrap().license,
            "llama2"
        );
        assert!(c.upstream_model("acme/unknown").is_none());
    }
}
