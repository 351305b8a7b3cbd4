//! The Arrow schemas of the `calls` and `flows` tables, built from the
//! field catalogue (`trawl_model::catalogue`), and the builders that turn
//! [`Call`]s and [`FlowRecord`]s into [`RecordBatch`]es of those schemas.
//!
//! Each catalogue type has one Arrow type ([`arrow_type`]); the builders
//! append every column in catalogue order, and [`finish_batch`] refuses a
//! batch whose columns do not match the schema by name and type, so a
//! field added to the catalogue but not to a builder (or the reverse) fails
//! the first test that builds a batch. Used by the indexer's workers.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Int64Array, Int64Builder, ListBuilder, MapBuilder,
    StringArray, StringBuilder, StructArray, TimestampNanosecondBuilder,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use trawl_model::catalogue::{CALL_FIELDS, FLOW_FIELDS, FieldDef, FieldType};
use trawl_model::{Call, Endpoint, FlowRecord, Headers};

use crate::payload::PayloadRef;

/// Rows per record batch (Parquet row groups are larger:
/// `indexer::ROW_GROUP_ROWS`). 16 Ki rows keep a batch's buffers at a few
/// MB, which the allocator recycles in place; 64 Ki-row batches had every
/// batch fault in fresh (huge) pages, a quarter of indexing time in
/// `perf` (bench/RESULTS.md).
pub const BATCH_ROWS: usize = 16 * 1024;

/// Variable-length bytes (strings, map entries) appended to one batch
/// before it is cut, whatever its row count. Arrow's `Utf8` offsets are
/// 32-bit: a column past 2 GiB cannot be built, and heads of up to 32 KiB
/// per call could get there in a batch of rows. 256 MiB also bounds a worker's
/// memory.
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// The time zone of timestamp columns.
const UTC: &str = "UTC";

/// The Arrow type that stores a catalogue type (see the catalogue's module
/// doc for the rule).
pub fn arrow_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::Bool => DataType::Boolean,
        FieldType::Int => DataType::Int64,
        FieldType::Uint => DataType::UInt64,
        FieldType::Double => DataType::Float64,
        FieldType::String => DataType::Utf8,
        FieldType::Bytes => DataType::Binary,
        FieldType::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())),
        FieldType::Duration => DataType::Duration(TimeUnit::Microsecond),
        // Built by the same builders the batches use, so that field names
        // and nullability inside the nested types agree exactly.
        FieldType::StringList => ListBuilder::new(StringBuilder::new())
            .finish()
            .data_type()
            .clone(),
        FieldType::IntList => ListBuilder::new(Int64Builder::new())
            .finish()
            .data_type()
            .clone(),
        FieldType::StringMap => new_map_builder().finish().data_type().clone(),
        FieldType::PayloadRef => DataType::Struct(payload_ref_fields()),
    }
}

fn payload_ref_fields() -> Fields {
    Fields::from(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("length", DataType::Int64, false),
        Field::new("size", DataType::Int64, false),
        Field::new("truncated", DataType::Boolean, false),
        Field::new("decoded_from", DataType::Utf8, false),
    ])
}

fn schema_of(fields: &[FieldDef]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|d| {
                // Absent values are stored as zero values, never null; only
                // a payload reference can be missing.
                let nullable = d.ty == FieldType::PayloadRef;
                Field::new(d.column, arrow_type(d.ty), nullable)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Schema of the `calls` table, in catalogue order.
pub fn calls_schema() -> SchemaRef {
    schema_of(CALL_FIELDS)
}

/// Schema of the `flows` table, in catalogue order.
pub fn flows_schema() -> SchemaRef {
    schema_of(FLOW_FIELDS)
}

/// Checks named columns against `schema` (names, order, types) and makes
/// the batch.
pub fn finish_batch(
    schema: &SchemaRef,
    columns: Vec<(&'static str, ArrayRef)>,
) -> Result<RecordBatch, ArrowError> {
    if columns.len() != schema.fields().len() {
        return Err(ArrowError::SchemaError(format!(
            "builder has {} columns, schema {}",
            columns.len(),
            schema.fields().len()
        )));
    }
    let mut arrays = Vec::with_capacity(columns.len());
    for ((name, array), field) in columns.into_iter().zip(schema.fields()) {
        if name != field.name() {
            return Err(ArrowError::SchemaError(format!(
                "builder column {name} where the schema has {}",
                field.name()
            )));
        }
        arrays.push(array);
    }
    RecordBatch::try_new(schema.clone(), arrays)
}

fn new_map_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

fn ts_builder() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_timezone(UTC)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The columns of one endpoint (`src.*` or `dst.*`).
#[derive(Debug)]
struct EndpointColumns {
    ip: StringBuilder,
    port: Int64Builder,
    name: StringBuilder,
    namespace: StringBuilder,
    pod_name: StringBuilder,
    pod_namespace: StringBuilder,
    service_name: StringBuilder,
    service_namespace: StringBuilder,
    dns: StringBuilder,
    labels: MapBuilder<StringBuilder, StringBuilder>,
    resolved_by: StringBuilder,
}

impl EndpointColumns {
    fn new() -> Self {
        EndpointColumns {
            ip: StringBuilder::new(),
            port: Int64Builder::new(),
            name: StringBuilder::new(),
            namespace: StringBuilder::new(),
            pod_name: StringBuilder::new(),
            pod_namespace: StringBuilder::new(),
            service_name: StringBuilder::new(),
            service_namespace: StringBuilder::new(),
            dns: StringBuilder::new(),
            labels: new_map_builder(),
            resolved_by: StringBuilder::new(),
        }
    }

    /// Appends one endpoint; returns the string bytes appended.
    fn append(&mut self, e: &Endpoint) -> Result<usize, ArrowError> {
        // Formatting into the builder and closing the value with "" avoids
        // an allocation per address.
        let _ = write!(self.ip, "{}", e.ip);
        self.ip.append_value("");
        self.port.append_value(i64::from(e.port));
        self.name.append_value(&e.name);
        self.namespace.append_value(&e.namespace);
        self.pod_name.append_value(&e.pod.name);
        self.pod_namespace.append_value(&e.pod.namespace);
        self.service_name.append_value(&e.service.name);
        self.service_namespace.append_value(&e.service.namespace);
        self.dns.append_value(&e.dns);
        let mut bytes = 0;
        for (k, v) in &e.labels {
            self.labels.keys().append_value(k);
            self.labels.values().append_value(v);
            bytes += k.len() + v.len();
        }
        self.labels.append(true)?;
        self.resolved_by.append_value(match e.resolved_by {
            None => "",
            Some(trawl_model::Resolution::Pod) => "pod",
            Some(trawl_model::Resolution::Service) => "service",
            Some(trawl_model::Resolution::External) => "external",
            Some(trawl_model::Resolution::Dns) => "dns",
        });
        Ok(bytes
            + e.name.len()
            + e.namespace.len()
            + e.pod.name.len()
            + e.pod.namespace.len()
            + e.service.name.len()
            + e.service.namespace.len()
            + e.dns.len()
            + 40)
    }

    fn finish(&mut self, side: Side, out: &mut Vec<(&'static str, ArrayRef)>) {
        let names = side.columns();
        let arrays: [ArrayRef; 11] = [
            Arc::new(self.ip.finish()),
            Arc::new(self.port.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.namespace.finish()),
            Arc::new(self.pod_name.finish()),
            Arc::new(self.pod_namespace.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.service_namespace.finish()),
            Arc::new(self.dns.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.resolved_by.finish()),
        ];
        out.extend(names.into_iter().zip(arrays));
    }
}

#[derive(Clone, Copy)]
enum Side {
    Src,
    Dst,
}

impl Side {
    fn columns(self) -> [&'static str; 11] {
        match self {
            Side::Src => [
                "src_ip",
                "src_port",
                "src_name",
                "src_namespace",
                "src_pod_name",
                "src_pod_namespace",
                "src_service_name",
                "src_service_namespace",
                "src_dns",
                "src_labels",
                "src_resolved_by",
            ],
            Side::Dst => [
                "dst_ip",
                "dst_port",
                "dst_name",
                "dst_namespace",
                "dst_pod_name",
                "dst_pod_namespace",
                "dst_service_name",
                "dst_service_namespace",
                "dst_dns",
                "dst_labels",
                "dst_resolved_by",
            ],
        }
    }
}

/// Appends headers as a map entry, repeated names joined with ", " (RFC
/// 9110 §5.3), as their JSON form does: map keys stay unique, which DuckDB
/// and KFL's `m["k"]` expect. Returns the bytes appended.
fn append_headers(
    b: &mut MapBuilder<StringBuilder, StringBuilder>,
    h: &Headers,
) -> Result<usize, ArrowError> {
    let mut bytes = 0;
    let all = &h.0;
    for (i, (name, value)) in all.iter().enumerate() {
        if all.iter().take(i).any(|(n, _)| n == name) {
            continue;
        }
        b.keys().append_value(name);
        let mut rest = all.iter().skip(i + 1).filter(|(n, _)| n == name).peekable();
        if rest.peek().is_none() {
            b.values().append_value(value);
            bytes += name.len() + value.len();
        } else {
            let mut joined = value.clone();
            for (_, v) in rest {
                joined.push_str(", ");
                joined.push_str(v);
            }
            bytes += name.len() + joined.len();
            b.values().append_value(&joined);
        }
    }
    b.append(true)?;
    Ok(bytes)
}

fn append_strings(b: &mut ListBuilder<StringBuilder>, items: &[String]) -> usize {
    let mut bytes = 0;
    for s in items {
        b.values().append_value(s);
        bytes += s.len();
    }
    b.append(true);
    bytes
}

/// Payload references of one batch, built into a struct column at the end.
#[derive(Debug, Default)]
struct RefColumn {
    refs: Vec<Option<PayloadRef>>,
}

impl RefColumn {
    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let refs = std::mem::take(&mut self.refs);
        let mut file = StringBuilder::new();
        let mut offset = Vec::with_capacity(refs.len());
        let mut length = Vec::with_capacity(refs.len());
        let mut size = Vec::with_capacity(refs.len());
        let mut truncated = BooleanBuilder::with_capacity(refs.len());
        let mut decoded_from = StringBuilder::new();
        let valid: Vec<bool> = refs.iter().map(Option::is_some).collect();
        for r in &refs {
            // A null struct still has child values; zeros fill them.
            let d = PayloadRef::default();
            let r = r.as_ref().unwrap_or(&d);
            file.append_value(&r.file);
            offset.push(i64_of(r.offset));
            length.push(i64_of(r.length));
            size.push(i64_of(r.size));
            truncated.append_value(r.truncated);
            decoded_from.append_value(&r.decoded_from);
        }
        let children: Vec<ArrayRef> = vec![
            Arc::new(file.finish()),
            Arc::new(Int64Array::from(offset)),
            Arc::new(Int64Array::from(length)),
            Arc::new(Int64Array::from(size)),
            Arc::new(truncated.finish()),
            Arc::new(decoded_from.finish()),
        ];
        let nulls = NullBuffer::from(valid);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Ok(Arc::new(StructArray::try_new(
            payload_ref_fields(),
            children,
            nulls,
        )?))
    }
}

/// Appends [`Call`]s and cuts [`RecordBatch`]es of [`calls_schema`].
#[derive(Debug)]
pub struct CallBatchBuilder {
    schema: SchemaRef,
    rows: usize,
    bytes: usize,
    id: StringBuilder,
    node: StringBuilder,
    conn_id: Int64Builder,
    index: Int64Builder,
    timestamp: TimestampNanosecondBuilder,
    elapsed_time: Int64Builder,
    protocol: StringBuilder,
    http: BooleanBuilder,
    dns: BooleanBuilder,
    src: EndpointColumns,
    dst: EndpointColumns,
    method: StringBuilder,
    path: StringBuilder,
    url: StringBuilder,
    query_string: StringBuilder,
    status_code: Int64Builder,
    http_version: StringBuilder,
    interim_status_codes: ListBuilder<Int64Builder>,
    request_headers: MapBuilder<StringBuilder, StringBuilder>,
    response_headers: MapBuilder<StringBuilder, StringBuilder>,
    request_cookies: MapBuilder<StringBuilder, StringBuilder>,
    response_cookies: MapBuilder<StringBuilder, StringBuilder>,
    request_header_size: Int64Builder,
    request_body_size: Int64Builder,
    response_header_size: Int64Builder,
    response_body_size: Int64Builder,
    request_body_ref: RefColumn,
    response_body_ref: RefColumn,
    has_request: BooleanBuilder,
    has_response: BooleanBuilder,
    dns_questions: ListBuilder<StringBuilder>,
    dns_question_types: ListBuilder<StringBuilder>,
    dns_answers: ListBuilder<StringBuilder>,
    dns_answer_names: ListBuilder<StringBuilder>,
    dns_answer_types: ListBuilder<StringBuilder>,
    dns_answer_ttls: ListBuilder<Int64Builder>,
    dns_request: BooleanBuilder,
    dns_response: BooleanBuilder,
    errors: ListBuilder<StringBuilder>,
    namespaces: ListBuilder<StringBuilder>,
    pods: ListBuilder<StringBuilder>,
    services: ListBuilder<StringBuilder>,
}

impl Default for CallBatchBuilder {
    fn default() -> Self {
        CallBatchBuilder::new()
    }
}

impl CallBatchBuilder {
    pub fn new() -> Self {
        let sl = || ListBuilder::new(StringBuilder::new());
        CallBatchBuilder {
            schema: calls_schema(),
            rows: 0,
            bytes: 0,
            id: StringBuilder::new(),
            node: StringBuilder::new(),
            conn_id: Int64Builder::new(),
            index: Int64Builder::new(),
            timestamp: ts_builder(),
            elapsed_time: Int64Builder::new(),
            protocol: StringBuilder::new(),
            http: BooleanBuilder::new(),
            dns: BooleanBuilder::new(),
            src: EndpointColumns::new(),
            dst: EndpointColumns::new(),
            method: StringBuilder::new(),
            path: StringBuilder::new(),
            url: StringBuilder::new(),
            query_string: StringBuilder::new(),
            status_code: Int64Builder::new(),
            http_version: StringBuilder::new(),
            interim_status_codes: ListBuilder::new(Int64Builder::new()),
            request_headers: new_map_builder(),
            response_headers: new_map_builder(),
            request_cookies: new_map_builder(),
            response_cookies: new_map_builder(),
            request_header_size: Int64Builder::new(),
            request_body_size: Int64Builder::new(),
            response_header_size: Int64Builder::new(),
            response_body_size: Int64Builder::new(),
            request_body_ref: RefColumn::default(),
            response_body_ref: RefColumn::default(),
            has_request: BooleanBuilder::new(),
            has_response: BooleanBuilder::new(),
            dns_questions: sl(),
            dns_question_types: sl(),
            dns_answers: sl(),
            dns_answer_names: sl(),
            dns_answer_types: sl(),
            dns_answer_ttls: ListBuilder::new(Int64Builder::new()),
            dns_request: BooleanBuilder::new(),
            dns_response: BooleanBuilder::new(),
            errors: sl(),
            namespaces: sl(),
            pods: sl(),
            services: sl(),
        }
    }

    /// Rows appended since the last [`CallBatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// True when the batch should be cut: [`BATCH_ROWS`] rows or
    /// [`MAX_BATCH_BYTES`] of strings.
    pub fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS || self.bytes >= MAX_BATCH_BYTES
    }

    /// Appends one call with the payload-store references of its bodies
    /// (from [`crate::payload::PayloadWriter`]; `None` when not kept).
    pub fn append(
        &mut self,
        c: &Call,
        request_body: Option<PayloadRef>,
        response_body: Option<PayloadRef>,
    ) -> Result<(), ArrowError> {
        let mut bytes = 0;
        self.id.append_value(&c.id);
        self.node.append_value(&c.node);
        self.conn_id.append_value(i64_of(c.conn_id));
        self.index.append_value(i64::from(c.index));
        self.timestamp.append_value(c.timestamp);
        self.elapsed_time.append_value(c.elapsed_time);
        let protocol = c.protocol.map_or("", |p| p.as_str());
        self.protocol.append_value(protocol);
        self.http
            .append_value(c.protocol == Some(trawl_model::Protocol::Http));
        self.dns
            .append_value(c.protocol == Some(trawl_model::Protocol::Dns));
        bytes += self.src.append(&c.src)?;
        bytes += self.dst.append(&c.dst)?;
        self.method.append_value(&c.method);
        self.path.append_value(&c.path);
        self.url.append_value(&c.url);
        self.query_string.append_value(&c.query_string);
        self.status_code.append_value(i64::from(c.status_code));
        self.http_version.append_value(&c.http_version);
        for s in &c.interim_status_codes {
            self.interim_status_codes
                .values()
                .append_value(i64::from(*s));
        }
        self.interim_status_codes.append(true);
        bytes += append_headers(&mut self.request_headers, &c.request.headers)?;
        bytes += append_headers(&mut self.response_headers, &c.response.headers)?;
        bytes += append_headers(&mut self.request_cookies, &c.request.cookies)?;
        bytes += append_headers(&mut self.response_cookies, &c.response.cookies)?;
        self.request_header_size
            .append_value(i64_of(c.request_header_size));
        self.request_body_size
            .append_value(i64_of(c.request_body_size));
        self.response_header_size
            .append_value(i64_of(c.response_header_size));
        self.response_body_size
            .append_value(i64_of(c.response_body_size));
        self.request_body_ref.refs.push(request_body);
        self.response_body_ref.refs.push(response_body);
        self.has_request.append_value(c.has_request);
        self.has_response.append_value(c.has_response);
        bytes += append_strings(&mut self.dns_questions, &c.dns_questions);
        bytes += append_strings(&mut self.dns_question_types, &c.dns_question_types);
        for a in &c.dns_answers {
            self.dns_answers.values().append_value(&a.data);
            self.dns_answer_names.values().append_value(&a.name);
            self.dns_answer_types.values().append_value(&a.rtype);
            self.dns_answer_ttls.values().append_value(i64::from(a.ttl));
            bytes += a.data.len() + a.name.len() + a.rtype.len();
        }
        self.dns_answers.append(true);
        self.dns_answer_names.append(true);
        self.dns_answer_types.append(true);
        self.dns_answer_ttls.append(true);
        self.dns_request.append_value(c.dns_request);
        self.dns_response.append_value(c.dns_response);
        bytes += append_strings(&mut self.errors, &c.errors);
        bytes += append_strings(&mut self.namespaces, &c.namespaces);
        bytes += append_strings(&mut self.pods, &c.pods);
        bytes += append_strings(&mut self.services, &c.services);
        bytes += c.id.len()
            + c.node.len()
            + c.method.len()
            + c.path.len()
            + c.url.len()
            + c.query_string.len()
            + c.http_version.len();
        self.rows += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        Ok(())
    }

    /// The rows appended so far as one batch; the builder starts empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        self.bytes = 0;
        let mut cols: Vec<(&'static str, ArrayRef)> =
            Vec::with_capacity(self.schema.fields().len());
        cols.push(("id", Arc::new(self.id.finish())));
        cols.push(("node", Arc::new(self.node.finish())));
        cols.push(("conn_id", Arc::new(self.conn_id.finish())));
        cols.push(("index", Arc::new(self.index.finish())));
        cols.push(("timestamp", Arc::new(self.timestamp.finish())));
        cols.push(("elapsed_time", Arc::new(self.elapsed_time.finish())));
        cols.push(("protocol", Arc::new(self.protocol.finish())));
        cols.push(("http", Arc::new(self.http.finish())));
        cols.push(("dns", Arc::new(self.dns.finish())));
        self.src.finish(Side::Src, &mut cols);
        self.dst.finish(Side::Dst, &mut cols);
        cols.push(("method", Arc::new(self.method.finish())));
        cols.push(("path", Arc::new(self.path.finish())));
        cols.push(("url", Arc::new(self.url.finish())));
        cols.push(("query_string", Arc::new(self.query_string.finish())));
        cols.push(("status_code", Arc::new(self.status_code.finish())));
        cols.push(("http_version", Arc::new(self.http_version.finish())));
        cols.push((
            "interim_status_codes",
            Arc::new(self.interim_status_codes.finish()),
        ));
        cols.push(("request_headers", Arc::new(self.request_headers.finish())));
        cols.push(("response_headers", Arc::new(self.response_headers.finish())));
        cols.push(("request_cookies", Arc::new(self.request_cookies.finish())));
        cols.push(("response_cookies", Arc::new(self.response_cookies.finish())));
        cols.push((
            "request_header_size",
            Arc::new(self.request_header_size.finish()),
        ));
        cols.push((
            "request_body_size",
            Arc::new(self.request_body_size.finish()),
        ));
        cols.push((
            "response_header_size",
            Arc::new(self.response_header_size.finish()),
        ));
        cols.push((
            "response_body_size",
            Arc::new(self.response_body_size.finish()),
        ));
        cols.push(("request_body_ref", self.request_body_ref.finish()?));
        cols.push(("response_body_ref", self.response_body_ref.finish()?));
        cols.push(("has_request", Arc::new(self.has_request.finish())));
        cols.push(("has_response", Arc::new(self.has_response.finish())));
        cols.push(("dns_questions", Arc::new(self.dns_questions.finish())));
        cols.push((
            "dns_question_types",
            Arc::new(self.dns_question_types.finish()),
        ));
        cols.push(("dns_answers", Arc::new(self.dns_answers.finish())));
        cols.push(("dns_answer_names", Arc::new(self.dns_answer_names.finish())));
        cols.push(("dns_answer_types", Arc::new(self.dns_answer_types.finish())));
        cols.push(("dns_answer_ttls", Arc::new(self.dns_answer_ttls.finish())));
        cols.push(("dns_request", Arc::new(self.dns_request.finish())));
        cols.push(("dns_response", Arc::new(self.dns_response.finish())));
        cols.push(("errors", Arc::new(self.errors.finish())));
        cols.push(("namespaces", Arc::new(self.namespaces.finish())));
        cols.push(("pods", Arc::new(self.pods.finish())));
        cols.push(("services", Arc::new(self.services.finish())));
        finish_batch(&self.schema, cols)
    }
}

/// Appends [`FlowRecord`]s and cuts [`RecordBatch`]es of [`flows_schema`].
#[derive(Debug)]
pub struct FlowBatchBuilder {
    schema: SchemaRef,
    rows: usize,
    conn_id: Int64Builder,
    node: StringBuilder,
    transport: StringBuilder,
    tcp: BooleanBuilder,
    udp: BooleanBuilder,
    src_ip: StringBuilder,
    src_port: Int64Builder,
    dst_ip: StringBuilder,
    dst_port: Int64Builder,
    roles: StringBuilder,
    timestamp: TimestampNanosecondBuilder,
    last_timestamp: TimestampNanosecondBuilder,
    protocol: StringBuilder,
    calls: Int64Builder,
    close_reason: StringBuilder,
}

impl Default for FlowBatchBuilder {
    fn default() -> Self {
        FlowBatchBuilder::new()
    }
}

impl FlowBatchBuilder {
    pub fn new() -> Self {
        FlowBatchBuilder {
            schema: flows_schema(),
            rows: 0,
            conn_id: Int64Builder::new(),
            node: StringBuilder::new(),
            transport: StringBuilder::new(),
            tcp: BooleanBuilder::new(),
            udp: BooleanBuilder::new(),
            src_ip: StringBuilder::new(),
            src_port: Int64Builder::new(),
            dst_ip: StringBuilder::new(),
            dst_port: Int64Builder::new(),
            roles: StringBuilder::new(),
            timestamp: ts_builder(),
            last_timestamp: ts_builder(),
            protocol: StringBuilder::new(),
            calls: Int64Builder::new(),
            close_reason: StringBuilder::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// True at [`BATCH_ROWS`] rows (a flow row has no unbounded strings).
    pub fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS
    }

    pub fn append(&mut self, f: &FlowRecord) {
        self.conn_id.append_value(i64_of(f.conn_id));
        self.node.append_value(&f.node);
        self.transport.append_value(f.transport);
        self.tcp.append_value(f.transport == "tcp");
        self.udp.append_value(f.transport == "udp");
        let _ = write!(self.src_ip, "{}", f.client.ip());
        self.src_ip.append_value("");
        self.src_port.append_value(i64::from(f.client.port()));
        let _ = write!(self.dst_ip, "{}", f.server.ip());
        self.dst_ip.append_value("");
        self.dst_port.append_value(i64::from(f.server.port()));
        self.roles.append_value(f.roles);
        self.timestamp.append_value(f.first_ts);
        self.last_timestamp.append_value(f.last_ts);
        self.protocol
            .append_value(f.protocol.map_or("", |p| p.as_str()));
        self.calls.append_value(i64_of(f.calls));
        self.close_reason.append_value(f.close_reason);
        self.rows += 1;
    }

    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let cols: Vec<(&'static str, ArrayRef)> = vec![
            ("conn_id", Arc::new(self.conn_id.finish())),
            ("node", Arc::new(self.node.finish())),
            ("transport", Arc::new(self.transport.finish())),
            ("tcp", Arc::new(self.tcp.finish())),
            ("udp", Arc::new(self.udp.finish())),
            ("src_ip", Arc::new(self.src_ip.finish())),
            ("src_port", Arc::new(self.src_port.finish())),
            ("dst_ip", Arc::new(self.dst_ip.finish())),
            ("dst_port", Arc::new(self.dst_port.finish())),
            ("roles", Arc::new(self.roles.finish())),
            ("timestamp", Arc::new(self.timestamp.finish())),
            ("last_timestamp", Arc::new(self.last_timestamp.finish())),
            ("protocol", Arc::new(self.protocol.finish())),
            ("calls", Arc::new(self.calls.finish())),
            ("close_reason", Arc::new(self.close_reason.finish())),
        ];
        finish_batch(&self.schema, cols)
    }
}

/// Reads a payload reference back from row `row` of a `*_body_ref` struct
/// column (for tests and for tools that show one call's body).
pub fn payload_ref_at(column: &dyn Array, row: usize) -> Option<PayloadRef> {
    let s = column.as_any().downcast_ref::<StructArray>()?;
    if row >= s.len() || s.is_null(row) {
        return None;
    }
    let string = |i: usize| {
        s.column(i)
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| a.value(row).to_owned())
    };
    let int = |i: usize| {
        s.column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| u64::try_from(a.value(row)).unwrap_or(0))
    };
    let truncated = s
        .column(4)
        .as_any()
        .downcast_ref::<arrow::array::BooleanArray>()
        .map(|a| a.value(row))?;
    Some(PayloadRef {
        file: string(0)?,
        offset: int(1)?,
        length: int(2)?,
        size: int(3)?,
        truncated,
        decoded_from: string(5)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use trawl_model::{Body, DnsAnswer, Protocol};

    use super::*;

    fn sample_call() -> Call {
        let mut c = Call::new(Protocol::Http);
        c.id = "n/1/0".into();
        c.node = "n".into();
        c.conn_id = 1;
        c.timestamp = 1_717_243_200_000_000_000;
        c.src = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)), 40000);
        c.dst = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1)), 80);
        c.dst.labels.insert("app".into(), "web".into());
        c.method = "GET".into();
        c.path = "/a".into();
        c.status_code = 200;
        c.request.headers.push("Accept", "a");
        c.request.headers.push("accept", "b");
        c.response.body = Some(Body {
            data: b"hello".to_vec(),
            truncated: false,
            decoded_from: None,
        });
        c.dns_answers.push(DnsAnswer {
            name: "x.example".into(),
            rtype: "A".into(),
            data: "10.0.0.1".into(),
            ttl: 30,
        });
        c
    }

    /// Every catalogue entry names a column of the schema, and every column
    /// of a built batch is a catalogue entry, with the catalogue's type.
    #[test]
    fn catalogue_and_batches_agree() {
        for (fields, batch) in [
            (CALL_FIELDS, {
                let mut b = CallBatchBuilder::new();
                b.append(&sample_call(), None, None).unwrap();
                b.finish().unwrap()
            }),
            (FLOW_FIELDS, {
                let mut b = FlowBatchBuilder::new();
                b.append(&FlowRecord {
                    conn_id: 1,
                    node: "n".into(),
                    transport: "tcp",
                    client: SocketAddr::from(([10, 1, 0, 1], 40000)),
                    server: SocketAddr::from(([10, 2, 0, 1], 80)),
                    roles: "handshake",
                    first_ts: 1,
                    last_ts: 2,
                    protocol: Some(Protocol::Http),
                    calls: 3,
                    close_reason: "finished",
                });
                b.finish().unwrap()
            }),
        ] {
            let schema = batch.schema();
            let cols: BTreeSet<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let names: BTreeSet<&str> = fields.iter().map(|d| d.column).collect();
            assert_eq!(cols, names);
            for d in fields {
                let field = schema.field_with_name(d.column).unwrap();
                assert_eq!(field.data_type(), &arrow_type(d.ty), "{}", d.name);
            }
            assert_eq!(batch.num_rows(), 1);
        }
    }

    #[test]
    fn repeated_headers_join_and_payload_refs_are_nullable() {
        let mut b = CallBatchBuilder::new();
        let r = PayloadRef {
            file: "payloads/part-0.bin".into(),
            offset: 7,
            length: 9,
            size: 5,
            truncated: false,
            decoded_from: String::new(),
        };
        b.append(&sample_call(), None, Some(r.clone())).unwrap();
        let batch = b.finish().unwrap();
        let headers = batch.column_by_name("request_headers").unwrap();
        let map = headers
            .as_any()
            .downcast_ref::<arrow::array::MapArray>()
            .unwrap();
        let entries = map.value(0);
        assert_eq!(entries.len(), 1, "one key for the repeated name");
        let values = map.values().as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(values.value(0), "a, b");
        let req = batch.column_by_name("request_body_ref").unwrap();
        assert_eq!(payload_ref_at(req.as_ref(), 0), None);
        let resp = batch.column_by_name("response_body_ref").unwrap();
        assert_eq!(payload_ref_at(resp.as_ref(), 0), Some(r));
        let ips = batch.column_by_name("src_ip").unwrap();
        let ips = ips.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(ips.value(0), "10.1.0.1");
    }

    #[test]
    fn a_builder_column_out_of_order_is_refused() {
        let schema = flows_schema();
        let mut b = FlowBatchBuilder::new();
        let batch = b.finish().unwrap();
        let mut cols: Vec<(&'static str, ArrayRef)> = FLOW_FIELDS
            .iter()
            .map(|d| d.column)
            .zip(batch.columns().iter().cloned())
            .collect();
        cols.swap(0, 1);
        assert!(finish_batch(&schema, cols).is_err());
    }
}
