//! The workloads file: which pods, services and external endpoints own
//! which IP addresses (and ports), and when. It is read once, checked
//! strictly and validated into [`Workloads`], which the [`crate::Resolver`]
//! indexes by IP. The shape is the one a Kubernetes watcher will produce
//! later, so a file written by hand and one written by the watcher are
//! read by the same code.
//!
//! The doc comments on [`WorkloadsFile`] and [`WorkloadEntry`] are the
//! user documentation of the format. An example:
//!
//! ```yaml
//! workloads:
//!   - kind: pod            # pod | service | external
//!     name: checkout-7d9f8-abcde
//!     namespace: shop
//!     service: checkout    # optional: the service this pod backs
//!     node: node-1         # optional
//!     labels: {app: checkout, tier: backend}
//!     ips: [10.244.1.12]
//!     ports: [8080]        # optional: only these ports resolve to it
//!     valid_from: 2024-06-01T12:00:00Z   # optional, RFC 3339
//!     valid_to:   2024-06-01T13:00:00Z   # optional: reused IPs resolve by time
//!   - kind: service
//!     name: checkout
//!     namespace: shop
//!     ips: [10.96.0.15]    # the ClusterIP
//!     ports: [80]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Largest workloads file read. A cluster of 10 000 pods with a day of
/// churn is a few MiB of YAML; a file past 64 MiB is almost certainly the
/// wrong file (a capture, a log), and reading it would only delay the error.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A workloads file: one list, `workloads`, of pods, services and external
/// endpoints. YAML (`.yaml`, `.yml`) or JSON (`.json`), chosen by the file
/// name's extension. Unknown fields are errors, not ignored, so a typo
/// (`valid_form`) is reported instead of silently widening a time window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadsFile {
    /// The entries, in any order. When two entries of the same kind claim
    /// the same IP, port and time, the one whose `valid_from` is later
    /// wins, then the one written first.
    pub workloads: Vec<WorkloadEntry>,
}

/// One workload: a pod, a service (its ClusterIP), or an external endpoint
/// (a database, a VM, a SaaS API: anything outside the cluster that you
/// want named). Only `kind`, `name` and `ips` are always required; pods
/// and services also need a `namespace`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadEntry {
    /// `pod`, `service` or `external`. An IP that a pod and a service both
    /// claim resolves to the pod; external entries rank below services and
    /// above names learned from DNS.
    pub kind: String,
    /// The pod's, service's or endpoint's name (`src.name`, `dst.pod.name`, …).
    pub name: String,
    /// Kubernetes namespace. Required for pods and services, optional for
    /// external endpoints.
    #[serde(default)]
    pub namespace: Option<String>,
    /// For a pod: the service it backs (same namespace). Calls to or from
    /// the pod then carry `service.name` too, so `dst.service.name ==
    /// "checkout"` matches calls that went straight to a checkout pod.
    #[serde(default)]
    pub service: Option<String>,
    /// The node the pod runs on. Kept for `list_workloads`; not used to
    /// resolve.
    #[serde(default)]
    pub node: Option<String>,
    /// Labels, copied to `src.labels` / `dst.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The addresses this workload owns: IPv4 (`10.244.1.12`) or IPv6
    /// (`fd00::12`; quote IPv6 addresses in YAML flow lists,
    /// `ips: ["fd00::12"]`). At least one.
    pub ips: Vec<String>,
    /// When set, only these ports resolve to this workload (1–65535).
    /// Port-specific entries win over port-less entries for the same IP:
    /// use them for host-network pods that share their node's address.
    /// The client side of a call has an ephemeral port, so port-specific
    /// entries name servers.
    #[serde(default)]
    pub ports: Vec<u32>,
    /// First instant this workload owned its IPs (RFC 3339, e.g.
    /// `2024-06-01T12:00:00Z` or `2024-06-01T14:00:00+02:00`); inclusive.
    /// Absent: since forever.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// First instant it no longer did; exclusive, so a pod whose
    /// `valid_to` equals its successor's `valid_from` never overlaps it.
    /// Absent: still owns them.
    #[serde(default)]
    pub valid_to: Option<String>,
}

/// What a workload is. Order is precedence, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    Pod,
    Service,
    External,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "pod",
            WorkloadKind::Service => "service",
            WorkloadKind::External => "external",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validated entry. Times are nanoseconds since the Unix epoch, the
/// unit of [`trawl_model::Call::timestamp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    /// Empty for an external endpoint written without one.
    pub namespace: String,
    /// For a pod: the service it backs.
    pub service: Option<String>,
    pub node: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    /// Empty: every port.
    pub ports: Vec<u16>,
    /// Inclusive; `None` is unbounded.
    pub valid_from: Option<i64>,
    /// Exclusive; `None` is unbounded.
    pub valid_to: Option<i64>,
}

impl Workload {
    /// True when this workload owned its IPs at `ts_ns`.
    pub fn valid_at(&self, ts_ns: i64) -> bool {
        self.valid_from.is_none_or(|from| ts_ns >= from)
            && self.valid_to.is_none_or(|to| ts_ns < to)
    }

    /// True when `port` resolves to this workload (any port when it lists none).
    pub fn serves_port(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }
}

/// A validated workloads file: every IP parsed, every time window sound.
/// Build it with [`Workloads::load`], [`Workloads::from_yaml`],
/// [`Workloads::from_json`] or [`Workloads::validate`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workloads {
    entries: Vec<Workload>,
}

impl Workloads {
    /// Reads and validates a workloads file; YAML or JSON by extension.
    pub fn load(path: &Path) -> Result<Workloads, WorkloadsError> {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => {
                Format::Yaml
            }
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => {
                return Err(WorkloadsError::Extension {
                    path: path.to_path_buf(),
                });
            }
        };
        let io_err = |source| WorkloadsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len > MAX_FILE_BYTES {
            return Err(WorkloadsError::TooLarge {
                path: path.to_path_buf(),
                len,
            });
        }
        let mut text = String::new();
        // `take` guards against a file that grows between the check and the read.
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io_err)?;
        let name = path.display().to_string();
        match format {
            Format::Yaml => Workloads::from_yaml(&text, &name),
            Format::Json => Workloads::from_json(&text, &name),
        }
    }

    /// Parses and validates YAML text; `source` names it in errors.
    pub fn from_yaml(text: &str, source: &str) -> Result<Workloads, WorkloadsError> {
        let file: WorkloadsFile =
            serde_norway::from_str(text).map_err(|e| WorkloadsError::Yaml {
                source_name: source.to_owned(),
                source: e,
            })?;
        Workloads::validate(file, source)
    }

    /// Parses and validates JSON text; `source` names it in errors.
    pub fn from_json(text: &str, source: &str) -> Result<Workloads, WorkloadsError> {
        let file: WorkloadsFile = serde_json::from_str(text).map_err(|e| WorkloadsError::Json {
            source_name: source.to_owned(),
            source: e,
        })?;
        Workloads::validate(file, source)
    }

    /// Validates a parsed file (or one a watcher built). Every problem is
    /// reported, not only the first, each naming its entry and field.
    pub fn validate(file: WorkloadsFile, source: &str) -> Result<Workloads, WorkloadsError> {
        let mut problems = Vec::new();
        let mut entries = Vec::with_capacity(file.workloads.len());
        for (index, entry) in file.workloads.into_iter().enumerate() {
            if let Some(w) = validate_entry(index, entry, &mut problems) {
                entries.push(w);
            }
        }
        if problems.is_empty() {
            Ok(Workloads { entries })
        } else {
            Err(WorkloadsError::Invalid {
                source_name: source.to_owned(),
                problems,
            })
        }
    }

    pub fn entries(&self) -> &[Workload] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Clone, Copy)]
enum Format {
    Yaml,
    Json,
}

/// One problem in one entry: `workloads[3].ips[1]: "10.0.0.300" is not an IP address …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Position of the entry in the `workloads` list, from 0.
    pub index: usize,
    /// The field, with a list position when it has one (`ips[1]`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workloads[{}].{}: {}",
            self.index, self.field, self.message
        )
    }
}

/// Why a workloads file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadsError {
    #[error("cannot read workloads file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "workloads file {}: unknown format; name it *.yaml, *.yml or *.json",
        path.display()
    )]
    Extension { path: PathBuf },
    #[error(
        "workloads file {} is {len} bytes, more than the {MAX_FILE_BYTES} a workloads file may have; is it the right file?",
        path.display()
    )]
    TooLarge { path: PathBuf, len: u64 },
    #[error("{source_name}: not a valid workloads file")]
    Yaml {
        source_name: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{source_name}: not a valid workloads file")]
    Json {
        source_name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{source_name}: {}", join_problems(problems))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
}

fn join_problems(problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&p.to_string());
    }
    out
}

fn validate_entry(index: usize, e: WorkloadEntry, problems: &mut Vec<Problem>) -> Option<Workload> {
    let before = problems.len();
    let mut problem = |field: String, message: String| {
        problems.push(Problem {
            index,
            field,
            message,
        })
    };
    let kind = match e.kind.as_str() {
        "pod" => Some(WorkloadKind::Pod),
        "service" => Some(WorkloadKind::Service),
        "external" => Some(WorkloadKind::External),
        other => {
            problem(
                "kind".into(),
                format!("unknown kind {other:?}; use pod, service or external"),
            );
            None
        }
    };
    if e.name.trim().is_empty() {
        problem("name".into(), "empty; every workload needs a name".into());
    }
    let namespace = e.namespace.unwrap_or_default();
    if matches!(kind, Some(WorkloadKind::Pod | WorkloadKind::Service)) && namespace.is_empty() {
        problem(
            "namespace".into(),
            format!(
                "missing; a {} lives in a namespace (write `namespace: default` if unsure)",
                kind.map_or("", WorkloadKind::as_str)
            ),
        );
    }
    if e.service.is_some() && kind != Some(WorkloadKind::Pod) && kind.is_some() {
        problem(
            "service".into(),
            format!(
                "only a pod names the service it backs; remove it from this {} entry",
                kind.map_or("", WorkloadKind::as_str)
            ),
        );
    }
    if e.service.as_deref().is_some_and(|s| s.trim().is_empty()) {
        problem(
            "service".into(),
            "empty; name the service or remove the field".into(),
        );
    }
    if e.ips.is_empty() {
        problem(
            "ips".into(),
            "empty; list at least one address, e.g. ips: [10.244.1.12]".into(),
        );
    }
    let mut ips = Vec::with_capacity(e.ips.len());
    for (i, text) in e.ips.iter().enumerate() {
        match text.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => problem(
                format!("ips[{i}]"),
                format!("{text:?} is not an IP address; write it like 10.244.1.12 or fd00::12"),
            ),
        }
    }
    let mut ports = Vec::with_capacity(e.ports.len());
    for (i, &p) in e.ports.iter().enumerate() {
        match u16::try_from(p) {
            Ok(port) if port != 0 => ports.push(port),
            _ => problem(
                format!("ports[{i}]"),
                format!("{p} is not a port; ports are 1 to 65535"),
            ),
        }
    }
    let mut time = |field: &str, text: Option<String>| -> Option<i64> {
        let text = text?;
        match parse_rfc3339_ns(&text) {
            Ok(ns) => Some(ns),
            Err(why) => {
                problem(field.into(), why);
                None
            }
        }
    };
    let valid_from = time("valid_from", e.valid_from);
    let valid_to = time("valid_to", e.valid_to);
    if let (Some(from), Some(to)) = (valid_from, valid_to)
        && from >= to
    {
        problems.push(Problem {
            index,
            field: "valid_from".into(),
            message: "is not before valid_to; the window would be empty (valid_to is exclusive)"
                .into(),
        });
    }
    if problems.len() > before {
        return None;
    }
    Some(Workload {
        kind: kind?,
        name: e.name,
        namespace,
        service: e.service,
        node: e.node,
        labels: e.labels,
        ips,
        ports,
        valid_from,
        valid_to,
    })
}

/// RFC 3339 text to nanoseconds since the Unix epoch.
fn parse_rfc3339_ns(text: &str) -> Result<i64, String> {
    let ts: jiff::Timestamp = text.parse().map_err(|e| {
        format!("{text:?} is not an RFC 3339 time ({e}); write it like 2024-06-01T12:00:00Z")
    })?;
    i64::try_from(ts.as_nanosecond()).map_err(|_| {
        format!("{text:?} is outside the years 1678 to 2262 that nanosecond timestamps cover")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
workloads:
  - kind: pod            # pod | service | external
    name: checkout-7d9f8-abcde
    namespace: shop
    service: checkout
    node: node-1
    labels: {app: checkout, tier: backend}
    ips: [10.244.1.12]
    ports: [8080]
    valid_from: 2024-06-01T12:00:00Z
    valid_to:   2024-06-01T13:00:00Z
  - kind: service
    name: checkout
    namespace: shop
    ips: [10.96.0.15]
    ports: [80]
  - kind: external
    name: billing-db
    ips:
      - fd00::5
      - 192.0.2.7
"#;

    fn problems(err: WorkloadsError) -> Vec<String> {
        match err {
            WorkloadsError::Invalid { problems, .. } => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected validation problems, got {other:?}"),
        }
    }

    fn one_entry(yaml_entry: &str) -> Result<Workloads, WorkloadsError> {
        Workloads::from_yaml(&format!("workloads:\n  - {yaml_entry}\n"), "t.yaml")
    }

    #[test]
    fn the_documented_example_parses() {
        let w = Workloads::from_yaml(EXAMPLE, "example.yaml").unwrap();
        let [pod, svc, ext] = w.entries() else {
            panic!("three entries expected")
        };
        assert_eq!(pod.kind, WorkloadKind::Pod);
        assert_eq!(pod.name, "checkout-7d9f8-abcde");
        assert_eq!(pod.namespace, "shop");
        assert_eq!(pod.service.as_deref(), Some("checkout"));
        assert_eq!(pod.node.as_deref(), Some("node-1"));
        assert_eq!(pod.labels["tier"], "backend");
        assert_eq!(pod.ips, vec!["10.244.1.12".parse::<IpAddr>().unwrap()]);
        assert_eq!(pod.ports, vec![8080]);
        assert_eq!(pod.valid_from, Some(1_717_243_200_000_000_000));
        assert_eq!(pod.valid_to, Some(1_717_246_800_000_000_000));
        assert_eq!(svc.kind, WorkloadKind::Service);
        assert_eq!(svc.ports, vec![80]);
        assert_eq!(svc.valid_from, None);
        assert_eq!(ext.kind, WorkloadKind::External);
        assert_eq!(ext.namespace, "");
        assert_eq!(ext.ips.len(), 2);
        assert!(ext.ips[0].is_ipv6());
    }

    #[test]
    fn json_reads_the_same_as_yaml() {
        let json = r#"{"workloads": [
            {"kind": "pod", "name": "checkout-7d9f8-abcde", "namespace": "shop",
             "service": "checkout", "node": "node-1",
             "labels": {"app": "checkout", "tier": "backend"},
             "ips": ["10.244.1.12"], "ports": [8080],
             "valid_from": "2024-06-01T12:00:00Z", "valid_to": "2024-06-01T13:00:00Z"},
            {"kind": "service", "name": "checkout", "namespace": "shop",
             "ips": ["10.96.0.15"], "ports": [80]},
            {"kind": "external", "name": "billing-db", "ips": ["fd00::5", "192.0.2.7"]}
        ]}"#;
        let from_json = Workloads::from_json(json, "w.json").unwrap();
        let from_yaml = Workloads::from_yaml(EXAMPLE, "w.yaml").unwrap();
        assert_eq!(from_json, from_yaml);
    }

    #[test]
    fn offsets_and_fractions_are_honoured() {
        let w = one_entry(
            "{kind: pod, name: a, namespace: n, ips: [10.0.0.1], valid_from: '2024-06-01T14:00:00.5+02:00'}",
        )
        .unwrap();
        assert_eq!(w.entries()[0].valid_from, Some(1_717_243_200_500_000_000));
    }

    #[test]
    fn load_picks_the_format_by_extension() {
        let dir = std::env::temp_dir().join(format!("trawl-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("w.YML");
        std::fs::write(&yaml, EXAMPLE).unwrap();
        assert_eq!(Workloads::load(&yaml).unwrap().len(), 3);
        let json = dir.join("w.json");
        std::fs::write(&json, r#"{"workloads": []}"#).unwrap();
        assert!(Workloads::load(&json).unwrap().is_empty());
        let txt = dir.join("w.txt");
        std::fs::write(&txt, EXAMPLE).unwrap();
        let err = Workloads::load(&txt).unwrap_err().to_string();
        assert!(err.contains("name it *.yaml, *.yml or *.json"), "{err}");
        let missing = Workloads::load(&dir.join("absent.yaml")).unwrap_err();
        assert!(matches!(missing, WorkloadsError::Io { .. }));
        assert!(missing.to_string().contains("absent.yaml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_fields_are_errors_with_a_position() {
        let err = one_entry("{kind: pod, name: a, namespace: n, ips: [10.0.0.1], valid_form: x}")
            .unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            chain.starts_with("t.yaml: not a valid workloads file: "),
            "{chain}"
        );
        assert!(chain.contains("unknown field `valid_form`"), "{chain}");
        assert!(chain.contains("line 2"), "{chain}");
        let err = Workloads::from_json(r#"{"workloads": [], "extra": 1}"#, "w.json").unwrap_err();
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("unknown field `extra`"), "{cause}");
        assert!(cause.contains("line 1"), "{cause}");
        // A missing required field is a parse error too.
        let err = one_entry("{kind: pod, name: a, namespace: n}").unwrap_err();
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("missing field `ips`"), "{cause}");
    }

    #[test]
    fn every_validation_error_names_entry_field_and_fix() {
        let cases: &[(&str, &str)] = &[
            (
                "{kind: deployment, name: a, namespace: n, ips: [10.0.0.1]}",
                r#"workloads[0].kind: unknown kind "deployment"; use pod, service or external"#,
            ),
            (
                "{kind: pod, name: ' ', namespace: n, ips: [10.0.0.1]}",
                "workloads[0].name: empty; every workload needs a name",
            ),
            (
                "{kind: pod, name: a, ips: [10.0.0.1]}",
                "workloads[0].namespace: missing; a pod lives in a namespace (write `namespace: default` if unsure)",
            ),
            (
                "{kind: service, name: a, namespace: n, service: b, ips: [10.0.0.1]}",
                "workloads[0].service: only a pod names the service it backs; remove it from this service entry",
            ),
            (
                "{kind: pod, name: a, namespace: n, service: '', ips: [10.0.0.1]}",
                "workloads[0].service: empty; name the service or remove the field",
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: []}",
                "workloads[0].ips: empty; list at least one address, e.g. ips: [10.244.1.12]",
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: [10.0.0.1, 10.0.0.300]}",
                r#"workloads[0].ips[1]: "10.0.0.300" is not an IP address; write it like 10.244.1.12 or fd00::12"#,
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: [10.0.0.1], ports: [80, 70000]}",
                "workloads[0].ports[1]: 70000 is not a port; ports are 1 to 65535",
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: [10.0.0.1], ports: [0]}",
                "workloads[0].ports[0]: 0 is not a port; ports are 1 to 65535",
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: [10.0.0.1], valid_from: yesterday}",
                r#"workloads[0].valid_from: "yesterday" is not an RFC 3339 time ("#,
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: [10.0.0.1], valid_to: '2024-06-01T12:00:00'}",
                r#"workloads[0].valid_to: "2024-06-01T12:00:00" is not an RFC 3339 time ("#,
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: [10.0.0.1], valid_to: '9999-01-01T00:00:00Z'}",
                r#"workloads[0].valid_to: "9999-01-01T00:00:00Z" is outside the years 1678 to 2262 that nanosecond timestamps cover"#,
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: [10.0.0.1], valid_from: 2024-06-01T13:00:00Z, valid_to: 2024-06-01T12:00:00Z}",
                "workloads[0].valid_from: is not before valid_to; the window would be empty (valid_to is exclusive)",
            ),
            (
                "{kind: pod, name: a, namespace: n, ips: [10.0.0.1], valid_from: 2024-06-01T13:00:00Z, valid_to: 2024-06-01T13:00:00Z}",
                "workloads[0].valid_from: is not before valid_to; the window would be empty (valid_to is exclusive)",
            ),
        ];
        for (entry, expected) in cases {
            let err = one_entry(entry).unwrap_err();
            let got = problems(err);
            assert_eq!(got.len(), 1, "{entry}: {got:?}");
            assert!(
                got[0].starts_with(expected),
                "{entry}:\n got {}\nwant {expected}",
                got[0]
            );
        }
    }

    #[test]
    fn all_problems_are_reported_with_their_entry_index() {
        let yaml = "workloads:
  - {kind: pod, name: ok, namespace: n, ips: [10.0.0.1]}
  - {kind: pod, name: a, namespace: n, ips: [nope], ports: [99999]}
  - {kind: job, name: b, ips: [10.0.0.2]}
";
        let err = Workloads::from_yaml(yaml, "w.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("w.yaml: workloads[1].ips[0]: "), "{text}");
        let got = problems(err);
        let fields: Vec<&str> = got.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "workloads[1].ips[0]",
                "workloads[1].ports[0]",
                "workloads[2].kind"
            ]
        );
    }
}
