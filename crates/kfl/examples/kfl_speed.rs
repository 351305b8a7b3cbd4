//! Rough speed of the reference interpreter and of `compile`, for the
//! report and for spotting regressions by eye: compiles a few typical
//! filters, then evaluates each over a million in-memory calls.
//! `cargo run --release -p trawl-kfl --example kfl_speed`
//! (The query engine runs filters as DataFusion expressions; this only
//! measures the interpreter that defines their meaning.)

use std::time::Instant;

use trawl_kfl::{Catalogue, EvalContext, FieldSpec, Record, Type, Value, compile};

struct Call {
    method: Value,
    path: Value,
    status: Value,
    elapsed: Value,
    headers: Value,
}

impl Record for Call {
    fn field(&self, idx: usize) -> Value {
        match idx {
            0 => self.method.clone(),
            1 => self.path.clone(),
            2 => self.status.clone(),
            3 => self.elapsed.clone(),
            4 => self.headers.clone(),
            _ => Value::Bool(true),
        }
    }
}

fn main() {
    let f = |name: &str, aliases: &[&str], ty: Type| FieldSpec {
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ty,
    };
    let cat = Catalogue::new(vec![
        f("method", &["request.method"], Type::String),
        f("path", &["request.path"], Type::String),
        f("status_code", &["response.status"], Type::Int),
        f("elapsed_time", &["elapsedTime"], Type::Int),
        f(
            "request.headers",
            &[],
            Type::Map(Box::new(Type::String), Box::new(Type::String)),
        ),
        f("http", &[], Type::Bool),
    ])
    .expect("distinct names");
    let calls: Vec<Call> = (0..1_000_000i64)
        .map(|i| Call {
            method: Value::string(["GET", "POST", "PUT"][(i % 3) as usize]),
            path: Value::string(&format!("/api/v1/items/{}", i % 1000)),
            status: Value::Int([200, 200, 404, 503][(i % 4) as usize]),
            elapsed: Value::Int(i % 100_000),
            headers: Value::Map(vec![(Value::string("host"), Value::string("api"))]),
        })
        .collect();
    let ctx = EvalContext::default();
    for src in [
        "http && status_code >= 500",
        "method == 'POST' && path.startsWith('/api/v1/') && elapsed_time > 50000",
        "path.matches('^/api/v[0-9]+/items/1[0-9]{2}$')",
        "request.headers['host'] == 'api' && status_code in [404, 503]",
    ] {
        let t = Instant::now();
        let n = 10_000;
        for _ in 0..n {
            std::hint::black_box(compile(src, &cat).expect("compiles"));
        }
        let compile_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        let filter = compile(src, &cat).expect("compiles");
        let t = Instant::now();
        let matched = calls.iter().filter(|c| filter.matches(*c, &ctx)).count();
        let ns = t.elapsed().as_secs_f64() * 1e9 / calls.len() as f64;
        println!(
            "{src:<75} compile {compile_us:6.1} µs  eval {ns:6.1} ns/call  ({matched} of {} match)",
            calls.len()
        );
    }
}
