//! The lists of the command line (`pgwa session list`, `jobs list`, `tenant list`): a table
//! for a person, or with `--json` one JSON array for a script. The JSON is the rows' own
//! fields (their serde names, RFC 3339 times, null for none), not the table's cells, so a
//! script does not parse what is worded for a person.

use comfy_table::{CellAlignment, Table, presets};
use serde::Serialize;

use super::log;

/// A column of the table: its header, and numbers aligned right.
pub enum Col {
    Left(&'static str),
    Right(&'static str),
}

/// Prints `rows`: with `json`, as one JSON array; otherwise as a table of `cols` with
/// `cells` for each row, then how many `noun`s there are.
pub fn print<T: Serialize>(
    rows: &[T],
    json: bool,
    cols: &[Col],
    noun: &str,
    cells: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        return log::out(&(serde_json::to_string_pretty(rows)? + "\n"));
    }
    let mut table = Table::new();
    // No borders: a line per row, columns apart by two spaces, for grep, awk and eyes alike.
    table.load_style(presets::NOTHING);
    table.set_header(cols.iter().map(|(Col::Left(h) | Col::Right(h))| *h).collect::<Vec<_>>());
    for r in rows {
        // A multi-line error would split its row; a person reads it as well on one line.
        table.add_row(cells(r).into_iter().map(|c| c.replace(['\n', '\r', '\t'], " ")).collect::<Vec<_>>());
    }
    for (i, (column, col)) in table.column_iter_mut().zip(cols).enumerate() {
        column.set_padding((0, if i + 1 < cols.len() { 2 } else { 0 }));
        if let Col::Right(_) = col {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    // trim_fmt: padding to the widest cell leaves spaces at line ends a pipe need not carry.
    log::out(&format!("{}\n{} {noun}(s)\n", table.trim_fmt(), rows.len()))
}
