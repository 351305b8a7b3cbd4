//! SQL over an index with DataFusion: the tables `calls` and `flows` are
//! listing tables over the index's Parquet part files, with the schemas of
//! [`crate::schema`] (given, not inferred, so an index with no calls still
//! has a `calls` table to ask).
//!
//! Statements are read-only: DDL (`CREATE EXTERNAL TABLE`), DML (`COPY`,
//! `INSERT`) and `SET` are refused, because the SQL may come from an agent
//! and must not read or write files outside the index. Called by
//! `trawl sql`; KFL queries will build on [`session`].

use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::IndexError;
use crate::manifest::open_index;
use crate::schema::{calls_schema, flows_schema};

/// A query's answer: its schema (also when there are no rows) and batches.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Most bytes of decoded Parquet footers and page indexes a session keeps
/// (DataFusion's own default is 50 MB): enough for the metadata of ~100 M
/// calls, so that the plans of one query parse each file's footer once.
pub const METADATA_CACHE_BYTES: usize = 512 * 1024 * 1024;

/// A DataFusion session with `calls` and `flows` registered over the
/// index in `dir` (checked by its manifest first).
pub async fn session(dir: &Path) -> Result<SessionContext, IndexError> {
    open_index(dir)?;
    let mut config = SessionConfig::new().with_information_schema(true);
    // Late materialisation: filter columns are decoded first and the rest
    // only for the rows that pass (cheapest predicates first), so a
    // selective KFL filter over 10 M calls does not decode every header
    // map; TopK's dynamic filter (`--sort … --limit`) joins the row filter
    // too. Without it `trawl query` decoded every column of every row
    // (bench/RESULTS.md, query).
    let parquet = &mut config.options_mut().execution.parquet;
    parquet.pushdown_filters = true;
    parquet.reorder_filters = true;
    // A `trawl query` runs three plans over the same files (count, page
    // keys, page rows); each reads every file's footer and page index,
    // which for a 1 Mi-row part of ~200 columns decode to several MB, so
    // DataFusion's default 50 MB cache held too few of a 10 M-call index.
    let runtime = RuntimeEnvBuilder::new()
        .with_metadata_cache_limit(METADATA_CACHE_BYTES)
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    for (table, schema) in [("calls", calls_schema()), ("flows", flows_schema())] {
        let path = dir.join(table);
        let url = format!("{}/", path.display());
        ctx.register_parquet(table, &url, ParquetReadOptions::default().schema(&schema))
            .await?;
    }
    Ok(ctx)
}

/// Runs one read-only SQL statement over the index in `dir`, blocking the
/// calling thread (DataFusion runs on a runtime of its own here).
pub fn run_sql(dir: &Path, sql: &str) -> Result<QueryResult, IndexError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("trawl-sql")
        .build()
        .map_err(IndexError::io(dir))?;
    runtime.block_on(async {
        let ctx = session(dir).await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await?;
        let schema: SchemaRef = df.schema().inner().clone();
        let batches = df.collect().await?;
        Ok(QueryResult { schema, batches })
    })
}
