//! Tables for people: each column as wide as its widest cell, two spaces between columns,
//! the last one unpadded, numbers right-aligned where asked. Cells from clients or
//! certificates are the caller's to escape ([`super::printable`]).

pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            right: vec![false; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns column `col` (sizes, counts).
    pub fn right(mut self, col: usize) -> Table {
        self.right[col] = true;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, one line per row after the header line, each ending in a newline.
    pub fn render(&self) -> String {
        let len = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| len(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(len(cell));
            }
        }
        let last = self.headers.len() - 1;
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.into_iter().enumerate() {
                let pad = widths[i] - len(cell);
                if i > 0 {
                    out.push_str("  ");
                }
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if i < last {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push('\n');
            out
        };
        let mut out = line(self.headers.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["NAME", "SIZE", "NOTE"]).right(1);
        t.row(vec!["a-much-longer-name".into(), "7".into(), "x".into()]);
        t.row(vec![
            "b".into(),
            "12345".into(),
            "last column, unpadded".into(),
        ]);
        assert_eq!(
            t.render(),
            "NAME                 SIZE  NOTE\n\
             a-much-longer-name      7  x\n\
             b                   12345  last column, unpadded\n"
        );
    }
}
