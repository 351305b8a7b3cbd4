//! Fuzzes the KFL front end and interpreter: arbitrary UTF-8 is compiled
//! against a small catalogue shaped like trawl's call fields; whatever
//! compiles is evaluated on one record. Nothing may panic or overflow the
//! stack; errors are the expected outcome for most inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_kfl::{Catalogue, EvalContext, FieldSpec, Record, Type, Value, compile};

fn catalogue() -> Catalogue {
    let f = |name: &str, aliases: &[&str], ty: Type| FieldSpec {
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ty,
    };
    let map_ss = || Type::Map(Box::new(Type::String), Box::new(Type::String));
    Catalogue::new(vec![
        f("method", &["request.method"], Type::String),
        f("path", &["request.path"], Type::String),
        f("status_code", &["response.status"], Type::Int),
        f("elapsed_time", &["elapsedTime"], Type::Int),
        f("request.headers", &[], map_ss()),
        f("dns_questions", &[], Type::List(Box::new(Type::String))),
        f("src.pod.name", &[], Type::String),
        f("http", &[], Type::Bool),
        f("dns", &[], Type::Bool),
        f("timestamp", &[], Type::Timestamp),
        f("request_body_size", &[], Type::Uint),
        f("score", &[], Type::Double),
        f("anything", &[], Type::Dyn),
    ])
    .expect("fuzz catalogue has distinct names")
}

struct Call;

impl Record for Call {
    fn field(&self, idx: usize) -> Value {
        match idx {
            0 => Value::string("GET"),
            1 => Value::string("/api/v1/users"),
            2 => Value::Int(503),
            3 => Value::Int(1500),
            4 => Value::Map(vec![(Value::string("host"), Value::string("api"))]),
            5 => Value::List(vec![Value::string("example.com")]),
            6 => Value::string("cart-1"),
            7 => Value::Bool(true),
            8 => Value::Bool(false),
            9 => Value::Timestamp(1_714_557_600_000_000_000),
            10 => Value::Uint(1024),
            11 => Value::Double(0.5),
            _ => Value::List(vec![Value::Int(1), Value::string("x")]),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let cat = catalogue();
    match compile(src, &cat) {
        Ok(filter) => {
            let _ = filter.matches(
                &Call,
                &EvalContext {
                    now: 1_714_557_900_000_000_000,
                },
            );
        }
        // Errors must render (their positions lie inside the input).
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
