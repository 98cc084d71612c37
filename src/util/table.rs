//! Terminal tables, from `comfy-table`: plain columns two spaces apart under
//! a dashed rule. On a terminal a table fits the terminal's width where it
//! can: headers wrap, text in columns marked [`Col::Wrap`] wraps, and no
//! other value is ever broken (a table whose values alone are wider than the
//! terminal runs past it); written to a pipe or a file (logs, tests) nothing
//! wraps, so each row stays one line. Markdown tables (report.md) are not
//! made here.

use comfy_table::{
    CellAlignment, ColumnConstraint, ContentArrangement, LineStyle, Table, TableStyle, Width,
};

/// How a column is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// Left-aligned, never wrapped (names, keys).
    Left,
    /// Right-aligned, never wrapped (numbers).
    Right,
    /// Left-aligned text that wraps to fit a narrow terminal.
    Wrap,
}

/// A wrapping column keeps at least this many characters.
const MIN_WRAP: u16 = 12;

/// No borders, no column lines, a dashed rule under the header.
const PLAIN: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('-').junction('-'));

/// A table being filled row by row.
pub struct TextTable {
    table: Table,
    cols: Vec<Col>,
    /// Widest value (header excluded) of each column so far.
    widths: Vec<u16>,
    indent: u16,
}

impl TextTable {
    /// A table with a header row (`(name, layout)` per column).
    pub fn new(columns: &[(&str, Col)]) -> Self {
        let mut t = Self::bare(&columns.iter().map(|c| c.1).collect::<Vec<_>>());
        t.table.set_header(columns.iter().map(|c| c.0));
        t
    }

    /// A table without a header (a list of aligned rows).
    pub fn bare(cols: &[Col]) -> Self {
        let mut table = Table::new();
        table
            .load_style(PLAIN)
            .set_content_arrangement(ContentArrangement::Dynamic);
        Self {
            table,
            cols: cols.to_vec(),
            widths: vec![0; cols.len()],
            indent: 0,
        }
    }

    /// Spaces before every row.
    pub fn indent(mut self, spaces: u16) -> Self {
        self.indent = spaces;
        self
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        let cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        for (i, c) in cells.iter().enumerate() {
            let w = c.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            let w = u16::try_from(w).unwrap_or(u16::MAX);
            match self.widths.get_mut(i) {
                Some(m) => *m = (*m).max(w),
                None => self.widths.push(w),
            }
        }
        self.table.add_row(cells);
        self
    }

    /// The table's lines, each ending in a newline, trailing spaces trimmed.
    pub fn render(mut self) -> String {
        let last = self.cols.len().saturating_sub(1);
        for (i, c) in self.table.column_iter_mut().enumerate() {
            let kind = self.cols.get(i).copied().unwrap_or(Col::Left);
            // One space of padding and the empty column line: two spaces apart.
            let padding = (if i == 0 { self.indent } else { 0 }, u16::from(i != last));
            c.set_padding(padding);
            if kind == Col::Right {
                c.set_cell_alignment(CellAlignment::Right);
            }
            // The boundary counts the padding.
            let body = self.widths.get(i).copied().unwrap_or(0);
            let keep = if kind == Col::Wrap {
                body.min(MIN_WRAP)
            } else {
                body
            };
            c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(
                keep.saturating_add(padding.0 + padding.1),
            )));
        }
        let mut s = self.table.trim_fmt();
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_two_spaces_apart_under_a_rule_and_numbers_align_right() {
        let mut t = TextTable::new(&[("name", Col::Left), ("J", Col::Right), ("note", Col::Wrap)]);
        t.row(["a", "1.5", "x"]).row(["long name", "12.25", ""]);
        assert_eq!(
            t.render(),
            "name           J  note\n\
             ----------------------\n\
             a            1.5  x\n\
             long name  12.25\n"
        );
        // On a narrow terminal headers and text wrap, values do not.
        let mut n = TextTable::new(&[
            ("trial", Col::Left),
            ("train net J", Col::Right),
            ("note", Col::Wrap),
        ]);
        n.row(["mlp/b64/s1/r0", "-12.5", "estimated from CPU utilisation"]);
        n.table.set_width(36);
        let out = n.render();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() <= 36), "{out}");
        let rule = lines.iter().position(|l| l.starts_with("---")).unwrap();
        assert!(rule > 1, "the header wraps: {out}");
        assert!(
            lines[rule + 1].starts_with("mlp/b64/s1/r0") && lines[rule + 1].contains("  -12.5  "),
            "{out}"
        );
        assert!(lines.len() > rule + 2, "the note wraps: {out}");
        let mut b = TextTable::bare(&[Col::Left, Col::Wrap]).indent(2);
        b.row(["k", "v"]).row(["key", "value"]);
        assert_eq!(b.render(), "  k    v\n  key  value\n");
    }
}
