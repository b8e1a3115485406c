//! Lists as CSV for a spreadsheet (RFC 4180): a byte-order mark first, so that Excel reads the
//! UTF-8 of Chinese headers and names; amounts as plain decimals (no currency sign, no
//! thousands separator), so that they sum as numbers; text that a spreadsheet would run as a
//! formula (`=`, `+`, `-`, `@` first) kept as text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A cell: text as it reads, or a number written as the spreadsheet should take it.
pub enum Cell {
    Text(String),
    Number(String),
}

impl Cell {
    /// Text.
    pub fn text(text: impl Into<String>) -> Cell {
        Cell::Text(text.into())
    }

    /// A number (an amount, a count), as its `Display` writes it.
    pub fn number(value: impl std::fmt::Display) -> Cell {
        Cell::Number(value.to_string())
    }
}

/// A CSV document being written.
pub struct Csv(String);

impl Default for Csv {
    fn default() -> Self {
        Csv("\u{feff}".to_string())
    }
}

impl Csv {
    /// Appends one record.
    pub fn row(&mut self, cells: impl IntoIterator<Item = Cell>) {
        let mut first = true;
        for cell in cells {
            if !first {
                self.0.push(',');
            }
            first = false;
            match cell {
                Cell::Number(n) => self.0.push_str(&n),
                Cell::Text(t) => self.0.push_str(&quoted(&t)),
            }
        }
        self.0.push_str("\r\n");
    }

    /// The document, offered for download as `filename`.
    pub fn download(self, filename: &str) -> Response {
        let disposition = format!("attachment; filename=\"{}\"", filename.replace(['"', '\\', '\r', '\n'], "_"));
        let mut response = (StatusCode::OK, self.0).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        response
    }

    #[cfg(test)]
    fn text(&self) -> &str {
        &self.0
    }
}

/// A text cell: a leading formula character neutralised by an apostrophe (which spreadsheets
/// hide), quoted when it holds a comma, a quote or a line break, its quotes doubled.
fn quoted(text: &str) -> String {
    let guarded =
        if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
    if guarded.contains([',', '"', '\n', '\r']) { format!("\"{}\"", guarded.replace('"', "\"\"")) } else { guarded }
}

/// The address of a page's CSV twin: its path with `.csv` added, its query kept.
pub fn twin(here: &str) -> String {
    let (path, query) = here.split_once('?').unwrap_or((here, ""));
    if query.is_empty() { format!("{path}.csv") } else { format!("{path}.csv?{query}") }
}

#[cfg(test)]
mod tests {
    use super::{Cell, Csv, twin};

    #[test]
    fn cells_are_quoted_where_needed_and_formulas_stay_text() {
        let mut csv = Csv::default();
        csv.row([Cell::text("Invoice"), Cell::text("客户"), Cell::text("Amount (CNY)")]);
        csv.row([
            Cell::text("INV-1"),
            Cell::text("Delft, \"BV\""),
            Cell::number(rust_decimal::Decimal::new(-123450, 2)),
        ]);
        csv.row([Cell::text("=HYPERLINK(\"x\")"), Cell::text("-1"), Cell::text("@sum"), Cell::text("a\nb")]);
        assert_eq!(
            csv.text(),
            "\u{feff}Invoice,客户,Amount (CNY)\r\nINV-1,\"Delft, \"\"BV\"\"\",-1234.50\r\n\
             \"'=HYPERLINK(\"\"x\"\")\",'-1,'@sum,\"a\nb\"\r\n"
        );
    }

    #[test]
    fn a_pages_twin_keeps_its_filters() {
        assert_eq!(twin("/board/receivables"), "/board/receivables.csv");
        assert_eq!(
            twin("/board/receivables?bucket=90%2B&lang=zh-CN"),
            "/board/receivables.csv?bucket=90%2B&lang=zh-CN"
        );
    }
}
