//! What an agent reads to write filters and plan an investigation: the KFL
//! reference, the field catalogue (from `trawl_model::catalogue`, so a new
//! protocol's fields appear here without edits), and the investigation
//! prompts. Served by `describe_fields`, the `trawl://kfl` and
//! `trawl://fields/…` resources, and `prompts/get`; [`crate::server`] lists
//! them.

use serde::Serialize;
use trawl_model::catalogue::{FLOW_FIELDS, FieldDef, FieldType, call_fields};

/// KFL in one page: what an agent needs to write a correct filter first
/// time. Field names come from `describe_fields`.
pub const KFL_REFERENCE: &str = r#"KFL (Kubeshark Filter Language) is CEL over API call records. A filter is one boolean expression; an empty filter matches every call.

Protocol flags: http, dns (plus those of other dissected protocols) are booleans: `http && status_code >= 500`.
Operators: == != < <= > >= && || ! ( ) ; arithmetic + - * / % ; membership `x in [a, b]`, `"A" in dns_question_types`, `"app" in src.labels`.
Strings: "double" or 'single' quoted; methods .contains("x") .startsWith("/api") .endsWith(".js") .matches("^/v[0-9]+/") (RE2 syntax); size(x) for strings, lists and maps.
Maps (headers, labels, cookies): request.headers["content-type"] == "application/json", "authorization" in request.headers, map_get(m, "k", "default").
Lists: dns_answers.exists(a, a.startsWith("10.")), list.all(x, …), size(errors) > 0.
Time: compare timestamp with timestamp("2026-01-02T15:04:05Z") (answers show it in RFC 3339 UTC); durations: duration("1.5s").
Units: elapsed_time is MICROseconds (elapsed_time > 500000 is slower than 0.5 s); sizes are bytes; status_code is the HTTP status or the DNS rcode.
Absent fields read as their type's zero value ("" , 0, false, [], {}), so `src.pod.name == ""` means unresolved.
KFL1 spellings are accepted as aliases: request.method, response.status, elapsedTime.
Examples:
  http && status_code >= 500
  http && method == "POST" && path.startsWith("/api/v1/checkout") && elapsed_time > 200000
  dst.service.name == "payments" && dst.service.namespace == "prod"
  dns && status_code != 0
  dns && "AAAA" in dns_question_types
  http && request.headers["user-agent"].contains("curl")
  src.ip == "10.0.0.7" || dst.ip == "10.0.0.7"
  size(errors) > 0
A mistake comes back as an error naming the position and, for a misspelt field, the closest field name."#;

/// One field of the catalogue, as tools and resources show it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FieldInfo {
    /// KFL2 name, usable in filters, `fields`, `sort` and `by`.
    pub name: &'static str,
    /// KFL type: bool, int, string, timestamp, list<string>, map<string,string>, …
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Other accepted spellings (KFL1).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub aliases: &'static [&'static str],
    /// SQL column name in the `calls` / `flows` tables.
    pub column: &'static str,
    pub doc: &'static str,
    /// An example value as written in KFL.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub example: &'static str,
}

impl FieldInfo {
    pub fn of(d: &FieldDef) -> FieldInfo {
        FieldInfo {
            name: d.name,
            ty: d.ty.as_str(),
            aliases: d.aliases,
            column: d.column,
            doc: d.doc,
            example: d.example,
        }
    }
}

/// The call fields, then the flow fields.
pub fn field_tables() -> [(&'static str, &'static [FieldDef]); 2] {
    [("calls", call_fields()), ("flows", FLOW_FIELDS)]
}

/// The catalogue of `table` as Markdown, for the fields resources.
pub fn fields_markdown(table: &str, fields: &[FieldDef]) -> String {
    let mut s = format!(
        "# trawl {table} fields\n\nname | type | SQL column | meaning | example\n---|---|---|---|---\n"
    );
    for d in fields {
        if d.ty == FieldType::PayloadRef {
            continue;
        }
        let aliases = if d.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also {})", d.aliases.join(", "))
        };
        s.push_str(&format!(
            "`{}`{aliases} | {} | {} | {} | {}\n",
            d.name,
            d.ty.as_str(),
            d.column,
            d.doc,
            d.example
        ));
    }
    s
}

/// An investigation playbook, offered as an MCP prompt.
#[derive(Debug)]
pub struct Playbook {
    pub name: &'static str,
    pub description: &'static str,
    /// The argument the playbook takes (a service, an endpoint …), if any.
    pub argument: Option<(&'static str, &'static str)>,
    /// The instructions; `{arg}` is replaced by the argument.
    pub text: &'static str,
}

/// The playbooks, in one place.
pub static PLAYBOOKS: &[Playbook] = &[
    Playbook {
        name: "analyze_traffic",
        description: "Overview of recent traffic: who talks to whom, volumes, errors and latency.",
        argument: Some((
            "window",
            "How far back to look, e.g. 15m or 1h (default 15m).",
        )),
        text: "Investigate the last {arg} of network traffic with the trawl tools. \
1) get_data_boundaries to see what each node holds. \
2) create_snapshot with last=\"{arg}\", then start_snapshot_dissection (it waits and reports progress). \
3) get_api_stats grouped by dst.name and protocol, then list_workloads and get_l4_flow_summary. \
4) Report the busiest services, their error rates (5xx share, DNS errors) and p95/p99 latency (elapsed_time is in microseconds), and anything unusual.",
    },
    Playbook {
        name: "find_errors",
        description: "Find failing calls, group them, and show one failing request with its payload.",
        argument: Some((
            "service",
            "Service or workload name to focus on (empty for all).",
        )),
        text: "Find errors in the traffic of {arg}. Snapshot and dissect a recent window (create_snapshot, start_snapshot_dissection) unless a dissected snapshot exists (list_snapshots). \
Use get_api_stats with filter `http && status_code >= 500 || dns && status_code != 0 || size(errors) > 0` grouped by dst.name and path, then list_api_calls with the same filter (and dst.name == \"{arg}\" when given) sorted by -timestamp, \
then get_api_call on one failing call to read its request and response bodies. Say what fails, since when, how often, and the likely cause.",
    },
    Playbook {
        name: "latency_analysis",
        description: "Find slow endpoints and explain where the time goes.",
        argument: Some((
            "service",
            "Service or workload name to focus on (empty for all).",
        )),
        text: "Analyse latency for {arg}. On a dissected snapshot, get_api_stats grouped by dst.name and path (p50/p95/p99 in microseconds), with interval=1m to see when it got slow. \
list_api_calls with `elapsed_time > 500000` sorted by -elapsed_time, get_api_call on the slowest, and list_l4_flows for its conn_id's peers to check TCP trouble. Report the slow endpoints, how slow, since when, and why.",
    },
    Playbook {
        name: "trace_request",
        description: "Follow one request across services by path, header or id.",
        argument: Some(("needle", "A path, request id or header value to follow.")),
        text: "Trace the request identified by {arg}. list_api_calls with filters such as `path.contains(\"{arg}\")` or `request.headers[\"x-request-id\"] == \"{arg}\"`, sorted by timestamp, with fields id,timestamp,src.name,dst.name,method,path,status_code,elapsed_time. \
Open the interesting calls with get_api_call and lay out the chain of services with timings.",
    },
    Playbook {
        name: "debug_connection",
        description: "Debug connectivity between two endpoints: DNS, connections, resets.",
        argument: Some(("peer", "An IP, service or DNS name.")),
        text: "Debug connectivity to {arg}. Check DNS first (list_api_calls with `dns && dns_questions.exists(q, q.contains(\"{arg}\"))`), then list_l4_flows with ip or where on the peer, get_l4_flow_summary for resets and close reasons, \
and export_snapshot_pcap with a tcpdump filter on the peer for Wireshark. Report whether names resolve, whether connections open, and how they end.",
    },
    // The investigation of issue 7 (`trawl demo` makes it): the analyses
    // first, the raw calls and flows only to show evidence.
    Playbook {
        name: "investigate_service",
        description: "What can you tell me about a service? Health, anomalies and their causes, with evidence.",
        argument: Some(("service", "The service to investigate, e.g. frontend.")),
        text: "Investigate the service {arg}. 1) get_data_boundaries; create_snapshot over the window in question (from/to in RFC 3339, or last=\"15m\"), then start_snapshot_dissection (it waits and reports progress). 2) analyze_service with service=\"{arg}\": calls, p50/p95/p99 latency and TCP connect time (microseconds), share of 2xx, the endpoints with most errors and highest p95, callers and callees. 3) find_anomalies (no kfl: the whole snapshot, since causes are usually downstream): error bursts, latency shifts, retry storms, connection churn, resets, pool exhaustion, DNS failures. 4) For the endpoint with most server errors, explain_errors with its evidence.kfl narrowed to the status code, e.g. `dst.service.name == \"{arg}\" && path == \"/api/v1/checkout\" && status_code == 503`. 5) Answer with numbers and times, and cite each finding's evidence (its kfl, and a call or flow id; get_api_call or list_l4_flows show one). Say what you did not see rather than guess; an absent field reads as 0 or \"\" in filters.",
    },
    Playbook {
        name: "explain_failures",
        description: "Why do these calls fail? The causal chain, timeouts and timeline behind failing calls.",
        argument: Some((
            "kfl",
            "KFL selecting the failing calls, e.g. path == \"/api/v1/checkout\" && status_code == 503.",
        )),
        text: "Explain the failing calls selected by `{arg}` on a dissected snapshot (list_snapshots; else create_snapshot and start_snapshot_dissection). 1) explain_errors with kfl=`{arg}`: the servers that failed, what each was waiting on downstream during the failing calls (recursively), timeouts inferred from clustered elapsed times, the chain with the root cause last, and the timeline. 2) find_anomalies over the same window to confirm each link: a latency_shift on the root cause, resets and pool_exhaustion at the service that gave up, retry_storm from its callers. 3) Open one failing call with get_api_call (its response body often names the cause) and list_l4_flows with where=\"rst_count > 0\" for the resets. 4) Report the chain from the failing endpoint to the root cause, the timeout values, the order of events with times, and a recommendation; cite evidence kfl and ids for every claim.",
    },
];

/// The playbook named `name`.
pub fn playbook(name: &str) -> Option<&'static Playbook> {
    PLAYBOOKS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_lists_every_plain_field() {
        let md = fields_markdown("calls", call_fields());
        assert!(md.contains("`status_code` (also response.status"), "{md}");
        assert!(md.contains("`elapsed_time`"));
        assert!(
            !md.contains("`request_body_ref`"),
            "payload references are internal"
        );
    }

    #[test]
    fn playbooks_have_unique_names_and_use_their_argument() {
        let mut names = std::collections::BTreeSet::new();
        for p in PLAYBOOKS {
            assert!(names.insert(p.name), "{} twice", p.name);
            assert_eq!(p.argument.is_some(), p.text.contains("{arg}"), "{}", p.name);
        }
    }

    #[test]
    fn the_investigation_playbooks_lead_to_the_analyses() {
        for (name, tools) in [
            (
                "investigate_service",
                &["analyze_service", "find_anomalies", "explain_errors"][..],
            ),
            (
                "explain_failures",
                &["explain_errors", "find_anomalies"][..],
            ),
        ] {
            let p = playbook(name).unwrap();
            for t in tools {
                assert!(p.text.contains(t), "{name} does not mention {t}");
            }
            assert!(p.text.contains("evidence"), "{name} asks for no evidence");
        }
    }
}
