//! Writes an index of N synthetic calls straight from `Call` records, with
//! no capture in between: `bench/query.sh` uses it for its 10 M-call index
//! (10 M calls' worth of pcap would not fit the benchmark machine's free
//! disk, and the query benchmark measures queries, not dissection).
//!
//! ```text
//! cargo run --release -p trawl-index --example gen_index -- --calls 10000000 --out DIR [--seed 1]
//! ```
//!
//! The calls look like `trawl-lab gen-pcap`'s, already resolved by the
//! lab's workloads file: 200 client pods (frontend, cart) call 20 services
//! in namespace `shop`, 90 % HTTP (methods, templated paths, the
//! generator's status mix, headers, log-spread latencies) and 10 % DNS to
//! kube-dns, 100 000 calls per second in timestamp order from
//! 2024-06-01T12:00:00Z. Deterministic for a seed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Instant;

use trawl_model::{Call, DnsAnswer, Endpoint, NamedRef, Protocol};

const SERVICES: [&str; 20] = [
    "frontend",
    "cart",
    "checkout",
    "catalog",
    "payments",
    "users",
    "search",
    "inventory",
    "shipping",
    "auth",
    "recommendations",
    "reviews",
    "orders",
    "notifications",
    "pricing",
    "images",
    "gateway",
    "analytics",
    "sessions",
    "currency",
];

/// 2024-06-01T12:00:00Z in ns.
const START_NS: i64 = 1_717_243_200_000_000_000;
/// 10 µs between calls: 100 000 calls per second.
const STEP_NS: i64 = 10_000;

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn endpoint(ip: Ipv4Addr, port: u16) -> Endpoint {
    Endpoint::new(IpAddr::V4(ip), port)
}

fn call(i: u64, rng: &mut Rng) -> Call {
    let client = (rng.below(200) + 1) as u8;
    let pod_service = if client <= 100 { "frontend" } else { "cart" };
    let mut src = endpoint(
        Ipv4Addr::new(10, 1, 0, client),
        30_000 + rng.below(30_000) as u16,
    );
    let pod = format!("{pod_service}-7d9f8c6b5-{client:05x}");
    src.name = pod.clone();
    src.namespace = "shop".into();
    src.pod = NamedRef {
        name: pod.clone(),
        namespace: "shop".into(),
    };
    src.service = NamedRef {
        name: pod_service.into(),
        namespace: "shop".into(),
    };
    src.labels.insert("app".into(), pod_service.into());
    let timestamp = START_NS + i as i64 * STEP_NS;
    let mut c = Call {
        id: format!("gen/{}/{}", i / 8, i % 8),
        node: "gen".into(),
        conn_id: i / 8,
        index: (i % 8) as u32,
        timestamp,
        has_request: true,
        has_response: true,
        ..Call::default()
    };
    if rng.below(10) == 0 {
        let svc = SERVICES[rng.below(20) as usize];
        let mut dst = endpoint(Ipv4Addr::new(10, 3, 0, 10), 53);
        dst.name = "kube-dns".into();
        dst.namespace = "kube-system".into();
        dst.service = NamedRef {
            name: "kube-dns".into(),
            namespace: "kube-system".into(),
        };
        let aaaa = rng.below(4) == 0;
        let nx = rng.below(20) == 0;
        let name = format!("{svc}.shop.svc.cluster.local");
        c.protocol = Some(Protocol::Dns);
        c.elapsed_time = 50 + rng.below(2_000) as i64;
        c.status_code = if nx { 3 } else { 0 };
        c.dns_questions = vec![name.clone()];
        c.dns_question_types = vec![if aaaa { "AAAA" } else { "A" }.into()];
        if !nx && !aaaa {
            let idx = SERVICES.iter().position(|s| *s == svc).unwrap_or(0) + 1;
            c.dns_answers = vec![DnsAnswer {
                name,
                rtype: "A".into(),
                ttl: 30,
                data: format!("10.2.0.{idx}"),
            }];
        }
        c.dns_request = true;
        c.dns_response = true;
        c.namespaces = vec!["shop".into(), "kube-system".into()];
        c.pods = vec![pod];
        c.services = vec![pod_service.into(), "kube-dns".into()];
        c.src = src;
        c.dst = dst;
        return c;
    }
    let s = rng.below(20) as usize;
    let svc = SERVICES[s];
    let port = if s.is_multiple_of(2) { 80 } else { 8080 };
    let mut dst = endpoint(Ipv4Addr::new(10, 2, 0, s as u8 + 1), port);
    dst.name = svc.into();
    dst.namespace = "shop".into();
    dst.service = NamedRef {
        name: svc.into(),
        namespace: "shop".into(),
    };
    dst.labels.insert("app".into(), svc.into());
    let r = rng.unit();
    let method = if r < 0.70 {
        "GET"
    } else if r < 0.88 {
        "POST"
    } else if r < 0.96 {
        "PUT"
    } else {
        "DELETE"
    };
    let id = rng.below(50) + 1;
    let path = match (method, rng.below(6)) {
        ("GET", 0) => "/healthz".to_string(),
        ("GET", 1) => format!("/api/v1/products/{id}"),
        ("GET", 2) => format!("/api/v1/users/{id}"),
        ("GET", 3) => format!("/api/v1/orders/{id}"),
        ("GET", _) => "/api/v2/search".to_string(),
        ("POST", 0 | 1) => "/api/v1/checkout".to_string(),
        ("POST", 2 | 3) => "/api/v1/orders".to_string(),
        ("POST", _) => format!("/api/v1/cart/{id}/items"),
        ("PUT", _) => format!("/api/v1/cart/{id}"),
        _ => format!("/api/v1/sessions/{id}"),
    };
    let r = rng.unit();
    let status = match method {
        "GET" if r < 0.85 => 200,
        "GET" if r < 0.90 => 304,
        "GET" if r < 0.95 => 404,
        "GET" if r < 0.98 => 500,
        "GET" => 503,
        "POST" if r < 0.5 => 201,
        "POST" if r < 0.9 => 200,
        "POST" if r < 0.95 => 500,
        "POST" => 503,
        "PUT" if r < 0.7 => 200,
        "PUT" if r < 0.9 => 204,
        "PUT" if r < 0.95 => 404,
        "PUT" => 500,
        _ if r < 0.8 => 204,
        _ if r < 0.95 => 404,
        _ => 503,
    };
    // Latency spread over four decades (100 µs to 1 s), slower on errors.
    let mut us = 100.0 * 10f64.powf(rng.unit() * rng.unit() * 4.0);
    if status >= 500 {
        us *= 3.0;
    }
    let query = if path == "/api/v2/search" {
        format!("q=w{}&lang=en", rng.below(100))
    } else {
        String::new()
    };
    let host = format!("{svc}.shop.svc.cluster.local");
    c.protocol = Some(Protocol::Http);
    c.elapsed_time = us as i64;
    c.method = method.into();
    c.url = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    c.query_string = query;
    c.path = path;
    c.status_code = status;
    c.http_version = "HTTP/1.1".into();
    c.request.headers.push("host", &host);
    c.request.headers.push("user-agent", "trawl-lab/1.0");
    c.request.headers.push("accept", "application/json");
    let body = if matches!(method, "POST" | "PUT") {
        50 + rng.below(2_000)
    } else {
        0
    };
    if body > 0 {
        c.request.headers.push("content-type", "application/json");
        c.request.headers.push("content-length", &body.to_string());
    }
    let resp_body = if matches!(status, 204 | 304) {
        0
    } else {
        50 + rng.below(6_000)
    };
    c.response.headers.push("content-type", "application/json");
    c.response
        .headers
        .push("content-length", &resp_body.to_string());
    c.response.headers.push("server", "envoy");
    c.request_header_size = 120 + rng.below(60);
    c.request_body_size = body;
    c.response_header_size = 100 + rng.below(40);
    c.response_body_size = resp_body;
    c.namespaces = vec!["shop".into()];
    c.pods = vec![pod];
    c.services = vec![pod_service.into(), svc.into()];
    c.src = src;
    c.dst = dst;
    c
}

fn main() {
    let mut calls: u64 = 1_000_000;
    let mut seed: u64 = 1;
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    let usage = "usage: gen_index --calls N --out DIR [--seed S]";
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| panic!("{a} needs a value; {usage}"))
        };
        match a.as_str() {
            "--calls" => calls = val().parse().expect("--calls: a number"),
            "--seed" => seed = val().parse().expect("--seed: a number"),
            "--out" => out = Some(PathBuf::from(val())),
            _ => panic!("unknown argument {a}; {usage}"),
        }
    }
    let out = out.unwrap_or_else(|| panic!("{usage}"));
    let started = Instant::now();
    let mut rng = Rng(seed);
    let calls_iter = (0..calls).map(|i| call(i, &mut rng));
    let m = trawl_index::indexer::index_calls(
        calls_iter,
        &out,
        &format!("gen_index --calls {calls} --seed {seed}"),
        true,
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"calls\": {}, \"parts\": {}, \"seconds\": {secs:.3}, \"calls_per_sec\": {:.0}}}",
        m.calls,
        m.calls_parts.len(),
        m.calls as f64 / secs.max(1e-9)
    );
}
