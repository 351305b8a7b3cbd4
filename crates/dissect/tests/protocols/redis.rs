//! Redis: agreement with tshark 4.0 on the shared `resp-*` captures (each
//! RESP message tshark reports, by direction, top-level kind, array length
//! and the text of its first three values, found in trawl's calls), and
//! live tests against a real redis-server with redis-cli and a raw socket
//! (a pipelined batch with an inline command, RESP3, pub/sub pushes).
//!
//! Also holds [`agreement`], the per-file table and report writer the
//! PostgreSQL and MySQL modules use too.
//!
//! Uses data from ../shared/pcaps and redis-server/redis-cli from apt;
//! skips loudly when they are absent.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trawl_model::{Call, Protocol};

use crate::common::{
    LiveCapture, Row, captures_with_prefix, dissect, ep, read_truth, shared_pcaps,
};

/// One protocol's agreement run: for every capture with `prefix` (except
/// `excluded`, each with its reason), every tshark row (`truth_key`, None
/// for rows that are not messages) is looked up among the keys of trawl's
/// calls (`call_keys`, a multiset). Prints the table and each
/// disagreement, writes `docs/agreement/<name>.md` when
/// `TRAWL_WRITE_REPORT=1`, and fails when a file is under 99%.
/// `TRAWL_DEBUG_KEYS=1` prints every key trawl's calls yield, to see why
/// a row was not found. (The HTTP/2 and gRPC modules call this one; the
/// database modules name their fields with [`agreement_on`].)
#[allow(dead_code)]
pub fn agreement(
    name: &str,
    prefix: &str,
    excluded: &[(&str, &str)],
    call_keys: &dyn Fn(&Call) -> Vec<String>,
    truth_key: &dyn Fn(&Row) -> Option<String>,
    explain: &dyn Fn(&str) -> Option<&'static str>,
) {
    agreement_on(
        name,
        prefix,
        "see the test module",
        excluded,
        call_keys,
        truth_key,
        explain,
    );
}

/// [`agreement`], with the identifying fields named in the report.
pub fn agreement_on(
    name: &str,
    prefix: &str,
    fields: &str,
    excluded: &[(&str, &str)],
    call_keys: &dyn Fn(&Call) -> Vec<String>,
    truth_key: &dyn Fn(&Row) -> Option<String>,
    explain: &dyn Fn(&str) -> Option<&'static str>,
) {
    let Some(dir) = shared_pcaps() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; {name} agreement with tshark not checked.");
        return;
    };
    let files = captures_with_prefix(&dir, prefix);
    assert!(
        !files.is_empty(),
        "no {prefix}* captures in {}",
        dir.display()
    );
    let mut table =
        "| file | tshark messages | found | agreement | explained |\n|---|---:|---:|---:|---:|\n"
            .to_owned();
    let mut notes = String::new();
    let mut failures = Vec::new();
    for (pcap, truth) in &files {
        let file = pcap.file_name().unwrap().to_string_lossy().into_owned();
        if let Some((_, why)) = excluded.iter().find(|(f, _)| *f == file) {
            table.push_str(&format!("| `{file}` | — | — | excluded | |\n"));
            notes.push_str(&format!("- `{file}` excluded: {why}\n"));
            continue;
        }
        let calls = dissect(pcap);
        let mut available: HashMap<String, usize> = HashMap::new();
        for c in calls.iter().filter(|c| c.protocol.is_some()) {
            for k in call_keys(c) {
                *available.entry(k).or_default() += 1;
            }
        }
        if std::env::var("TRAWL_DEBUG_KEYS").is_ok() {
            let mut keys: Vec<_> = available.iter().collect();
            keys.sort();
            for (k, n) in keys {
                eprintln!("{file}: {n} × {k}");
            }
        }
        let (mut total, mut found, mut explained) = (0usize, 0usize, 0usize);
        for row in read_truth(truth) {
            let Some(key) = truth_key(&row) else {
                continue;
            };
            total += 1;
            match available.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    found += 1;
                }
                _ => match explain(&key) {
                    Some(why) => {
                        explained += 1;
                        notes.push_str(&format!(
                            "- `{file}` frame {}: `{key}` — {why}\n",
                            row.get("frame.number")
                        ));
                    }
                    None => {
                        notes.push_str(&format!(
                            "- `{file}` frame {}: `{key}` — NOT FOUND\n",
                            row.get("frame.number")
                        ));
                    }
                },
            }
        }
        // Rows explained as tshark's own misreading count as agreeing.
        let pct = if total == 0 {
            100.0
        } else {
            100.0 * (found + explained) as f64 / total as f64
        };
        table.push_str(&format!(
            "| `{file}` | {total} | {found} | {pct:.1}% | {explained} |\n"
        ));
        if pct < 99.0 {
            failures.push(format!("{file}: {found}/{total} ({pct:.1}%)"));
        }
    }
    let report = format!(
        "# {name}: agreement with tshark 4.0\n\nMade by `TRAWL_WRITE_REPORT=1 cargo test -p trawl-dissect --test protocols {}`: \
         each message tshark reports in a shared capture (`../shared/pcaps/*.truth.tsv`) looked up among trawl's calls \
         by its identifying fields: {fields}. Agreement counts the messages found plus those explained (tshark misreading the \
         bytes, each listed below with its reason).\n\n{table}\n{}",
        name.to_ascii_lowercase(),
        if notes.is_empty() {
            "Every message was found.\n".to_owned()
        } else {
            format!("Disagreements and exclusions:\n\n{notes}")
        }
    );
    println!("{report}");
    if std::env::var("TRAWL_WRITE_REPORT").as_deref() == Ok("1") {
        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/agreement")
            .join(format!("{}.md", name.to_ascii_lowercase()));
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, report).unwrap();
    }
    assert!(failures.is_empty(), "below 99% agreement: {failures:?}");
}

/// Splits a rendered message body (values separated by spaces, quoted
/// with `"…"` and backslash escapes when needed) back into values.
fn unrender(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] == b' ' {
            i += 1;
            continue;
        }
        let mut w = Vec::new();
        if body[i] == b'"' {
            i += 1;
            while i < body.len() && body[i] != b'"' {
                if body[i] == b'\\' && i + 1 < body.len() {
                    i += 1;
                    match body[i] {
                        b'n' => w.push(b'\n'),
                        b'r' => w.push(b'\r'),
                        b't' => w.push(b'\t'),
                        b'x' => {
                            let h = std::str::from_utf8(&body[i + 1..i + 3]).unwrap();
                            w.push(u8::from_str_radix(h, 16).unwrap());
                            i += 2;
                        }
                        c => w.push(c),
                    }
                } else {
                    w.push(body[i]);
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < body.len() && body[i] != b' ' {
                w.push(body[i]);
                i += 1;
            }
        }
        out.push(w);
    }
    out
}

/// tshark's text of a value list: printable ASCII, others as '.'.
fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|&x| {
            if (32..127).contains(&x) {
                x as char
            } else {
                '.'
            }
        })
        .collect()
}

fn resp_text(kind: &str, body: &[u8]) -> String {
    let t = if kind == "fragment" {
        let mut line = body.to_vec();
        line.extend_from_slice(b"\r\n");
        printable(&line)
    } else {
        let vals = unrender(body);
        let parts: Vec<String> = vals.iter().take(3).map(|v| printable(v)).collect();
        parts.join(" ")
    };
    let t: String = t.chars().take(80).collect();
    tsv_escape(&t)
}

/// How make_truth.py writes a value into a TSV cell.
pub fn tsv_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn redis_keys(c: &Call) -> Vec<String> {
    if c.protocol != Some(Protocol::Redis) {
        return Vec::new();
    }
    let client = ep(c.src.ip, c.src.port);
    let server = ep(c.dst.ip, c.dst.port);
    let mut keys = Vec::new();
    if c.has_request {
        let body = c.request.body.as_ref().map_or(&[][..], |b| &b.data[..]);
        let kind = match c.attrs.str("redis_type") {
            "inline" => "fragment",
            k => k,
        };
        let len = if kind == "array" {
            c.attrs.int("redis_args").to_string()
        } else {
            String::new()
        };
        keys.push(format!(
            "{client} {server} {kind} {len} {}",
            resp_text(kind, body)
        ));
    }
    if c.has_response {
        let body = c.response.body.as_ref().map_or(&[][..], |b| &b.data[..]);
        let kind = match c.attrs.str("redis_response_type") {
            "push" => "array",
            k => k,
        };
        let len = if kind == "array" {
            c.attrs.int("redis_response_elements").to_string()
        } else {
            String::new()
        };
        keys.push(format!(
            "{server} {client} {kind} {len} {}",
            resp_text(kind, body)
        ));
    }
    keys
}

fn redis_truth_key(r: &Row) -> Option<String> {
    Some(format!(
        "{}|{} {}|{} {} {} {}",
        r.get("src"),
        r.get("sport"),
        r.get("dst"),
        r.get("dport"),
        r.get("kind"),
        r.get("resp.array.length"),
        r.get("text")
    ))
}

#[test]
fn redis_agrees_with_tshark() {
    agreement_on(
        "Redis",
        "resp-",
        "direction, top-level RESP type (`fragment` for an inline command), array length, and \
         the first three values as tshark shows them",
        &[],
        &redis_keys,
        &redis_truth_key,
        &|_| None,
    );
}

/// zeek's bulk-loading capture: 1000 SETs pipelined in one segment, then
/// their replies. Each command pairs with its own reply.
#[test]
fn redis_deep_pipeline_pairs_every_command() {
    let Some(dir) = shared_pcaps() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; deep pipeline not checked.");
        return;
    };
    let calls: Vec<Call> = dissect(&dir.join("resp-zeek-redis-bulk-loading.pcap"))
        .into_iter()
        .filter(|c| c.protocol == Some(Protocol::Redis))
        .collect();
    let sets: Vec<&Call> = calls.iter().filter(|c| c.method == "SET").collect();
    assert_eq!(sets.len(), 1000);
    for (i, c) in sets.iter().enumerate() {
        assert_eq!(c.path, format!("Key{i}"));
        assert!(c.has_response && c.errors.is_empty(), "{c:?}");
        assert_eq!(c.attrs.str("redis_response_type"), "string");
    }
}

/// A redis-server on a loopback port, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("trawl-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl RedisServer {
    fn start(port: u16) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
            || Command::new("redis-cli").arg("--version").output().is_err()
        {
            eprintln!(
                "SKIPPED: redis-server or redis-cli missing (apt-get install redis-server redis-tools)"
            );
            return None;
        }
        let dir = tempdir::Dir::new("redis");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(RedisServer {
            child,
            port,
            _dir: dir,
        })
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads from `s` until `done` says the bytes so far are complete.
fn read_until(s: &mut std::net::TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !done(&buf) {
        let n = s.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "server closed early: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

fn summary(c: &Call) -> String {
    format!(
        "{} key={} type={} resp={} status={} err={:?}",
        c.method,
        c.attrs.str("redis_key"),
        c.attrs.str("redis_type"),
        c.attrs.str("redis_response_type"),
        c.status_code,
        c.errors
    )
}

#[test]
fn redis_live_cli_pipeline_resp3_pubsub() {
    const PORT: u16 = 16379;
    let Some(server) = RedisServer::start(PORT) else {
        return;
    };
    let Some(cap) = LiveCapture::start("lo", &format!("tcp port {PORT}")) else {
        return;
    };
    // 1. redis-cli, one connection per command, as a shell script would.
    assert_eq!(server.cli(&["SET", "user:1", "alice"]).trim(), "OK");
    assert_eq!(server.cli(&["GET", "user:1"]).trim(), "alice");
    assert!(
        server
            .cli(&["INCR", "user:1"])
            .contains("ERR value is not an integer")
    );
    assert_eq!(server.cli(&["RPUSH", "list", "a", "b", "c"]).trim(), "3");
    assert_eq!(server.cli(&["LRANGE", "list", "0", "-1"]).trim(), "a\nb\nc");
    assert_eq!(server.cli(&["GET", "missing"]).trim(), "");
    // 2. redis-cli --pipe: a raw RESP batch sent in one go.
    let mut pipe = Command::new("redis-cli")
        .args(["-p", &PORT.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut batch = Vec::new();
    for i in 0..50 {
        let k = format!("bulk:{i}");
        batch.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n", k.len()).as_bytes(),
        );
    }
    pipe.stdin.take().unwrap().write_all(&batch).unwrap();
    let out = pipe.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("replies: 50"),
        "{out:?}"
    );
    // 3. A raw socket: a pipelined batch with an inline command, then RESP3.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", PORT)).unwrap();
    s.write_all(
        b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\nPING\r\n*3\r\n$4\r\nHSET\r\n$2\r\nh1\r\n$1\r\nf\r\n",
    )
    .unwrap();
    let r = read_until(&mut s, |b| {
        b.ends_with(b"-ERR wrong number of arguments for 'hset' command\r\n")
    });
    assert_eq!(&r[..12], b":1\r\n+PONG\r\n-");
    s.write_all(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n").unwrap();
    read_until(&mut s, |b| b.windows(7).any(|w| w == b"modules"));
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"*4\r\n$4\r\nHSET\r\n$2\r\nh2\r\n$1\r\nf\r\n$1\r\n1\r\n*2\r\n$7\r\nHGETALL\r\n$2\r\nh2\r\n")
        .unwrap();
    read_until(&mut s, |b| b.ends_with(b"%1\r\n$1\r\nf\r\n$1\r\n1\r\n"));
    drop(s);
    // 4. Pub/sub: a subscriber gets the published message as a push.
    let mut sub = std::net::TcpStream::connect(("127.0.0.1", PORT)).unwrap();
    sub.write_all(b"*3\r\n$9\r\nSUBSCRIBE\r\n$6\r\nalerts\r\n$4\r\nnews\r\n")
        .unwrap();
    read_until(&mut sub, |b| b.ends_with(b":2\r\n"));
    assert_eq!(server.cli(&["PUBLISH", "news", "hello world"]).trim(), "1");
    read_until(&mut sub, |b| b.ends_with(b"hello world\r\n"));
    drop(sub);
    std::thread::sleep(Duration::from_millis(100));
    let calls: Vec<Call> = cap
        .stop()
        .into_iter()
        .filter(|c| c.protocol == Some(Protocol::Redis))
        .collect();
    let mut by_conn: Vec<(u64, Vec<String>)> = Vec::new();
    for c in &calls {
        match by_conn.iter_mut().find(|(id, _)| *id == c.conn_id) {
            Some((_, v)) => v.push(summary(c)),
            None => by_conn.push((c.conn_id, vec![summary(c)])),
        }
    }
    // redis-cli may send its own commands first (e.g. COMMAND DOCS in
    // newer versions): keep only the connections' last calls we made.
    let got: Vec<Vec<String>> = by_conn.into_iter().map(|(_, v)| v).collect();
    for g in &got {
        println!("{g:#?}");
    }
    let ok = |m: &str, k: &str, resp: &str| {
        format!("{m} key={k} type=array resp={resp} status=0 err=[]")
    };
    let expected_cli = [
        vec![ok("SET", "user:1", "string")],
        vec![ok("GET", "user:1", "bulk_string")],
        vec!["INCR key=user:1 type=array resp=error status=1 err=[]".to_owned()],
        vec![ok("RPUSH", "list", "integer")],
        vec![ok("LRANGE", "list", "array")],
        vec![ok("GET", "missing", "bulk_string")],
    ];
    for (i, want) in expected_cli.iter().enumerate() {
        let g = &got[i];
        assert_eq!(&g[g.len() - want.len()..], &want[..], "redis-cli call {i}");
    }
    // --pipe: our 50 SETs, then redis-cli's ECHO marker.
    let pipe_calls = &got[6];
    assert_eq!(pipe_calls.len(), 51, "{pipe_calls:#?}");
    assert!(
        pipe_calls[..50]
            .iter()
            .all(|c| c == &ok("SET", &c[8..c.find(" type").unwrap()], "string"))
    );
    assert!(pipe_calls[50].starts_with("ECHO key= "));
    assert_eq!(
        got[7],
        [
            ok("INCR", "counter", "integer"),
            "PING key= type=inline resp=string status=0 err=[]".to_owned(),
            "HSET key=h1 type=array resp=error status=1 err=[]".to_owned(),
            ok("HELLO", "", "map"),
            ok("HSET", "h2", "integer"),
            ok("HGETALL", "h2", "map"),
        ]
    );
    assert_eq!(
        got[8],
        [
            ok("SUBSCRIBE", "", "array"),
            "subscribe key= type=push resp=array status=0 err=[]".to_owned(),
            "message key= type=push resp=array status=0 err=[]".to_owned(),
        ]
    );
    let push = calls.iter().find(|c| c.method == "message").unwrap();
    assert_eq!(push.attrs.str("redis_channel"), "news");
    assert!(!push.has_request);
    assert_eq!(got[9].last().unwrap(), &ok("PUBLISH", "", "integer"));
    assert_eq!(got.len(), 10, "{got:#?}");
    // Pipelined: the INCR's latency ends at its own reply.
    let incr = calls
        .iter()
        .find(|c| c.attrs.str("redis_key") == "counter")
        .unwrap();
    assert!(incr.elapsed_time < 1_000_000, "{}", incr.elapsed_time);
}
