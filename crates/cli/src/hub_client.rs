//! A small blocking client of trawl's HTTP API (`trawl-hub`), for the verbs
//! that work against a running `trawl tap` (`trawl snapshot`, `trawl export
//! pcap`, `trawl boundaries`; see `snapshot.rs`). It speaks JSON, turns the
//! API's error shape into one readable line (message, then the server's
//! suggestion), and streams downloads to a writer. reqwest is linked
//! already (object_store uses it), so this adds only its blocking layer.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Where `trawl tap` serves its API by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9900";

/// How long the default address gets to answer before the verbs fall back
/// to the data directory: a local tap answers in milliseconds, and a
/// refused connection fails at once.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Longest wait for one JSON answer. Snapshots of a large window copy
/// gigabytes; five minutes is far more than a local one takes, and a hung
/// server still ends the command.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct HubClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl HubClient {
    fn build(url: &str, token: Option<String>, timeout: Option<Duration>) -> anyhow::Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(HubClient {
            base: url.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// Connects to the API at `url`, checking that a trawl answers there.
    pub fn connect(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let c = Self::build(url, token, Some(REQUEST_TIMEOUT))?;
        match c.get("/api/v1/health") {
            Ok(v) if v["service"] == "trawl" => Ok(c),
            Ok(_) => bail!("{url} answers, but it is not a trawl API"),
            Err(e) => Err(e.context(format!(
                "no trawl API answers at {url}: start `trawl tap` (it serves the API), or give --data DIR to work on a data directory"
            ))),
        }
    }

    /// The API at `url` if a trawl answers there quickly; `None` otherwise.
    pub fn probe(url: &str, token: Option<String>) -> Option<Self> {
        let probe = Self::build(url, token.clone(), Some(PROBE_TIMEOUT)).ok()?;
        let v = probe.get("/api/v1/health").ok()?;
        if v["service"] != "trawl" {
            return None;
        }
        Self::build(url, token, Some(REQUEST_TIMEOUT)).ok()
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn send(
        &self,
        r: reqwest::blocking::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<reqwest::blocking::Response> {
        let resp = r
            .send()
            .with_context(|| format!("{what} at {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        let e = &body["error"];
        let mut msg = e["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {status}"), str::to_owned);
        if let Some(s) = e["suggestion"].as_str() {
            msg.push_str(&format!(" (suggestion: {s})"));
        }
        bail!("{what}: {msg}")
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.send(
            self.request(reqwest::Method::GET, path),
            &format!("GET {path}"),
        )?;
        r.json().context("the API's answer is not JSON")
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self.send(
            self.request(reqwest::Method::POST, path).json(body),
            &format!("POST {path}"),
        )?;
        r.json().context("the API's answer is not JSON")
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.send(
            self.request(reqwest::Method::DELETE, path),
            &format!("DELETE {path}"),
        )?;
        r.json().context("the API's answer is not JSON")
    }

    /// Streams the body of `GET path?query` into `out`; returns its bytes.
    /// No overall timeout: an export of a large snapshot takes as long as
    /// it takes.
    pub fn download(
        &self,
        path: &str,
        query: &[(&str, String)],
        out: &mut dyn Write,
    ) -> anyhow::Result<u64> {
        let r = self
            .request(reqwest::Method::GET, path)
            .query(query)
            .timeout(Duration::from_secs(24 * 3600));
        let mut resp = self.send(r, &format!("GET {path}"))?;
        let n = resp
            .copy_to(out)
            .with_context(|| format!("reading {path} from {}", self.base))?;
        Ok(n)
    }
}
