//! `imagegate check`: would these manifests be admitted?
//!
//! Every object read from the input ([`manifests`]) becomes the CREATE the
//! API server would send for it ([`admission::create_request`]) and is
//! evaluated by the policy module with the same runtime and capability
//! dispatcher as `imagegate run`: one compiled module, a fresh instance per
//! object (as policy-server), the payload asking `imagegate_explain` so the
//! module adds its per-image reports to the very response it would give
//! policy-server. Each image's row comes from those reports, never from the
//! message text.
//!
//! Offline by default: [`OfflineChecks`] answers every registry or Notary
//! check with [`NOT_VERIFIED_OFFLINE`], so an image that needs one is
//! denied and shown as not verified offline; `--online` (the live host) or
//! a replayed session answers them for real.
//!
//! The host also lists the images it sees in objects the module reads none
//! from (a custom resource with a pod template, say): the cluster would not
//! send those to imagegate either, and the output says so.

pub mod junit;
pub mod manifests;
pub mod output;
pub mod sarif;

use std::time::Instant;

use imagegate_policy::wire::ImageReport;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::capabilities::{Backend, Request};
use crate::positions::Position;
use crate::runtime::admission::{self, AdmissionResponse, Requester};
use crate::runtime::Policy;
use manifests::{Manifest, Skipped, Source};

/// The error text of every check [`OfflineChecks`] refuses.
pub const NOT_VERIFIED_OFFLINE: &str = "not verified offline";

/// The backend of an offline check: nothing is asked of any registry.
pub struct OfflineChecks;

impl Backend for OfflineChecks {
    fn answer(&self, _: &Request, _: Option<Instant>) -> Result<Vec<u8>, String> {
        Err(format!(
            "{NOT_VERIFIED_OFFLINE}: pass --online, or replay a recorded session"
        ))
    }
}

/// What became of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Allowed,
    Warned,
    Denied,
    /// Denied because a check it needs could not run offline.
    NotVerifiedOffline,
    Exempt,
    /// In an object the policy reads no images from.
    Unchecked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Allowed => "allowed",
            Status::Warned => "warned",
            Status::Denied => "denied",
            Status::NotVerifiedOffline => NOT_VERIFIED_OFFLINE,
            Status::Exempt => "exempt",
            Status::Unchecked => "unchecked",
        }
    }

    /// Whether the cluster would reject the object for this image.
    pub fn is_denial(self) -> bool {
        matches!(self, Status::Denied | Status::NotVerifiedOffline)
    }
}

/// One image of one object.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    pub status: Status,
    /// Where the image is written, when the input is YAML (or JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(flatten)]
    pub report: ImageReport,
}

/// One object, with the response the module gave for its CREATE.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    #[serde(flatten)]
    pub source: Source,
    /// Where the object starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub api_version: String,
    pub kind: String,
    /// `None` for the kinds without one (a Namespace, a ClusterRole...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub allowed: bool,
    /// The rejection message, as the API server would return it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub images: Vec<ImageResult>,
}

impl ObjectResult {
    /// `shop/web`, or `payments` for a Namespace (or any object without a
    /// namespace).
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// `Deployment shop/web`, `Namespace payments`.
    pub fn title(&self) -> String {
        format!("{} {}", self.kind, self.qualified_name())
    }

    /// Rejected for a reason no image row carries (an unreadable workload,
    /// a timeout, an error of the module).
    pub fn denied_as_a_whole(&self) -> bool {
        !self.allowed && !self.images.iter().any(|i| i.status.is_denial())
    }
}

/// Every object's results and what was skipped: what the outputs print.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub objects: Vec<ObjectResult>,
    pub skipped: Vec<Skipped>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub objects: usize,
    pub rejected_objects: usize,
    pub images: usize,
    pub allowed: usize,
    pub warned: usize,
    pub denied: usize,
    pub not_verified_offline: usize,
    pub exempt: usize,
    pub unchecked: usize,
    pub skipped_documents: usize,
}

impl Checked {
    /// Whether the cluster would admit every object.
    pub fn all_admitted(&self) -> bool {
        self.objects.iter().all(|o| o.allowed)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            objects: self.objects.len(),
            rejected_objects: self.objects.iter().filter(|o| !o.allowed).count(),
            skipped_documents: self.skipped.len(),
            ..Summary::default()
        };
        for image in self.objects.iter().flat_map(|o| &o.images) {
            s.images += 1;
            *match image.status {
                Status::Allowed => &mut s.allowed,
                Status::Warned => &mut s.warned,
                Status::Denied => &mut s.denied,
                Status::NotVerifiedOffline => &mut s.not_verified_offline,
                Status::Exempt => &mut s.exempt,
                Status::Unchecked => &mut s.unchecked,
            } += 1;
        }
        s
    }
}

/// Evaluates every manifest with `policy` (its capabilities decide what
/// checks can run) and `settings`, already validated.
pub fn check(
    policy: &Policy,
    settings: &Map<String, Value>,
    manifests: Vec<Manifest>,
    skipped: Vec<Skipped>,
    requester: &Requester,
) -> Checked {
    let objects = manifests
        .into_iter()
        .map(|m| check_one(policy, settings, m, requester))
        .collect();
    Checked { objects, skipped }
}

fn check_one(
    policy: &Policy,
    settings: &Map<String, Value>,
    manifest: Manifest,
    requester: &Requester,
) -> ObjectResult {
    let text = |pointer: &str| {
        manifest
            .object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut result = ObjectResult {
        source: manifest.source.clone(),
        line: manifest.start().map(|p| p.line),
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        namespace: admission::object_namespace(&manifest.object, requester),
        name: match text("/metadata/name") {
            name if name.is_empty() => text("/metadata/generateName"),
            name => name,
        },
        allowed: false,
        message: None,
        warnings: Vec::new(),
        images: Vec::new(),
    };
    let (response, reports) = match admission::create_request(manifest.object.clone(), requester) {
        Ok(request) => admission::explain(&mut &*policy, &request, settings),
        Err(e) => (
            AdmissionResponse::reject("", format!("cannot make its CREATE request: {e:#}"), 400),
            Vec::new(),
        ),
    };
    result.allowed = response.allowed;
    result.message = response.status.and_then(|s| s.message);
    result.warnings = response.warnings.unwrap_or_default();
    let locate = |pointer: &str| manifest.position(pointer);
    result.images = if reports.is_empty() && result.allowed {
        unchecked_images(&manifest.object, &result.kind, &locate)
    } else {
        reports
            .into_iter()
            .map(|report| image_result(report, &locate))
            .collect()
    };
    result
}

fn image_result(report: ImageReport, locate: &dyn Fn(&str) -> Option<Position>) -> ImageResult {
    let offline = |text: &str| text.contains(NOT_VERIFIED_OFFLINE);
    let status = match report.decision.as_str() {
        "allowed" => Status::Allowed,
        "warned" => Status::Warned,
        "exempt" => Status::Exempt,
        _ if report
            .checks
            .iter()
            .filter_map(|c| c.error.as_deref())
            .chain(report.reason.as_deref())
            .any(offline) =>
        {
            Status::NotVerifiedOffline
        }
        _ => Status::Denied,
    };
    let position = locate(&report.pointer);
    ImageResult {
        status,
        line: position.map(|p| p.line),
        column: position.map(|p| p.column),
        report,
    }
}

/// The images of an object the module reads none from: every string under
/// an `image` key (containers) and every `image.reference` (image volumes).
fn unchecked_images(
    object: &Value,
    kind: &str,
    locate: &dyn Fn(&str) -> Option<Position>,
) -> Vec<ImageResult> {
    fn walk(value: &Value, pointer: String, found: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let at = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                    match (key.as_str(), child) {
                        ("image", Value::String(image)) => found.push((at, image.clone())),
                        ("image", Value::Object(volume)) => {
                            if let Some(Value::String(image)) = volume.get("reference") {
                                found.push((format!("{at}/reference"), image.clone()));
                            }
                        }
                        _ => walk(child, at, found),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{pointer}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(object, String::new(), &mut found);
    found
        .into_iter()
        .map(|(pointer, image)| {
            let position = locate(&pointer);
            ImageResult {
                status: Status::Unchecked,
                line: position.map(|p| p.line),
                column: position.map(|p| p.column),
                report: ImageReport {
                    container: pointer.clone(),
                    reason: Some(format!(
                        "not checked: imagegate reads no images from {kind} objects, and the API server does not send them to it"
                    )),
                    decision: Status::Unchecked.as_str().to_string(),
                    pointer,
                    image,
                    ..ImageReport::default()
                },
            }
        })
        .collect()
}
