//! Aligned text tables for the client commands' human output: a header row and columns padded
//! to their widest cell, so `brook topic list` reads like `kafka-topics` or `kubectl get`.

use std::io::Write;

/// Writes `header` and `rows` with every column padded to its widest cell, two spaces apart.
pub(super) fn write(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["orders".to_string(), "3".to_string()],
            vec!["a".to_string(), "12".to_string()],
        ];
        super::write(&mut out, &["NAME", "PARTITIONS"], &rows).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "NAME    PARTITIONS\norders  3\na       12\n"
        );
    }
}
