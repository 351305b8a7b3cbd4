//! `trawl sql DIR 'SELECT …'`: run one read-only SQL query (DataFusion's
//! dialect) over an index's tables `calls` and `flows` and print the rows
//! as a table, JSON lines or CSV. The query runs in
//! `trawl_index::run_sql`; errors (a bad query, a directory that is not an
//! index) are printed as one line and exit with status 2.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A boxed table for people.
    Table,
    /// One JSON object per row.
    Jsonl,
    /// Comma-separated values with a header line (scalar columns only).
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index directory (made by `trawl index`).
    dir: PathBuf,
    /// The query, e.g. "SELECT status_code, count(*) FROM calls GROUP BY 1".
    query: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let result = trawl_index::run_sql(&args.dir, &args.query)?;
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    let written: anyhow::Result<()> = match args.format {
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches_with_schema(
                result.schema.clone(),
                &result.batches,
            )?;
            writeln!(out, "{table}").map_err(Into::into)
        }
        Format::Jsonl => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            let batches: Vec<_> = result.batches.iter().collect();
            w.write_batches(&batches)
                .and_then(|()| w.finish())
                .map_err(Into::into)
        }
        Format::Csv => {
            let mut w = arrow::csv::Writer::new(&mut out);
            result
                .batches
                .iter()
                .try_for_each(|b| w.write(b))
                .context("CSV holds scalar columns only; use --format jsonl for lists and maps")
        }
    };
    let flushed = written.and_then(|()| out.flush().map_err(Into::into));
    match flushed {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        r => {
            r.context("cannot write the result")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
