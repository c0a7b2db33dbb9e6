//! Output formats of the admin commands: aligned tables for people, JSON and YAML for scripts.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::ValueEnum;
use serde::Serialize;

/// How a command prints what the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns with headers.
    #[default]
    Table,
    /// One pretty-printed JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

/// Prints `view` in `format`; `table` renders it for people and is only called for
/// [`OutputFormat::Table`], so a view that is costly to lay out costs nothing in JSON mode.
pub fn print<T: Serialize>(
    format: OutputFormat,
    view: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let text = render(format, view, table)?;
    print!("{text}");
    Ok(())
}

/// The text [`print`] writes, always ending in a newline.
pub fn render<T: Serialize>(
    format: OutputFormat,
    view: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<String> {
    let mut text = match format {
        OutputFormat::Table => table(view),
        OutputFormat::Json => serde_json::to_string_pretty(view).context("encoding JSON")?,
        OutputFormat::Yaml => serde_saphyr::to_string(view).context("encoding YAML")?,
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A table of left-aligned columns separated by two spaces, as `kubectl get` prints them.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is `headers`.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Appends a row; it should have as many cells as there are headers.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(
            cells.len(),
            self.rows[0].len(),
            "row width differs from headers"
        );
        self.rows.push(cells);
    }

    /// The table as lines ending in newlines, without trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let _ = write!(line, "{cell:<width$}", width = widths[c]);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A broker id, or `-` when there is none (a partition without a leader, no controller).
pub fn id_or_dash(id: Option<u32>) -> String {
    id.map_or_else(|| "-".to_owned(), |id| id.to_string())
}

/// Broker ids joined by commas, as Kafka's tools print replica lists.
pub fn id_list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn table_columns_align_to_the_widest_cell_without_trailing_spaces() {
        let mut table = Table::new(&["NAME", "PARTITIONS", "X"]);
        table.row(vec!["orders".into(), "12".into(), String::new()]);
        table.row(vec!["a".into(), "1".into(), "long cell".into()]);
        expect![[r#"
            NAME    PARTITIONS  X
            orders  12
            a       1           long cell
        "#]]
        .assert_eq(&table.render());
    }

    #[test]
    fn missing_ids_show_as_a_dash() {
        assert_eq!(id_or_dash(None), "-");
        assert_eq!(id_or_dash(Some(3)), "3");
        assert_eq!(id_list(&[1, 2, 3]), "1,2,3");
        assert_eq!(id_list(&[]), "");
    }
}
