//! MySQL/MariaDB: agreement with tshark 4.0 on the shared `mysql-*`
//! captures (each packet tshark reports, by direction and kind: greeting
//! version, login user, command and query, OK, EOF, ERR with its number,
//! result set header with its column count, other packets), and a live
//! test against a throwaway MariaDB server (mariadb-install-db + mariadbd
//! in a temporary directory) with pymysql (login, queries, an error,
//! COM_INIT_DB, COM_PING) and mysql-connector-python's prepared cursor
//! (COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_CLOSE).
//!
//! Uses data from ../shared/pcaps, mariadb-server from apt and the two
//! Python clients from pip; skips loudly when they are absent.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trawl_model::{Call, Protocol};

use crate::common::{LiveCapture, Row, ep};
use crate::postgresql::list;
use crate::redis::{agreement_on, tsv_escape};

fn mysql_keys(c: &Call) -> Vec<String> {
    if c.protocol != Some(Protocol::Mysql) {
        return Vec::new();
    }
    let client = ep(c.src.ip, c.src.port);
    let server = ep(c.dst.ip, c.dst.port);
    let mut keys = Vec::new();
    for (i, m) in list(c, "mysql_request_messages").iter().enumerate() {
        let k = match m.as_str() {
            "HandshakeResponse" | "SSLRequest" => {
                format!("login {}", c.attrs.str("mysql_user"))
            }
            cmd if i == 0 && cmd.starts_with("COM_") => format!(
                "command {} {}",
                command_number(cmd),
                // tshark shows line ends and tabs in a query as spaces.
                tsv_escape(&c.attrs.str("mysql_query").replace(['\n', '\r', '\t'], " "))
            ),
            _ => "other".to_owned(),
        };
        keys.push(format!("{client} {server} {k}"));
    }
    let resp = list(c, "mysql_response_messages");
    let n_err = resp.iter().filter(|m| *m == "ERR").count();
    for m in &resp {
        let k = match m.as_str() {
            "Greeting" => format!("greeting {}", c.attrs.str("mysql_server_version")),
            "OK" | "PrepareOK" => "0x00".to_owned(),
            "EOF" => "0xfe".to_owned(),
            "ERR" if n_err == 1 => format!("0xff {}", c.attrs.int("mysql_error_code")),
            "ResultSetHeader" => format!("fields {}", c.attrs.int("mysql_columns")),
            _ => "other".to_owned(),
        };
        keys.push(format!("{server} {client} {k}"));
    }
    for _ in 0..c.attrs.int("mysql_rows") {
        keys.push(format!("{server} {client} other"));
    }
    keys
}

fn command_number(name: &str) -> u8 {
    (0u8..=0xff)
        .find(|&n| trawl_dissect::protocols::mysql::parser::command_name(n) == name)
        .unwrap_or(0xff)
}

fn mysql_truth_key(r: &Row) -> Option<String> {
    let src = format!("{}|{}", r.get("src"), r.get("sport"));
    let dst = format!("{}|{}", r.get("dst"), r.get("dport"));
    let k = if !r.get("mysql.version").is_empty() {
        format!("greeting {}", r.get("mysql.version"))
    } else if !r.get("mysql.user").is_empty() {
        format!("login {}", r.get("mysql.user"))
    } else if !r.get("mysql.command").is_empty() {
        format!(
            "command {} {}",
            r.get("mysql.command"),
            r.get("mysql.query")
        )
    } else if !r.get("mysql.num_fields").is_empty() {
        format!("fields {}", r.get("mysql.num_fields"))
    } else {
        match r.get("mysql.response_code") {
            "0xff" => format!("0xff {}", r.get("mysql.error_code")),
            "" => "other".to_owned(),
            code => code.to_owned(),
        }
    };
    Some(format!("{src} {dst} {k}"))
}

#[test]
fn mysql_agrees_with_tshark() {
    agreement_on(
        "MySQL",
        "mysql-",
        "direction and packet kind: the greeting's server version, the login's user, a command's \
         number and query, OK, EOF, ERR with its error number, a result set header with its column \
         count, and other packets (column definitions, rows, auth data) by count",
        &[(
            "mysql-pcapplusplus-pcapng-example.pcapng",
            "MySQL inside TLS: reading it needs the TLS key log (mysql-pcapplusplus-pcapng-example.keylog) \
             and TLS decryption, which trawl does not do yet",
        )],
        &mysql_keys,
        &mysql_truth_key,
        &|key| {
            key.ends_with(" command 202 ").then_some(
                "tshark reads the client's RSA-encrypted password (caching_sha2_password full \
                 authentication, a client packet with sequence id 5) as a command; trawl counts \
                 it as AuthData of the login call",
            )
        },
    );
}

/// A throwaway MariaDB server in a temporary directory, killed on drop.
struct Mariadb {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Mariadb {
    fn start(port: u16) -> Option<Mariadb> {
        let have = |p: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if (!have("mariadbd") && !std::path::Path::new("/usr/sbin/mariadbd").exists())
            || !have("mariadb-install-db")
            || !have("mariadb")
        {
            eprintln!(
                "SKIPPED: mariadbd, mariadb-install-db or mariadb missing (apt-get install mariadb-server)"
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!("trawl-mariadb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        let socket = dir.join("sock");
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb-install-db: {out:?}");
        let mariadbd = if have("mariadbd") {
            "mariadbd".into()
        } else {
            PathBuf::from("/usr/sbin/mariadbd")
        };
        let child = Command::new(mariadbd)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-log-bin",
                "--skip-name-resolve",
            ])
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let m = Mariadb { child, dir, socket };
        m.sql(
            "CREATE DATABASE shop; CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'secret'; \
               GRANT ALL ON shop.* TO 'app'@'127.0.0.1'; \
               CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20))",
        );
        Some(m)
    }

    /// Runs SQL as root over the Unix socket (not captured).
    fn sql(&self, sql: &str) {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-u", "root", "-e", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb -e {sql}: {out:?}");
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn summary(c: &Call) -> String {
    format!(
        "{} {:?} rows={} affected={} err={} status={}",
        c.attrs.str("mysql_command"),
        c.attrs.str("mysql_query"),
        c.attrs.int("mysql_rows"),
        c.attrs.int("mysql_affected_rows"),
        c.attrs.int("mysql_error_code"),
        c.status_code
    )
}

#[test]
fn mysql_live_mariadb_pymysql_and_prepared() {
    const PORT: u16 = 13306;
    let py_has = |m: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !py_has("pymysql") || !py_has("mysql.connector") {
        eprintln!(
            "SKIPPED: pymysql or mysql-connector-python missing (pip install pymysql mysql-connector-python)"
        );
        return;
    }
    let Some(_server) = Mariadb::start(PORT) else {
        return;
    };
    let Some(cap) = LiveCapture::start("lo", &format!("tcp port {PORT}")) else {
        return;
    };
    let script = format!(
        r#"
import pymysql, mysql.connector
c = pymysql.connect(host="127.0.0.1", port={PORT}, user="app", password="secret", database="shop", ssl_disabled=True)
cur = c.cursor()
cur.execute("INSERT INTO items VALUES (1, 'apple'), (2, 'pear')")
c.commit()
cur.execute("SELECT id, name FROM items ORDER BY id")
print(cur.fetchall())
try:
    cur.execute("SELECT * FROM missing")
except Exception as e:
    print("error", e.args[0])
c.select_db("shop")
c.ping(reconnect=False)
c.close()
m = mysql.connector.connect(host="127.0.0.1", port={PORT}, user="app", password="secret", database="shop", use_pure=True, ssl_disabled=True, autocommit=True)
p = m.cursor(prepared=True)
p.execute("SELECT name FROM items WHERE id = ?", (2,))
print(p.fetchall())
p.close()
m.close()
"#
    );
    let py = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(py.status.success(), "{py:?}");
    let stdout = String::from_utf8_lossy(&py.stdout);
    assert!(
        stdout.contains("error 1146") && stdout.contains("[('pear',)]"),
        "{stdout}"
    );
    let calls: Vec<Call> = cap
        .stop()
        .into_iter()
        .filter(|c| c.protocol == Some(Protocol::Mysql))
        .collect();
    for c in &calls {
        println!(
            "{} {} {:?} {:?}",
            c.conn_id,
            summary(c),
            c.errors,
            list(c, "mysql_response_messages")
        );
    }
    let first_conn = calls[0].conn_id;
    let py1: Vec<String> = calls
        .iter()
        .filter(|c| c.conn_id == first_conn)
        .map(summary)
        .collect();
    // pymysql: login, the client's own SET NAMES and SET AUTOCOMMIT, ours.
    let ours: Vec<&String> = py1
        .iter()
        .filter(|s| !s.starts_with("COM_QUERY \"SET "))
        .collect();
    assert_eq!(
        ours,
        [
            r#"LOGIN "" rows=0 affected=0 err=0 status=0"#,
            r#"COM_QUERY "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')" rows=0 affected=2 err=0 status=0"#,
            r#"COM_QUERY "COMMIT" rows=0 affected=0 err=0 status=0"#,
            r#"COM_QUERY "SELECT id, name FROM items ORDER BY id" rows=2 affected=0 err=0 status=0"#,
            r#"COM_QUERY "SELECT * FROM missing" rows=0 affected=0 err=1146 status=1146"#,
            r#"COM_INIT_DB "" rows=0 affected=0 err=0 status=0"#,
            r#"COM_PING "" rows=0 affected=0 err=0 status=0"#,
            r#"COM_QUIT "" rows=0 affected=0 err=0 status=0"#,
        ]
    );
    let login = calls.iter().find(|c| c.conn_id == first_conn).unwrap();
    assert_eq!(login.attrs.str("mysql_user"), "app");
    assert_eq!(login.attrs.str("mysql_database"), "shop");
    assert!(login.attrs.str("mysql_server_version").contains("MariaDB"));
    assert!(calls.iter().all(|c| c.errors.is_empty()), "errors in calls");
    let select = calls
        .iter()
        .find(|c| c.attrs.str("mysql_query") == "SELECT id, name FROM items ORDER BY id")
        .unwrap();
    assert_eq!(select.method, "SELECT");
    assert_eq!(select.attrs.int("mysql_columns"), 2);
    // mysql-connector's prepared cursor: prepare, execute, close.
    let stmt: Vec<&Call> = calls
        .iter()
        .filter(|c| c.attrs.str("mysql_query") == "SELECT name FROM items WHERE id = ?")
        .collect();
    let cmds: Vec<&str> = stmt.iter().map(|c| c.attrs.str("mysql_command")).collect();
    // The connector resets the statement before each execution.
    assert_eq!(
        cmds,
        [
            "COM_STMT_PREPARE",
            "COM_STMT_RESET",
            "COM_STMT_EXECUTE",
            "COM_STMT_CLOSE"
        ]
    );
    let id = stmt[0].attrs.int("mysql_statement_id");
    assert!(stmt.iter().all(|c| c.attrs.int("mysql_statement_id") == id));
    assert_eq!(stmt[2].attrs.int("mysql_rows"), 1);
    assert_eq!(stmt[2].method, "SELECT");
}
