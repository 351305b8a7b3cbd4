//! Kafka against tshark 4.0 on the shared captures (request and response
//! headers by correlation id), and a live test: requests encoded with the
//! `kafka-protocol` crate, sent over loopback to a minimal broker written
//! here, captured by trawl.
//!
//! Uses data from ../shared/pcaps; skips loudly when it is absent.

use trawl_model::{Call, Protocol};

use crate::common::{Row, ep, shared_pcaps};
use crate::tls::{Keys, agree, load};

fn call_keys(c: &Call) -> Vec<String> {
    if c.protocol != Some(Protocol::Kafka) {
        return Vec::new();
    }
    let client = ep(c.src.ip, c.src.port);
    let server = ep(c.dst.ip, c.dst.port);
    let a = &c.attrs;
    let corr = a.int("kafka_correlation_id");
    let mut keys = Vec::new();
    if c.has_request {
        // tshark names topics of more requests than trawl reads (and none
        // of those it cannot decode): the key without topics always, and
        // with the first topic (tshark's `kafka.topic_name` is the first
        // occurrence) for Produce, Fetch and Metadata.
        let head = format!(
            "request {client} {server} key={} v={} corr={corr} client={}",
            a.int("kafka_api_key"),
            a.int("kafka_api_version"),
            a.str("kafka_client_id"),
        );
        if let Some(t) = a
            .str("kafka_request_summary")
            .split(',')
            .next()
            .filter(|t| !t.is_empty())
        {
            keys.push(format!("{head} topic={t}"));
        }
        keys.push(head);
    }
    if c.has_response {
        // tshark 4.0 leaves the key and version of responses it cannot
        // decode empty; those rows are keyed by correlation id alone.
        keys.push(format!(
            "response {server} {client} key={} v={} corr={corr}",
            a.int("kafka_api_key"),
            a.int("kafka_api_version")
        ));
        keys.push(format!("response {server} {client} corr={corr}"));
    }
    keys
}

fn row_key(r: &Row) -> Option<String> {
    let src = format!("{}|{}", r.get("src"), r.get("sport"));
    let dst = format!("{}|{}", r.get("dst"), r.get("dport"));
    let corr = r.get("kafka.correlation_id");
    match r.get("kind") {
        "request" => {
            let head = format!(
                "request {src} {dst} key={} v={} corr={corr} client={}",
                r.get("api_key"),
                r.get("api_version"),
                r.get("kafka.client_id"),
            );
            let topic = r.get("kafka.topic_name");
            Some(
                if ["0", "1", "3"].contains(&r.get("api_key")) && !topic.is_empty() {
                    format!("{head} topic={topic}")
                } else {
                    head
                },
            )
        }
        "response" if r.get("api_key").is_empty() => {
            Some(format!("response {src} {dst} corr={corr}"))
        }
        "response" => Some(format!(
            "response {src} {dst} key={} v={} corr={corr}",
            r.get("api_key"),
            r.get("api_version")
        )),
        _ => None,
    }
}

fn explain(_key: &str, _row: &Row) -> Option<&'static str> {
    None
}

const KEYS: Keys = Keys {
    protocol: "kafka",
    call_keys,
    row_key,
    explain,
    notes: "A tshark row is one Kafka request or response. Requests are keyed by endpoints, API key, \
        version, correlation id and client id, plus the first topic for Produce, Fetch and \
        Metadata when tshark names one (tshark also names topics of other keys, which trawl does \
        not read, and none for versions it cannot decode). Responses are keyed by endpoints and \
        correlation id, with the API key and version where tshark shows them: tshark 4.0 marks \
        flexible versions it does not know (Fetch v12/v13 here) \"Unsupported API version\" and \
        leaves their responses' key and version empty; trawl decodes them (its header table \
        agrees with the kafka-protocol crate for every key and version). Newer tshark releases \
        dissect these captures differently.",
};

#[test]
fn kafka_agrees_with_tshark() {
    let Some(dir) = shared_pcaps() else {
        eprintln!("SKIPPED: ../shared/pcaps is absent; Kafka agreement not checked.");
        return;
    };
    let caps = load(&dir, "kafka-");
    assert_eq!(caps.len(), 6);
    agree(&KEYS, caps);
}

mod live {
    //! A client and a minimal broker, both written with the
    //! `kafka-protocol` crate, over loopback (no Kafka broker can be
    //! installed here). The broker answers ApiVersions, Metadata, Produce
    //! (error 29, TOPIC_AUTHORIZATION_FAILED, for topic "forbidden") and
    //! Fetch; the client logs what it sent and checks each response's
    //! correlation id.

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use bytes::Bytes;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse,
        MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
        RequestKind, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use trawl_model::Protocol;

    fn read_message(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).ok()?;
        Some(buf)
    }

    fn write_message(s: &mut TcpStream, body: &[u8]) {
        let mut m = (body.len() as u32).to_be_bytes().to_vec();
        m.extend_from_slice(body);
        s.write_all(&m).unwrap();
    }

    fn broker(listener: TcpListener) {
        let (mut s, _) = listener.accept().unwrap();
        while let Some(msg) = read_message(&mut s) {
            let key = ApiKey::try_from(i16::from_be_bytes([msg[0], msg[1]])).unwrap();
            let version = i16::from_be_bytes([msg[2], msg[3]]);
            let mut buf = Bytes::from(msg);
            let header =
                RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
            let request = RequestKind::decode(key, &mut buf, version).unwrap();
            let mut out = Vec::new();
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, key.response_header_version(version))
                .unwrap();
            match request {
                RequestKind::ApiVersions(_) => {
                    let keys = [
                        ApiKey::Produce,
                        ApiKey::Fetch,
                        ApiKey::Metadata,
                        ApiKey::ApiVersions,
                    ]
                    .map(|k| {
                        let r = k.valid_versions();
                        ApiVersion::default()
                            .with_api_key(k as i16)
                            .with_min_version(r.min)
                            .with_max_version(r.max)
                    });
                    ApiVersionsResponse::default()
                        .with_api_keys(keys.to_vec())
                        .encode(&mut out, version)
                }
                RequestKind::Metadata(_) => MetadataResponse::default().encode(&mut out, version),
                RequestKind::Produce(p) => {
                    let responses = p
                        .topic_data
                        .iter()
                        .map(|t| {
                            let error = if &*t.name.0 == "forbidden" { 29 } else { 0 };
                            TopicProduceResponse::default()
                                .with_name(t.name.clone())
                                .with_partition_responses(vec![
                                    PartitionProduceResponse::default()
                                        .with_index(0)
                                        .with_error_code(error),
                                ])
                        })
                        .collect();
                    ProduceResponse::default()
                        .with_responses(responses)
                        .encode(&mut out, version)
                }
                RequestKind::Fetch(_) => FetchResponse::default().encode(&mut out, version),
                other => panic!("the test broker does not answer {other:?}"),
            }
            .unwrap();
            write_message(&mut s, &out);
        }
    }

    /// What the client sent: (key name, version, correlation id, topics).
    type Sent = (String, i64, i64, String);

    fn send(
        s: &mut TcpStream,
        key: ApiKey,
        version: i16,
        corr: i32,
        body: impl Encodable,
        topics: &str,
        log: &mut Vec<Sent>,
    ) {
        let mut out = Vec::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("trawl-test-client")))
            .encode(&mut out, key.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        write_message(s, &out);
        let resp = read_message(s).unwrap();
        let mut buf = Bytes::from(resp);
        let header =
            ResponseHeader::decode(&mut buf, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, corr);
        let name = trawl_dissect::protocols::kafka::parser::api_key_name(key as i16).unwrap();
        log.push((
            name.to_owned(),
            i64::from(version),
            i64::from(corr),
            topics.to_owned(),
        ));
    }

    fn produce(topic: &'static str) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(topic)))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from_static(b"not a real record batch"))),
                    ]),
            ])
    }

    fn fetch(topic: &'static str) -> FetchRequest {
        FetchRequest::default()
            .with_max_wait_ms(10)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str(topic)))
                    .with_partitions(vec![FetchPartition::default().with_partition(0)]),
            ])
    }

    #[test]
    fn live_kafka_client_and_broker_over_loopback() {
        let port = 19_092;
        let Some(cap) = crate::common::LiveCapture::start("lo", &format!("tcp port {port}")) else {
            return;
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let broker = std::thread::spawn(move || broker(listener));
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut log = Vec::new();
        send(
            &mut s,
            ApiKey::ApiVersions,
            3,
            1,
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("trawl"))
                .with_client_software_version(StrBytes::from_static_str("0.1")),
            "",
            &mut log,
        );
        let topic = MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("orders"))));
        send(
            &mut s,
            ApiKey::Metadata,
            12,
            2,
            MetadataRequest::default().with_topics(Some(vec![topic])),
            "orders",
            &mut log,
        );
        send(
            &mut s,
            ApiKey::Metadata,
            1,
            3,
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("a")))),
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("b")))),
            ])),
            "a,b",
            &mut log,
        );
        send(
            &mut s,
            ApiKey::Produce,
            9,
            4,
            produce("orders"),
            "orders",
            &mut log,
        );
        send(
            &mut s,
            ApiKey::Produce,
            3,
            5,
            produce("forbidden"),
            "forbidden",
            &mut log,
        );
        send(
            &mut s,
            ApiKey::Fetch,
            12,
            6,
            fetch("orders"),
            "orders",
            &mut log,
        );
        send(
            &mut s,
            ApiKey::Fetch,
            4,
            7,
            fetch("payments"),
            "payments",
            &mut log,
        );
        drop(s);
        broker.join().unwrap();
        let calls = cap.stop();
        let kafka: Vec<_> = calls
            .iter()
            .filter(|c| c.protocol == Some(Protocol::Kafka))
            .collect();
        let seen: Vec<Sent> = kafka
            .iter()
            .map(|c| {
                let a = &c.attrs;
                (
                    a.str("kafka_api_key_name").to_owned(),
                    a.int("kafka_api_version"),
                    a.int("kafka_correlation_id"),
                    a.str("kafka_request_summary").to_owned(),
                )
            })
            .collect();
        assert_eq!(seen, log);
        for c in &kafka {
            assert_eq!(c.attrs.str("kafka_client_id"), "trawl-test-client");
            assert!(
                c.has_request && c.has_response && c.errors.is_empty(),
                "{c:?}"
            );
        }
        let errors: Vec<i64> = kafka
            .iter()
            .map(|c| c.attrs.int("kafka_error_code"))
            .collect();
        assert_eq!(errors, vec![0, 0, 0, 0, 29, 0, 0]);
    }
}
