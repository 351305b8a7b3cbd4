//! Catalogue slice of Kafka calls: one call per request/response pair,
//! matched by correlation id, filled by `trawl_dissect::protocols::kafka`.
//! Kubeshark's KFL2 names where it has them (`kafka_api_key`,
//! `kafka_api_key_name`, `kafka_client_id`, `kafka_request_summary`,
//! sizes); the rest follow its `kafka_` pattern.

use crate::catalogue::{FieldDef, FieldType as T, f};

#[rustfmt::skip]
pub static FIELDS: &[FieldDef] = &[
    f("kafka", &[], T::Bool, "kafka", "true",
        "True for Kafka calls (protocol == \"kafka\")."),
    f("kafka_api_key", &[], T::Int, "kafka_api_key", "0",
        "API key number of the request (0 Produce, 1 Fetch, 3 Metadata, 18 ApiVersions, …)."),
    f("kafka_api_key_name", &[], T::String, "kafka_api_key_name", r#""PRODUCE""#,
        "API key name as Kafka's ApiKeys enum spells it (\"PRODUCE\", \"FETCH\", \"METADATA\", \"API_VERSIONS\", …); \"API_KEY_<n>\" for keys trawl does not know."),
    f("kafka_api_version", &[], T::Int, "kafka_api_version", "9",
        "API version of the request."),
    f("kafka_correlation_id", &[], T::Int, "kafka_correlation_id", "42",
        "Correlation id that pairs the response with its request."),
    f("kafka_client_id", &[], T::String, "kafka_client_id", r#""payment-processor""#,
        "Client id from the request header."),
    f("kafka_topics", &[], T::StringList, "kafka_topics", r#""orders" in kafka_topics"#,
        "Topics named by a Produce, Fetch or Metadata request, in wire order."),
    f("kafka_request_summary", &[], T::String, "kafka_request_summary", r#""orders""#,
        "The request's topics joined with \",\" (Kubeshark's summary)."),
    f("kafka_error_code", &[], T::Int, "kafka_error_code", "0",
        "Top-level error code of responses that have one (ApiVersions, FindCoordinator, JoinGroup, …); the first partition's error of Produce responses; 0 otherwise."),
    f("kafka_request", &[], T::Bool, "kafka_request", "true",
        "True when the request was seen."),
    f("kafka_response", &[], T::Bool, "kafka_response", "true",
        "True when the response was seen."),
    f("kafka_request_size", &[], T::Int, "kafka_request_size", "308",
        "Bytes of the request (length prefix included); 0 when absent."),
    f("kafka_response_size", &[], T::Int, "kafka_response_size", "65",
        "Bytes of the response (length prefix included); 0 when absent."),
    f("kafka_size", &[], T::Int, "kafka_size", "308",
        "kafka_request_size when the request was seen, else kafka_response_size."),
];
