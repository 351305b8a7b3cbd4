//! PostgreSQL: agreement with tshark 4.0 on the shared `pgsql-*` captures
//! (each message tshark reports, by direction, type, query text and
//! SQLSTATE, found in trawl's calls), and a live test against a real
//! throwaway cluster (initdb + pg_ctl as the postgres user) with psql
//! (SSLRequest refused, SCRAM login, simple queries, an error, COPY) and
//! pg8000 (the extended protocol).
//!
//! Uses data from ../shared/pcaps, PostgreSQL from apt and pg8000 from
//! pip; skips loudly when they are absent.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use trawl_model::{AttrValue, Call, Protocol};

use crate::common::{LiveCapture, Row, ep};
use crate::redis::{agreement_on, tsv_escape};

/// tshark 4.0's name for each message name trawl lists.
fn tshark_name(name: &str) -> &str {
    if name.starts_with("Authentication") {
        return "Authentication request";
    }
    match name {
        "SSLRequest" => "SSL request",
        "StartupMessage" => "Startup message",
        "CancelRequest" => "Cancel request",
        "Query" => "Simple query",
        "Terminate" => "Termination",
        "CopyData" => "Copy data",
        "CopyDone" => "Copy completion",
        "CopyFail" => "Copy failure",
        "PasswordMessage" => "Password message",
        "SASLInitialResponse" => "SASLInitialResponse message",
        "SASLResponse" => "SASLResponse message",
        "ParameterStatus" => "Parameter status",
        "BackendKeyData" => "Backend key data",
        "ReadyForQuery" => "Ready for query",
        "RowDescription" => "Row description",
        "DataRow" => "Data row",
        "CommandComplete" => "Command completion",
        "ErrorResponse" => "Error",
        "NoticeResponse" => "Notice",
        "CopyInResponse" => "CopyIn response",
        "CopyOutResponse" => "CopyOut response",
        "ParseComplete" => "Parse completion",
        "BindComplete" => "Bind completion",
        "CloseComplete" => "Close completion",
        "NoData" => "No data",
        "ParameterDescription" => "Parameter description",
        "EmptyQueryResponse" => "Empty query",
        other => other,
    }
}

pub fn list(c: &Call, k: &str) -> Vec<String> {
    match c.attrs.get(k) {
        Some(AttrValue::StrList(v)) => v.clone(),
        _ => Vec::new(),
    }
}

fn pg_keys(c: &Call) -> Vec<String> {
    if c.protocol != Some(Protocol::Postgresql) {
        return Vec::new();
    }
    let client = ep(c.src.ip, c.src.port);
    let server = ep(c.dst.ip, c.dst.port);
    let query = tsv_escape(c.attrs.str("postgresql_query"));
    let mut keys = Vec::new();
    let mut query_used = false;
    for m in list(c, "postgresql_request_messages") {
        let q = if (m == "Query" || m == "Parse") && !query_used {
            query_used = true;
            query.as_str()
        } else {
            ""
        };
        keys.push(format!("1 {client} {server} {} {q}", tshark_name(&m)));
    }
    for m in list(c, "postgresql_response_messages") {
        if m.starts_with("Encryption") {
            continue;
        }
        let code = if m == "ErrorResponse" {
            c.attrs.str("postgresql_error_code")
        } else {
            ""
        };
        keys.push(format!("0 {server} {client} {} {code}", tshark_name(&m)));
    }
    for _ in 0..c.attrs.int("postgresql_rows") {
        keys.push(format!("0 {server} {client} Data row "));
    }
    keys
}

fn pg_truth_key(r: &Row) -> Option<String> {
    let src = format!("{}|{}", r.get("src"), r.get("sport"));
    let dst = format!("{}|{}", r.get("dst"), r.get("dport"));
    let extra = if r.get("pgsql.frontend") == "1" {
        r.get("pgsql.query")
    } else if r.get("pgsql.type") == "Error" {
        r.get("pgsql.code")
    } else {
        ""
    };
    Some(format!(
        "{} {src} {dst} {} {extra}",
        r.get("pgsql.frontend"),
        r.get("pgsql.type")
    ))
}

#[test]
fn postgresql_agrees_with_tshark() {
    agreement_on(
        "PostgreSQL",
        "pgsql-",
        "direction, message type, the query of Query and Parse messages, and the SQLSTATE of errors",
        &[],
        &pg_keys,
        &pg_truth_key,
        &|_| None,
    );
}

/// The directory of PostgreSQL's server programs (Debian's layout first).
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// A throwaway cluster in a temporary directory, stopped on drop.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
}

impl Cluster {
    fn start(port: u16) -> Option<Cluster> {
        let Some(bin) = pg_bin() else {
            eprintln!("SKIPPED: PostgreSQL server missing (apt-get install postgresql)");
            return None;
        };
        if Command::new("runuser").arg("--help").output().is_err() {
            eprintln!("SKIPPED: runuser missing; cannot run PostgreSQL as the postgres user");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("trawl-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "secret\n").unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        if !chown.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: cannot chown a directory to postgres (not root?)");
            return None;
        }
        let as_pg = |prog: &str, args: &[&str]| {
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join(prog))
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{prog} {args:?}: {out:?}");
        };
        let data = dir.join("data");
        let data = data.to_str().unwrap();
        as_pg(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", dir.join("pw").display()),
            ],
        );
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c ssl=off",
            dir.display()
        );
        let log = dir.join("log");
        as_pg(
            "pg_ctl",
            &[
                "-D",
                data,
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Cluster { bin, dir })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.dir.join("data").to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn summary(c: &Call) -> String {
    format!(
        "{} {:?} tag={} rows={} err={} status={}",
        c.attrs.str("postgresql_message_type"),
        c.attrs.str("postgresql_query"),
        c.attrs.str("postgresql_command_tag"),
        c.attrs.int("postgresql_rows"),
        c.attrs.str("postgresql_error_code"),
        c.status_code
    )
}

#[test]
fn postgresql_live_psql_and_pg8000() {
    const PORT: u16 = 15432;
    if Command::new("psql").arg("--version").output().is_err() {
        eprintln!("SKIPPED: psql missing (apt-get install postgresql-client)");
        return;
    }
    let Some(_cluster) = Cluster::start(PORT) else {
        return;
    };
    let Some(cap) = LiveCapture::start("lo", &format!("tcp port {PORT}")) else {
        return;
    };
    let conninfo = format!(
        "host=127.0.0.1 port={PORT} user=postgres dbname=postgres sslmode=prefer gssencmode=disable application_name=trawl-live"
    );
    let psql = Command::new("psql")
        .env("PGPASSWORD", "secret")
        .args([&conninfo, "-X", "-q", "-v", "ON_ERROR_STOP=0"])
        .args(["-c", "CREATE TABLE items (id int PRIMARY KEY, name text)"])
        .args(["-c", "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')"])
        .args(["-c", "SELECT id, name FROM items ORDER BY id"])
        .args(["-c", "SELECT * FROM no_such_table"])
        .args(["-c", "COPY items FROM STDIN"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut psql = psql;
    {
        use std::io::Write;
        let mut stdin = psql.stdin.take().unwrap();
        stdin.write_all(b"3\tplum\n4\tfig\n\\.\n").unwrap();
    }
    let out = psql.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_table"), "psql: {out:?}");
    // pg8000: the extended protocol (Parse/Bind/Describe/Execute/Sync).
    let script = format!(
        r#"
import pg8000.native
c = pg8000.native.Connection("postgres", host="127.0.0.1", port={PORT}, password="secret", database="postgres", application_name="pg8000-live")
print(c.run("SELECT name FROM items WHERE id = :id", id=2))
try:
    c.run("SELECT 1/0")
except Exception as e:
    print("error", e.args[0]["C"])
c.close()
"#
    );
    let py = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let py_ok = py.status.success();
    if !py_ok {
        eprintln!("SKIPPED (part): pg8000 client failed or missing (pip install pg8000): {py:?}");
    } else {
        let stdout = String::from_utf8_lossy(&py.stdout);
        assert!(
            stdout.contains("[['pear']]") && stdout.contains("error 22012"),
            "{stdout}"
        );
    }
    let calls: Vec<Call> = cap
        .stop()
        .into_iter()
        .filter(|c| c.protocol == Some(Protocol::Postgresql))
        .collect();
    for c in &calls {
        println!("{} {}", c.conn_id, summary(c));
    }
    let conn_of = |app: &str| {
        calls
            .iter()
            .find(|c| c.attrs.str("postgresql_application_name") == app)
            .map(|c| c.conn_id)
    };
    let psql_conn = conn_of("trawl-live").expect("psql's connection");
    let psql_calls: Vec<&Call> = calls.iter().filter(|c| c.conn_id == psql_conn).collect();
    let got: Vec<String> = psql_calls.iter().map(|c| summary(c)).collect();
    assert_eq!(
        got,
        [
            r#"SSLRequest "" tag= rows=0 err= status=0"#,
            r#"StartupMessage "" tag= rows=0 err= status=0"#,
            r#"Query "CREATE TABLE items (id int PRIMARY KEY, name text)" tag=CREATE TABLE rows=0 err= status=0"#,
            r#"Query "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')" tag=INSERT 0 2 rows=0 err= status=0"#,
            r#"Query "SELECT id, name FROM items ORDER BY id" tag=SELECT 2 rows=2 err= status=0"#,
            r#"Query "SELECT * FROM no_such_table" tag= rows=0 err=42P01 status=1"#,
            r#"Query "COPY items FROM STDIN" tag=COPY 2 rows=0 err= status=0"#,
            r#"Terminate "" tag= rows=0 err= status=0"#,
        ]
    );
    let startup = psql_calls[1];
    assert_eq!(startup.attrs.str("postgresql_user"), "postgres");
    assert_eq!(startup.attrs.str("postgresql_database"), "postgres");
    assert!(
        list(startup, "postgresql_request_messages").contains(&"SASLInitialResponse".to_owned())
    );
    assert_eq!(psql_calls[0].attrs.get("postgresql_tls"), None);
    let copy = psql_calls[6];
    assert_eq!(
        list(copy, "postgresql_request_messages")
            .last()
            .map(String::as_str),
        Some("CopyDone")
    );
    let select = psql_calls[4];
    assert_eq!(select.method, "SELECT");
    assert_eq!(select.path, "SELECT id, name FROM items ORDER BY id");
    assert!(select.elapsed_time > 0);
    let insert = psql_calls[3];
    assert_eq!(insert.path, "INSERT INTO items VALUES (?, ?), (?, ?)");
    assert_eq!(insert.attrs.int("postgresql_rows_affected"), 2);
    if py_ok {
        let ext_conn = conn_of("pg8000-live").expect("pg8000's connection");
        let ext: Vec<&Call> = calls.iter().filter(|c| c.conn_id == ext_conn).collect();
        let with_query = |q: &str| -> Vec<&Call> {
            ext.iter()
                .copied()
                .filter(|c| c.attrs.str("postgresql_query") == q)
                .collect()
        };
        let sel = with_query("SELECT name FROM items WHERE id = $1");
        let executed = sel
            .iter()
            .find(|c| list(c, "postgresql_request_messages").contains(&"Execute".to_owned()))
            .expect("pg8000's SELECT executed");
        assert_eq!(executed.attrs.int("postgresql_rows"), 1);
        assert_eq!(executed.attrs.str("postgresql_command_tag"), "SELECT 1");
        assert!(list(executed, "postgresql_request_messages").ends_with(&["Sync".to_owned()]));
        let div = with_query("SELECT 1/0");
        assert!(
            div.iter()
                .any(|c| c.attrs.str("postgresql_error_code") == "22012"),
            "{div:#?}"
        );
        assert!(ext.iter().all(|c| c.errors.is_empty()), "{ext:#?}");
        assert_eq!(ext.last().unwrap().method, "Terminate");
    }
}
