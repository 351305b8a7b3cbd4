//! The API end to end over real HTTP: a capture from trawl-lab's generator
//! (whose summary is the ground truth) is imported as a snapshot, a server
//! is started on a loopback port, and a blocking reqwest client walks the
//! investigation: snapshots → dissection with progress → calls with a KFL
//! filter and cursor → one call → stats → SQL → fields → PCAP export, plus
//! the error shape (a bad KFL is a 400 with position and suggestion) and
//! the bearer token. Also checks that `openapi.yaml` lists exactly the
//! routes the router is built from.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trawl_hub::{Hub, HubConfig, ServerHandle, api, bind, spawn_server};
use trawl_lab::pcapgen::{GenConfig, GenSummary, generate};
use trawl_rawstore::{ImportRequest, import_pcap};

fn start(data: &Path, token: Option<&str>) -> ServerHandle {
    let hub = Hub::new(
        HubConfig {
            data_dir: data.to_owned(),
            token: token.map(str::to_owned),
            index_threads: 2,
            tools: trawl_mcp::ToolPolicy::default(),
        },
        None,
    );
    let l = bind("127.0.0.1:0".parse().unwrap(), token).unwrap();
    spawn_server(l, hub).unwrap()
}

/// Imports a generated capture; returns the snapshot id and ground truth.
fn imported(data: &Path, packets: u64, seed: u64) -> (String, GenSummary) {
    let pcap = data.join(format!("gen-{seed}.pcap"));
    let cfg = GenConfig {
        packets,
        seed,
        ..GenConfig::default()
    };
    let summary = generate(std::fs::File::create(&pcap).unwrap(), &cfg).unwrap();
    let snap = import_pcap(
        data,
        &pcap,
        &ImportRequest {
            name: "gen".into(),
            node: "lab".into(),
            created_ns: 1,
        },
    )
    .unwrap();
    (snap.manifest.id, summary)
}

struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    fn new(server: &ServerHandle) -> Client {
        Client {
            base: format!("http://{}", server.addr()),
            http: reqwest::blocking::Client::new(),
        }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap())
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap())
    }
}

#[test]
fn openapi_lists_exactly_the_routes_of_the_router() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let routes = api::routes();
    let served: BTreeSet<String> = routes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.replace("{*", "{")))
        .collect();
    assert_eq!(served.len(), routes.len(), "a route is listed twice");
    assert_eq!(documented, served);
}

#[test]
fn investigation_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let (id, truth) = imported(data, 4_000, 21);
    let server = start(data, None);
    let c = Client::new(&server);

    let (s, v) = c.get("/api/v1/health");
    assert_eq!((s, v["service"].as_str()), (200, Some("trawl")));

    let (s, v) = c.get("/api/v1/snapshots");
    assert_eq!(s, 200);
    assert_eq!(v["snapshots"][0]["id"], id.as_str(), "{v}");
    assert_eq!(v["snapshots"][0]["packets"], truth.packets);

    // Queries before dissection say what to do.
    let (s, v) = c.get(&format!("/api/v1/snapshots/{id}/calls"));
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "not_dissected");
    assert!(
        v["error"]["suggestion"]
            .as_str()
            .unwrap()
            .contains("dissection")
    );

    // Dissection is a job: started, then polled until done.
    let (s, v) = c.post(&format!("/api/v1/snapshots/{id}/dissection"), &json!({}));
    assert!(s == 202 || s == 200, "{s} {v}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let (s, v) = c.get(&format!("/api/v1/snapshots/{id}/dissection"));
        assert_eq!(s, 200, "{v}");
        match v["status"].as_str().unwrap() {
            "done" => break v,
            "running" => {}
            other => panic!("dissection {other}: {v}"),
        }
        assert!(Instant::now() < deadline, "dissection did not finish: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let calls = truth.http_calls + truth.dns_calls;
    assert_eq!(done["counts"]["calls"], calls, "{done}");
    assert_eq!(done["counts"]["packets"], truth.packets, "{done}");
    assert_eq!(done["progress"]["fraction"], 1.0);
    // Starting again is idempotent.
    let (s, v) = c.post(&format!("/api/v1/snapshots/{id}/dissection"), &json!({}));
    assert_eq!((s, v["status"].as_str()), (200, Some("done")));
    let (_, v) = c.get(&format!("/api/v1/snapshots/{id}"));
    assert_eq!(v["dissection"], "done");

    // Calls with a KFL filter, two disjoint pages.
    let (s, p1) = c.get(&format!(
        "/api/v1/snapshots/{id}/calls?filter=http&limit=10"
    ));
    assert_eq!(s, 200, "{p1}");
    assert_eq!(p1["total"], truth.http_calls);
    assert_eq!(p1["returned"], 10);
    assert_eq!(p1["truncated"], true);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = c.get(&format!(
        "/api/v1/snapshots/{id}/calls?filter=http&limit=10&cursor={cursor}"
    ));
    let ids = |p: &Value| -> BTreeSet<String> {
        p["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&p2).len(), 10);
    assert!(ids(&p1).is_disjoint(&ids(&p2)));
    let (_, dns) = c.get(&format!("/api/v1/snapshots/{id}/calls?filter=dns&limit=1"));
    assert_eq!(dns["total"], truth.dns_calls);

    // A bad KFL: 400 with the position and a did-you-mean.
    let (s, v) = c.get(&format!(
        "/api/v1/snapshots/{id}/calls?filter=http%20%26%26%20response.statuss%20%3D%3D%20200"
    ));
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_filter");
    assert_eq!(v["error"]["position"]["column"], 9);
    assert_eq!(v["error"]["suggestion"], "response.status");

    // One call, by its id (slashes and all), with its payloads.
    let first = &p1["calls"][0];
    let call_id = first["id"].as_str().unwrap();
    let (s, v) = c.get(&format!("/api/v1/snapshots/{id}/calls/{call_id}"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["call"]["id"], call_id);
    assert_eq!(v["call"]["path"], first["path"]);
    assert!(v["payloads"].is_object(), "{v}");
    let (s, v) = c.get(&format!("/api/v1/snapshots/{id}/calls/lab/999999999/0"));
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));

    // Stats by status code agree with the generator.
    let (s, v) = c.get(&format!(
        "/api/v1/snapshots/{id}/stats?filter=http&by=status_code"
    ));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total_calls"], truth.http_calls);
    for g in v["groups"].as_array().unwrap() {
        let code: u16 = g["key"][0].as_str().unwrap().parse().unwrap();
        assert_eq!(g["count"], truth.by_status[&code], "{g}");
    }

    // SQL.
    let (s, v) = c.post(
        &format!("/api/v1/snapshots/{id}/sql"),
        &json!({"query": "SELECT count(*) AS n FROM calls"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rows"][0]["n"], calls);
    let (s, v) = c.post(
        &format!("/api/v1/snapshots/{id}/sql"),
        &json!({"query": "DROP TABLE calls"}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_query")),
        "{v}"
    );

    let (s, v) = c.get("/api/v1/fields");
    assert_eq!(s, 200);
    assert!(
        v["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "status_code")
    );

    // PCAP export streams every packet back; a filter keeps only DNS.
    let pcap = reqwest::blocking::get(format!(
        "http://{}/api/v1/snapshots/{id}/pcap",
        server.addr()
    ))
    .unwrap();
    assert_eq!(pcap.status(), 200);
    let bytes = pcap.bytes().unwrap();
    assert_eq!(count_packets(&bytes), truth.packets);
    let r = reqwest::blocking::get(format!(
        "http://{}/api/v1/snapshots/{id}/pcap?filter=udp%20port%2053&format=pcapng",
        server.addr()
    ))
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(count_packets(&r.bytes().unwrap()), truth.udp_packets);
    let (s, v) = c.get(&format!(
        "/api/v1/snapshots/{id}/pcap?filter=tcp%20portt%2080"
    ));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_packet_filter")),
        "{v}"
    );

    // Snapshot creation needs a raw store and a window.
    let (s, v) = c.post("/api/v1/snapshots", &json!({"last": "15m"}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("no_raw_store")),
        "{v}"
    );
    let (s, v) = c.post("/api/v1/snapshots", &json!({"last": "15 parsecs"}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_window")),
        "{v}"
    );
    let (s, v) = c.post("/api/v1/snapshots", &json!({"lats": "15m"}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_json")),
        "{v}"
    );

    // Delete, then it is gone.
    let (s, _) = {
        let r = c
            .http
            .delete(format!("{}/api/v1/snapshots/{id}", c.base))
            .send()
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(s, 200);
    let (s, v) = c.get(&format!("/api/v1/snapshots/{id}"));
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, v) = c.get("/api/v1/nope");
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    server.stop().unwrap();
}

fn count_packets(bytes: &[u8]) -> u64 {
    let mut r = trawl_packet::CaptureReader::new(bytes, "export").unwrap();
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    n
}

#[test]
fn a_token_is_required_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), Some("s3cret-token"));
    let url = format!("http://{}/api/v1/boundaries", server.addr());
    let http = reqwest::blocking::Client::new();
    let r = http.get(&url).send().unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    let r = http.get(&url).bearer_auth("wrong").send().unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(&url).bearer_auth("s3cret-token").send().unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["nodes"], json!([]));
}
