//! Plain text for what em-infra records (stage messages, artifacts, check lines): the marks
//! and the borderless columns the terminal shows too, without a terminal crate.

use serde::Serialize;

/// How a check or a result line is marked: `✓`, `✗`, `!`, `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    Ok,
    Fail,
    Warn,
    Skip,
}

impl Mark {
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✓",
            Mark::Fail => "✗",
            Mark::Warn => "!",
            Mark::Skip => "-",
        }
    }
}

/// Rows under a header, each column as wide as its widest cell, two spaces between columns,
/// no trailing blanks.
pub fn columns<R, C>(header: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator<Item = String>,
{
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    table.extend(rows.into_iter().map(|r| r.into_iter().collect()));
    let mut widths = vec![0; header.len()];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    table
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_and_trim() {
        let t = super::columns(
            &["A", "LONG HEADER", "C"],
            [
                vec!["wide cell".to_string(), "x".into(), String::new()],
                vec!["b".to_string(), "yy".into(), "z".into()],
            ],
        );
        assert_eq!(
            t,
            "A          LONG HEADER  C\nwide cell  x\nb          yy           z"
        );
    }
}
