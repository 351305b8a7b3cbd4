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
// The flows table's builder (FlowBatchBuilder).
use arrow::array::Float64Builder;
use trawl_identity::{Identity, Resolver};
use trawl_model::catalogue::{FLOW_FIELDS, FieldDef, FieldType, PROTOCOL_FIELDS, call_fields};
use trawl_model::{AttrValue, Call, Endpoint, FlowRecord, Headers, Protocol};

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
    schema_of(call_fields())
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
    /// One column per protocol-specific field, in catalogue order.
    attrs: Vec<AttrColumn>,
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
            attrs: PROTOCOL_FIELDS
                .iter()
                .flat_map(|slice| slice.iter())
                .map(AttrColumn::new)
                .collect(),
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
        bytes += self.append_attrs(c)?;
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
        for a in &mut self.attrs {
            cols.push((a.def.column, a.builder.finish()));
        }
        finish_batch(&self.schema, cols)
    }

    /// Appends one value to every protocol-field column: the call's own
    /// where it set one, else the zero value (or `true` for the flag of
    /// the call's protocol). An attribute that names no catalogue field, or
    /// holds another type, is a dissector bug: refused, not dropped.
    fn append_attrs(&mut self, c: &Call) -> Result<usize, ArrowError> {
        let row = self.rows;
        let mut bytes = 0;
        for (name, value) in c.attrs.iter() {
            let col = self
                .attrs
                .iter_mut()
                .find(|a| a.def.name == name)
                .ok_or_else(|| {
                    ArrowError::InvalidArgumentError(format!(
                        "call {}: attribute {name} is not in the call catalogue",
                        c.id
                    ))
                })?;
            if col.filled_row == Some(row) {
                continue;
            }
            bytes += col.builder.append(name, value)?;
            col.filled_row = Some(row);
        }
        for col in &mut self.attrs {
            if col.filled_row != Some(row) {
                let flag = col.flag_of.is_some() && col.flag_of == c.protocol;
                col.builder.append_zero(flag);
                col.filled_row = Some(row);
            }
        }
        Ok(bytes)
    }
}

/// The column of one protocol-specific field.
#[derive(Debug)]
struct AttrColumn {
    def: &'static FieldDef,
    /// The protocol this column is the flag of (`redis` for `redis`).
    flag_of: Option<Protocol>,
    /// The row this column last received a value for, so that each row
    /// gets exactly one.
    filled_row: Option<usize>,
    builder: AttrBuilder,
}

impl AttrColumn {
    fn new(def: &'static FieldDef) -> AttrColumn {
        let flag_of = match def.ty {
            FieldType::Bool => Protocol::from_name(def.name),
            _ => None,
        };
        AttrColumn {
            def,
            flag_of,
            filled_row: None,
            builder: AttrBuilder::new(def.ty),
        }
    }
}

/// A builder for one of the types protocol fields may have (the
/// catalogue's tests keep the others out of protocol slices).
#[derive(Debug)]
enum AttrBuilder {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Str(StringBuilder),
    StrList(ListBuilder<StringBuilder>),
    IntList(ListBuilder<Int64Builder>),
    Map(MapBuilder<StringBuilder, StringBuilder>),
}

impl AttrBuilder {
    fn new(ty: FieldType) -> AttrBuilder {
        match ty {
            FieldType::Bool => AttrBuilder::Bool(BooleanBuilder::new()),
            FieldType::StringList => AttrBuilder::StrList(ListBuilder::new(StringBuilder::new())),
            FieldType::IntList => AttrBuilder::IntList(ListBuilder::new(Int64Builder::new())),
            FieldType::StringMap => AttrBuilder::Map(new_map_builder()),
            FieldType::String => AttrBuilder::Str(StringBuilder::new()),
            // Int, and the types the catalogue test refuses in protocol
            // slices (their column would not match the schema, which
            // finish_batch reports).
            _ => AttrBuilder::Int(Int64Builder::new()),
        }
    }

    /// Appends `v`; the bytes of variable-length data it added.
    fn append(&mut self, name: &str, v: &AttrValue) -> Result<usize, ArrowError> {
        match (self, v) {
            (AttrBuilder::Bool(b), AttrValue::Bool(x)) => b.append_value(*x),
            (AttrBuilder::Int(b), AttrValue::Int(x)) => b.append_value(*x),
            (AttrBuilder::Str(b), AttrValue::Str(x)) => {
                b.append_value(x);
                return Ok(x.len());
            }
            (AttrBuilder::StrList(b), AttrValue::StrList(x)) => return Ok(append_strings(b, x)),
            (AttrBuilder::IntList(b), AttrValue::IntList(x)) => {
                for i in x {
                    b.values().append_value(*i);
                }
                b.append(true);
            }
            (AttrBuilder::Map(b), AttrValue::Map(x)) => {
                let mut bytes = 0;
                for (k, val) in x {
                    b.keys().append_value(k);
                    b.values().append_value(val);
                    bytes += k.len() + val.len();
                }
                b.append(true)?;
                return Ok(bytes);
            }
            (_, v) => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "attribute {name} holds a {} where the catalogue says otherwise",
                    v.field_type()
                )));
            }
        }
        Ok(0)
    }

    /// Appends the type's zero value (`flag` for a protocol flag).
    fn append_zero(&mut self, flag: bool) {
        match self {
            AttrBuilder::Bool(b) => b.append_value(flag),
            AttrBuilder::Int(b) => b.append_value(0),
            AttrBuilder::Str(b) => b.append_value(""),
            AttrBuilder::StrList(b) => b.append(true),
            AttrBuilder::IntList(b) => b.append(true),
            AttrBuilder::Map(b) => {
                // A map builder only fails when keys and values disagree
                // in length, which an empty entry cannot cause.
                let _ = b.append(true);
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            AttrBuilder::Bool(b) => Arc::new(b.finish()),
            AttrBuilder::Int(b) => Arc::new(b.finish()),
            AttrBuilder::Str(b) => Arc::new(b.finish()),
            AttrBuilder::StrList(b) => Arc::new(b.finish()),
            AttrBuilder::IntList(b) => Arc::new(b.finish()),
            AttrBuilder::Map(b) => Arc::new(b.finish()),
        }
    }
}

/// A flow and the identities of its ends, as the column accessors see it.
struct FlowRow<'a> {
    f: &'a FlowRecord,
    src: Option<Identity<'a>>,
    dst: Option<Identity<'a>>,
}

type IntOf = fn(&FlowRow<'_>) -> i64;
type StrOf = fn(&FlowRow<'_>, &mut StringBuilder);

/// One column of the `flows` table and how a row fills it.
enum FlowColumn {
    Int(Int64Builder, IntOf),
    Str(StringBuilder, StrOf),
    Bool(BooleanBuilder, fn(&FlowRow<'_>) -> bool),
    Ts(TimestampNanosecondBuilder, IntOf),
    Double(Float64Builder, fn(&FlowRow<'_>) -> f64),
}

impl std::fmt::Debug for FlowColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlowColumn::Int(..) => "Int",
            FlowColumn::Str(..) => "Str",
            FlowColumn::Bool(..) => "Bool",
            FlowColumn::Ts(..) => "Ts",
            FlowColumn::Double(..) => "Double",
        })
    }
}

fn int(f: IntOf) -> Option<FlowColumn> {
    Some(FlowColumn::Int(Int64Builder::new(), f))
}

fn text(f: StrOf) -> Option<FlowColumn> {
    Some(FlowColumn::Str(StringBuilder::new(), f))
}

fn put(b: &mut StringBuilder, s: &str) {
    b.append_value(s);
}

/// The accessor of flow field `name`: the one place that maps the flow
/// catalogue to [`FlowRecord`] (a catalogue entry without one fails
/// [`FlowBatchBuilder::finish`], and so the schema test).
fn flow_column(name: &str) -> Option<FlowColumn> {
    match name {
        "conn_id" => int(|r| i64_of(r.f.conn_id)),
        "node" => text(|r, b| put(b, &r.f.node)),
        "conn" => Some(FlowColumn::Bool(BooleanBuilder::new(), |_| true)),
        "transport" => text(|r, b| put(b, r.f.transport)),
        "tcp" => Some(FlowColumn::Bool(BooleanBuilder::new(), |r| {
            r.f.transport == "tcp"
        })),
        "udp" => Some(FlowColumn::Bool(BooleanBuilder::new(), |r| {
            r.f.transport == "udp"
        })),
        "src.ip" => text(|r, b| {
            let _ = write!(b, "{}", r.f.client.ip());
            b.append_value("");
        }),
        "src.port" => int(|r| i64::from(r.f.client.port())),
        "dst.ip" => text(|r, b| {
            let _ = write!(b, "{}", r.f.server.ip());
            b.append_value("");
        }),
        "dst.port" => int(|r| i64::from(r.f.server.port())),
        "src.name" => text(|r, b| put(b, r.src.as_ref().map_or("", |i| i.name()))),
        "src.namespace" => text(|r, b| put(b, r.src.as_ref().map_or("", |i| i.namespace()))),
        "src.pod.name" => text(|r, b| put(b, r.src.and_then(|i| i.pod()).map_or("", |p| p.0))),
        "src.service.name" => text(|r, b| {
            put(b, r.src.and_then(|i| i.service()).map_or("", |p| p.0));
        }),
        "src.dns" => text(|r, b| put(b, r.src.and_then(|i| i.dns).unwrap_or(""))),
        "dst.name" => text(|r, b| put(b, r.dst.as_ref().map_or("", |i| i.name()))),
        "dst.namespace" => text(|r, b| put(b, r.dst.as_ref().map_or("", |i| i.namespace()))),
        "dst.pod.name" => text(|r, b| put(b, r.dst.and_then(|i| i.pod()).map_or("", |p| p.0))),
        "dst.service.name" => text(|r, b| {
            put(b, r.dst.and_then(|i| i.service()).map_or("", |p| p.0));
        }),
        "dst.dns" => text(|r, b| put(b, r.dst.and_then(|i| i.dns).unwrap_or(""))),
        "roles" => text(|r, b| put(b, r.f.roles)),
        "timestamp" => Some(FlowColumn::Ts(ts_builder(), |r| r.f.first_ts)),
        "last_timestamp" => Some(FlowColumn::Ts(ts_builder(), |r| r.f.last_ts)),
        "protocol" => text(|r, b| put(b, r.f.protocol.map_or("", |p| p.as_str()))),
        "calls" => int(|r| i64_of(r.f.calls)),
        "close_reason" => text(|r, b| put(b, r.f.close_reason)),
        "conn_state" => text(|r, b| put(b, r.f.conn_state())),
        "flow_client_packets" => int(|r| i64_of(r.f.metrics.client_packets)),
        "flow_client_bytes" => int(|r| i64_of(r.f.metrics.client_bytes)),
        "flow_server_packets" => int(|r| i64_of(r.f.metrics.server_packets)),
        "flow_server_bytes" => int(|r| i64_of(r.f.metrics.server_bytes)),
        "flow_packets" => int(|r| i64_of(r.f.metrics.client_packets + r.f.metrics.server_packets)),
        "flow_bytes" => int(|r| i64_of(r.f.metrics.client_bytes + r.f.metrics.server_bytes)),
        "connection_time_us" => int(|r| r.f.metrics.connection_time_us),
        "handshake" => text(|r, b| put(b, r.f.metrics.handshake)),
        "closed_by" => text(|r, b| put(b, r.f.metrics.closed_by)),
        "connection_completeness" => int(|r| i64::from(r.f.metrics.connection_completeness)),
        "retransmissions" => int(|r| i64_of(r.f.metrics.retransmissions)),
        "fast_retransmissions" => int(|r| i64_of(r.f.metrics.fast_retransmissions)),
        "spurious_retransmissions" => int(|r| i64_of(r.f.metrics.spurious_retransmissions)),
        "retransmission_rate" => Some(FlowColumn::Double(Float64Builder::new(), |r| {
            r.f.metrics.retransmission_rate()
        })),
        "data_segments" => int(|r| i64_of(r.f.metrics.data_segments)),
        "out_of_order" => int(|r| i64_of(r.f.metrics.out_of_order)),
        "dup_acks" => int(|r| i64_of(r.f.metrics.dup_acks)),
        "missing_segments" => int(|r| i64_of(r.f.metrics.missing_segments)),
        "acked_unseen_segments" => int(|r| i64_of(r.f.metrics.acked_unseen_segments)),
        "zero_window_events" => int(|r| i64_of(r.f.metrics.zero_window_events)),
        "zero_window_probes" => int(|r| i64_of(r.f.metrics.zero_window_probes)),
        "window_full_events" => int(|r| i64_of(r.f.metrics.window_full_events)),
        "window_updates" => int(|r| i64_of(r.f.metrics.window_updates)),
        "keepalive_count" => int(|r| i64_of(r.f.metrics.keepalive_count)),
        "rst_count" => int(|r| i64_of(r.f.metrics.rst_count)),
        "fin_count" => int(|r| i64_of(r.f.metrics.fin_count)),
        "window_scale" => int(|r| r.f.metrics.window_scale),
        "server_window_scale" => int(|r| r.f.metrics.server_window_scale),
        "avg_receive_window" => int(|r| i64_of(r.f.metrics.avg_receive_window)),
        "initial_rtt_us" => int(|r| r.f.metrics.initial_rtt_us),
        "handshake_time_us" => int(|r| r.f.metrics.handshake_time_us),
        "time_to_first_byte_us" => int(|r| r.f.metrics.time_to_first_byte_us),
        "rtt_min_us" => int(|r| r.f.metrics.rtt_min_us),
        "rtt_max_us" => int(|r| r.f.metrics.rtt_max_us),
        "rtt_avg_us" => int(|r| r.f.metrics.rtt_avg_us),
        "rtt_samples" => int(|r| i64_of(r.f.metrics.rtt_samples)),
        "jitter_us" => int(|r| r.f.metrics.jitter_us),
        "goodput_bytes" => int(|r| i64_of(r.f.metrics.goodput_bytes)),
        _ => None,
    }
}

/// Appends [`FlowRecord`]s and cuts [`RecordBatch`]es of [`flows_schema`].
/// Its columns come from the flow catalogue, each filled by the accessor
/// [`flow_column`] gives for the field's name.
#[derive(Debug)]
pub struct FlowBatchBuilder {
    schema: SchemaRef,
    rows: usize,
    columns: Vec<(&'static str, FlowColumn)>,
    /// Catalogue fields without an accessor: refused at `finish`.
    missing: Vec<&'static str>,
}

impl Default for FlowBatchBuilder {
    fn default() -> Self {
        FlowBatchBuilder::new()
    }
}

impl FlowBatchBuilder {
    pub fn new() -> Self {
        let mut columns = Vec::with_capacity(FLOW_FIELDS.len());
        let mut missing = Vec::new();
        for d in FLOW_FIELDS {
            match flow_column(d.name) {
                Some(c) => columns.push((d.column, c)),
                None => missing.push(d.name),
            }
        }
        FlowBatchBuilder {
            schema: flows_schema(),
            rows: 0,
            columns,
            missing,
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

    /// Appends a flow without endpoint identities.
    pub fn append(&mut self, f: &FlowRecord) {
        self.append_resolved(f, None);
    }

    /// Appends a flow, naming its ends with `resolver` (as calls are)
    /// at the flow's first packet.
    pub fn append_resolved(&mut self, f: &FlowRecord, resolver: Option<&Resolver>) {
        let row = FlowRow {
            f,
            src: resolver.and_then(|r| r.resolve(f.client.ip(), f.client.port(), f.first_ts)),
            dst: resolver.and_then(|r| r.resolve(f.server.ip(), f.server.port(), f.first_ts)),
        };
        for (_, c) in &mut self.columns {
            match c {
                FlowColumn::Int(b, get) => b.append_value(get(&row)),
                FlowColumn::Str(b, put) => put(&row, b),
                FlowColumn::Bool(b, get) => b.append_value(get(&row)),
                FlowColumn::Ts(b, get) => b.append_value(get(&row)),
                FlowColumn::Double(b, get) => b.append_value(get(&row)),
            }
        }
        self.rows += 1;
    }

    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        if let Some(name) = self.missing.first() {
            return Err(ArrowError::SchemaError(format!(
                "flow field {name} has no column in FlowBatchBuilder (schema::flow_column)"
            )));
        }
        self.rows = 0;
        let cols: Vec<(&'static str, ArrayRef)> = self
            .columns
            .iter_mut()
            .map(|(name, c)| {
                let a: ArrayRef = match c {
                    FlowColumn::Int(b, _) => Arc::new(b.finish()),
                    FlowColumn::Str(b, _) => Arc::new(b.finish()),
                    FlowColumn::Bool(b, _) => Arc::new(b.finish()),
                    FlowColumn::Ts(b, _) => Arc::new(b.finish()),
                    FlowColumn::Double(b, _) => Arc::new(b.finish()),
                };
                (*name, a)
            })
            .collect();
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
            (call_fields(), {
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
                    metrics: trawl_model::flow::FlowMetrics::default(),
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

    /// Protocol fields land in their own columns; the flag of the call's
    /// protocol is true and every other protocol's columns hold zeros.
    #[test]
    fn protocol_attributes_become_columns() {
        let mut redis = Call::new(Protocol::Redis);
        redis.attrs.set("redis_command", "GET");
        redis.attrs.set("redis_key", "user:7");
        let http = sample_call();
        let mut b = CallBatchBuilder::new();
        b.append(&redis, None, None).unwrap();
        b.append(&http, None, None).unwrap();
        let batch = b.finish().unwrap();
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let strings = |name: &str| {
            let c = col(name);
            let a = c.as_any().downcast_ref::<StringArray>().unwrap();
            (a.value(0).to_owned(), a.value(1).to_owned())
        };
        let flags = |name: &str| {
            let c = col(name);
            let a = c
                .as_any()
                .downcast_ref::<arrow::array::BooleanArray>()
                .unwrap();
            (a.value(0), a.value(1))
        };
        assert_eq!(strings("redis_command"), ("GET".into(), String::new()));
        assert_eq!(strings("redis_key"), ("user:7".into(), String::new()));
        assert_eq!(flags("redis"), (true, false));
        assert_eq!(flags("http"), (false, true));
        assert_eq!(flags("grpc"), (false, false));
        assert_eq!(batch.num_rows(), 2);
    }

    /// An attribute the catalogue does not have, or with the wrong type,
    /// is refused: a dissector bug must not lose data silently.
    #[test]
    fn unknown_or_mistyped_attributes_are_refused() {
        // `Attrs::set` debug-asserts against the catalogue, so the bad bags
        // are built unchecked.
        let mut bad = Call::new(Protocol::Redis);
        let mut b = CallBatchBuilder::new();
        bad.attrs = attrs_unchecked(&[("redis_nonexistent", trawl_model::AttrValue::Int(1))]);
        let e = b.append(&bad, None, None).unwrap_err().to_string();
        assert!(e.contains("redis_nonexistent"), "{e}");
        let mut b = CallBatchBuilder::new();
        bad.attrs = attrs_unchecked(&[("redis_command", trawl_model::AttrValue::Int(1))]);
        let e = b.append(&bad, None, None).unwrap_err().to_string();
        assert!(e.contains("redis_command"), "{e}");
    }

    fn attrs_unchecked(items: &[(&'static str, trawl_model::AttrValue)]) -> trawl_model::Attrs {
        trawl_model::Attrs::from_unchecked(items.to_vec())
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
