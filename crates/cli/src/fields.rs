//! `trawl fields`: print the field catalogue — every field of calls and
//! flows with its KFL2 name, the aliases accepted for it, its type, its
//! Parquet column, an example and its meaning — as a table for people or
//! JSON for programs. The catalogue itself is `trawl_model::catalogue`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;
use trawl_model::catalogue::{FLOW_FIELDS, FieldDef, call_fields};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document: {"calls": [...], "flows": [...]}.
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Table {
    Calls,
    Flows,
    All,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Which record's fields to print.
    #[arg(long, value_enum, default_value_t = Table::All)]
    table: Table,
}

fn tables(which: Table) -> Vec<(&'static str, &'static [FieldDef])> {
    let mut out = Vec::new();
    if matches!(which, Table::Calls | Table::All) {
        out.push(("calls", call_fields()));
    }
    if matches!(which, Table::Flows | Table::All) {
        out.push(("flows", FLOW_FIELDS));
    }
    out
}

fn json_of(d: &FieldDef) -> serde_json::Value {
    serde_json::json!({
        "name": d.name,
        "aliases": d.aliases,
        "type": d.ty.as_str(),
        "column": d.column,
        "example": d.example,
        "doc": d.doc,
    })
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let r = match args.format {
        Format::Json => {
            let doc: serde_json::Map<String, serde_json::Value> = tables(args.table)
                .into_iter()
                .map(|(t, fields)| (t.to_owned(), fields.iter().map(json_of).collect()))
                .collect();
            serde_json::to_writer_pretty(&mut out, &doc)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        }
        Format::Table => write_table(&mut out, args.table),
    };
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        r => {
            r.context("cannot write output")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_table(out: &mut impl std::io::Write, which: Table) -> std::io::Result<()> {
    for (i, (table, fields)) in tables(which).into_iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{table}:")?;
        let name_w = fields
            .iter()
            .map(|d| d.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let type_w = fields
            .iter()
            .map(|d| d.ty.as_str().len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(out, "  {:name_w$}  {:type_w$}  DESCRIPTION", "NAME", "TYPE")?;
        for d in fields {
            let mut doc = d.doc.to_owned();
            if !d.aliases.is_empty() {
                doc.push_str(&format!(" Aliases: {}.", d.aliases.join(", ")));
            }
            if d.column != d.name {
                doc.push_str(&format!(" Column: {}.", d.column));
            }
            writeln!(
                out,
                "  {:name_w$}  {:type_w$}  {doc}",
                d.name,
                d.ty.as_str()
            )?;
        }
    }
    Ok(())
}
