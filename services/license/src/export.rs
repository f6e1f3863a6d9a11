//! Bills of materials for a model revision: an SPDX 3.0.1 JSON-LD document with the AI and
//! Dataset profiles, and a CycloneDX 1.6 ML-BOM. Both carry the files with their sha256, the
//! lineage, and the declared and concluded (effective) licences.

use serde_json::{Value, json};

use crate::report::{LineageNode, Report};

/// One file of the revision.
pub struct ExportFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// What the documents describe.
pub struct ExportInput<'a> {
    /// The hub's public base URL, e.g. `https://hub.example`.
    pub base_url: &'a str,
    pub repository: &'a str,
    pub commit: &'a str,
    /// RFC 3339 creation time.
    pub created: &'a str,
    pub report: &'a Report,
    pub files: &'a [ExportFile],
    pub tool_version: &'a str,
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// SPDX 3.0.1 JSON-LD.
pub fn spdx3(input: &ExportInput) -> Value {
    let base = input.base_url.trim_end_matches('/');
    let ns = format!("{base}/spdx/{}/{}", input.repository, input.commit);
    let agent = format!("{base}/spdx/agent/kaiyuan");
    let model = format!("{ns}/model");
    let mut g = SpdxGraph::new(ns, input.created, &agent);

    g.add(
        model.clone(),
        json!({
            "type": "ai_AIPackage",
            "spdxId": model,
            "creationInfo": CREATION_INFO,
            "name": input.repository,
            "software_packageVersion": input.commit,
            "software_downloadLocation": format!("{base}/{}", input.repository),
            "software_packageUrl": format!("pkg:huggingface/{}@{}", input.repository, input.commit),
            "software_primaryPurpose": "model",
            "suppliedBy": agent,
            "comment": format!("licence decision for commercial use: {}", input.report.decision.as_str()),
        }),
    );
    let declared = input.report.expression.as_deref().unwrap_or("NOASSERTION");
    g.licensed(&model, "hasDeclaredLicense", declared, None);
    let concluded = input.report.effective.as_deref().unwrap_or("NOASSERTION");
    g.licensed(&model, "hasConcludedLicense", concluded, None);
    g.files(&model, input.files);
    for (i, node) in input.report.lineage.iter().enumerate() {
        g.lineage_node(&model, base, i, node);
    }

    g.finish(format!("{} at {}", input.repository, input.commit), &model)
}

const CREATION_INFO: &str = "_:creationinfo";

/// An SPDX 3 graph being built: every element added is listed in the document.
struct SpdxGraph {
    /// Namespace of the document's element ids.
    ns: String,
    graph: Vec<Value>,
    elements: Vec<String>,
    relationships: usize,
    licenses: usize,
}

impl SpdxGraph {
    /// A graph holding the creation info and the agent that created it.
    fn new(ns: String, created: &str, agent: &str) -> Self {
        SpdxGraph {
            ns,
            graph: vec![
                json!({"type": "CreationInfo", "@id": CREATION_INFO, "specVersion": "3.0.1", "created": created, "createdBy": [agent]}),
                json!({"type": "Organization", "spdxId": agent, "name": "kaiyuan hub", "creationInfo": CREATION_INFO}),
            ],
            elements: vec![agent.to_string()],
            relationships: 0,
            licenses: 0,
        }
    }

    fn add(&mut self, id: String, element: Value) {
        self.graph.push(element);
        self.elements.push(id);
    }

    fn relationship(&mut self, from: &str, kind: &str, to: Vec<String>, comment: Option<&str>) {
        self.relationships += 1;
        let id = format!("{}/relationship/{}", self.ns, self.relationships);
        let mut r = json!({"type": "Relationship", "spdxId": id, "creationInfo": CREATION_INFO, "from": from, "relationshipType": kind, "to": to});
        if let Some(c) = comment {
            r["comment"] = json!(c);
        }
        self.add(id, r);
    }

    /// A licence expression element, and a relationship of kind `kind` from `from` to it.
    fn licensed(&mut self, from: &str, kind: &str, expr: &str, comment: Option<&str>) {
        self.licenses += 1;
        let id = format!("{}/license/{}", self.ns, self.licenses);
        self.add(
            id.clone(),
            json!({"type": "simplelicensing_LicenseExpression", "spdxId": id, "creationInfo": CREATION_INFO, "simplelicensing_licenseExpression": expr}),
        );
        self.relationship(from, kind, vec![id], comment);
    }

    /// The revision's files with their hashes, contained in the model.
    fn files(&mut self, model: &str, files: &[ExportFile]) {
        let mut file_ids = vec![];
        for (i, f) in files.iter().enumerate() {
            let id = format!("{}/file/{i}", self.ns);
            self.add(
                id.clone(),
                json!({
                    "type": "software_File",
                    "spdxId": id,
                    "creationInfo": CREATION_INFO,
                    "name": f.path,
                    "verifiedUsing": [{"type": "Hash", "algorithm": "sha256", "hashValue": f.sha256}],
                    "comment": format!("{} bytes", f.size),
                }),
            );
            file_ids.push(id);
        }
        if !file_ids.is_empty() {
            self.relationship(model, "contains", file_ids, None);
        }
    }

    /// One upstream base, teacher or dataset, its relation to the model, and its licence.
    fn lineage_node(&mut self, model: &str, base: &str, i: usize, node: &LineageNode) {
        let id = format!("{}/lineage/{i}-{}", self.ns, slug(&node.id));
        let mut element = match node.kind.as_str() {
            "dataset" => {
                json!({"type": "dataset_DatasetPackage", "software_primaryPurpose": "data", "dataset_datasetType": ["noAssertion"]})
            }
            _ => json!({"type": "ai_AIPackage", "software_primaryPurpose": "model"}),
        };
        element["spdxId"] = json!(id);
        element["creationInfo"] = json!(CREATION_INFO);
        element["name"] = json!(node.id);
        element["software_downloadLocation"] = json!(if node.source == "hub" {
            format!("{base}/{}", node.id)
        } else {
            format!("https://huggingface.co/{}", node.id)
        });
        self.add(id.clone(), element);
        let (kind, comment) = match node.kind.as_str() {
            "dataset" => ("trainedOn", None),
            "teacher" => ("other", Some("trained on outputs of (distillation)")),
            _ => ("descendantOf", node.relation.as_deref()),
        };
        self.relationship(model, kind, vec![id.clone()], comment);
        self.licensed(
            &id,
            "hasConcludedLicense",
            node.license.as_deref().unwrap_or("NOASSERTION"),
            Some(&format!("source: {}", node.source)),
        );
    }

    /// The JSON-LD document; the document element follows the creation info and the agent.
    fn finish(mut self, name: String, root: &str) -> Value {
        let doc = format!("{}/document", self.ns);
        let document = json!({
            "type": "SpdxDocument",
            "spdxId": doc,
            "creationInfo": CREATION_INFO,
            "name": name,
            "profileConformance": ["core", "software", "simpleLicensing", "ai", "dataset"],
            "rootElement": [root],
            "element": self.elements,
        });
        self.graph.insert(2, document);
        json!({"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": self.graph})
    }
}

/// A UUID (version 4 layout) derived from the revision, so the same revision gets the same
/// serial number.
fn serial(repository: &str, commit: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h1 = std::collections::hash_map::DefaultHasher::new();
    (repository, commit, 1u8).hash(&mut h1);
    let mut h2 = std::collections::hash_map::DefaultHasher::new();
    (commit, repository, 2u8).hash(&mut h2);
    let (a, b) = (h1.finish(), h2.finish());
    format!(
        "urn:uuid:{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a as u16 & 0x0fff,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// CycloneDX 1.6 ML-BOM.
pub fn cyclonedx(input: &ExportInput) -> Value {
    let base = input.base_url.trim_end_matches('/');
    let r = input.report;
    let mut model = json!({
        "type": "machine-learning-model",
        "bom-ref": "model",
        "name": input.repository,
        "version": input.commit,
        "purl": format!("pkg:huggingface/{}@{}", input.repository, input.commit),
        "externalReferences": [{"type": "distribution", "url": format!("{base}/{}", input.repository)}],
    });
    if let Some(e) = &r.effective {
        model["licenses"] = json!([{"expression": e}]);
    }
    let mut properties =
        vec![json!({"name": "kaiyuan:license-decision", "value": r.decision.as_str()})];
    if let Some(d) = &r.expression {
        properties.push(json!({"name": "kaiyuan:declared-license", "value": d}));
    }
    for f in &r.findings {
        properties.push(json!({"name": format!("kaiyuan:finding:{}", f.code), "value": f.message}));
    }
    model["properties"] = json!(properties);
    let mut ancestors = vec![];
    let mut components = vec![];
    let mut dataset_refs = vec![];
    for (i, node) in r.lineage.iter().enumerate() {
        let bom_ref = format!("{}:{i}", node.kind);
        let mut c = json!({"bom-ref": bom_ref, "name": node.id});
        if let Some(l) = &node.license {
            c["licenses"] = json!([{"expression": l}]);
        }
        if node.kind == "dataset" {
            c["type"] = json!("data");
            c["data"] = json!([{"type": "dataset", "name": node.id}]);
            dataset_refs.push(json!({"ref": bom_ref}));
            components.push(c);
        } else {
            c["type"] = json!("machine-learning-model");
            c["description"] = json!(format!(
                "{} ({})",
                node.kind,
                node.relation.as_deref().unwrap_or("derivative")
            ));
            ancestors.push(c);
        }
    }
    if !ancestors.is_empty() {
        model["pedigree"] = json!({"ancestors": ancestors});
    }
    let ethical: Vec<Value> = r
        .obligations
        .iter()
        .map(|o| json!({"name": o, "mitigationStrategy": "obligation of the licence terms"}))
        .collect();
    let mut card = json!({});
    if !dataset_refs.is_empty() {
        card["modelParameters"] = json!({"datasets": dataset_refs});
    }
    if !ethical.is_empty() {
        card["considerations"] = json!({"ethicalConsiderations": ethical});
    }
    if card.as_object().is_some_and(|o| !o.is_empty()) {
        model["modelCard"] = card;
    }
    let files: Vec<Value> = input
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| json!({"type": "file", "bom-ref": format!("file:{i}"), "name": f.path, "hashes": [{"alg": "SHA-256", "content": f.sha256}], "properties": [{"name": "kaiyuan:size", "value": f.size.to_string()}]}))
        .collect();
    let file_refs: Vec<Value> = (0..input.files.len())
        .map(|i| json!(format!("file:{i}")))
        .collect();
    let mut depends: Vec<Value> = components.iter().map(|c| c["bom-ref"].clone()).collect();
    depends.extend(file_refs.iter().cloned());
    components.insert(0, model);
    components.extend(files);
    let mut dependencies = vec![json!({"ref": "model", "dependsOn": depends})];
    dependencies.extend(file_refs.iter().map(|f| json!({"ref": f, "dependsOn": []})));
    for c in components.iter().skip(1) {
        if c["type"] == "data" {
            dependencies.push(json!({"ref": c["bom-ref"], "dependsOn": []}));
        }
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial(input.repository, input.commit),
        "version": 1,
        "metadata": {
            "timestamp": input.created,
            "tools": {"components": [{"type": "application", "name": "kaiyuan", "version": input.tool_version}]},
            "component": {"type": "machine-learning-model", "bom-ref": "root", "name": input.repository, "version": input.commit},
        },
        "components": components,
        "dependencies": dependencies,
    })
}
