//! `trawl query DIR 'KFL'`: the calls of an index that match a KFL filter,
//! one page at a time, as a table or JSON lines keyed by KFL field names.
//! The filter is compiled to DataFusion by `trawl_index::kfl::query`; a
//! filter that does not compile (with its position and did-you-mean) or
//! that uses what queries cannot run yet is printed as one line and exits
//! with status 2. When more rows match, the cursor of the next page is
//! printed on stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;
use trawl_index::kfl::{DEFAULT_FIELDS, QueryOptions, query};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A boxed table for people.
    Table,
    /// One JSON object per call, keyed by KFL field names.
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index directory (made by `trawl index`).
    dir: PathBuf,
    /// The KFL filter, e.g. 'http && status_code >= 500'; '' matches every call.
    filter: String,
    /// Calls per page.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Sort keys, comma-separated KFL field names; a leading '-' sorts
    /// descending (default: timestamp).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    sort: Vec<String>,
    /// Fields to show, comma-separated KFL names (default: a summary for
    /// the table, every field for jsonl).
    #[arg(long, value_delimiter = ',')]
    fields: Option<Vec<String>>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let sort = args
        .sort
        .iter()
        .map(|s| match s.strip_prefix('-') {
            Some(name) => (name.to_string(), true),
            None => (s.strip_prefix('+').unwrap_or(s).to_string(), false),
        })
        .collect();
    let fields = args.fields.clone().or_else(|| {
        (args.format == Format::Table)
            .then(|| DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect())
    });
    let opts = QueryOptions {
        limit: args.limit,
        sort,
        fields,
        cursor: args.cursor.clone(),
    };
    let page = query(&args.dir, &args.filter, &opts)?;
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    let written: anyhow::Result<()> = match args.format {
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches_with_schema(
                page.schema.clone(),
                &page.batches,
            )?;
            writeln!(out, "{table}").map_err(Into::into)
        }
        Format::Jsonl => {
            // Arrow's writer keeps the column order of `--fields`.
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            let batches: Vec<_> = page.batches.iter().collect();
            w.write_batches(&batches)
                .and_then(|()| w.finish())
                .map_err(Into::into)
        }
    };
    let flushed = written.and_then(|()| out.flush().map_err(Into::into));
    match flushed {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            return Ok(ExitCode::SUCCESS);
        }
        r => r.context("cannot write the result")?,
    }
    eprintln!(
        "{} of {} matching calls",
        page.num_rows(),
        page.total_matching
    );
    if let Some(c) = &page.next_cursor {
        eprintln!("next cursor: {c}");
    }
    Ok(ExitCode::SUCCESS)
}
