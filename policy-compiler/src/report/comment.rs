//! What a pull-request comment in Markdown needs, whichever report writes it (`diff`,
//! `verify`): GitHub's size limit, table cells, counts in words, folded sections.

use std::fmt::Write as _;

/// GitHub refuses comments longer than this (characters). Reports measure their text in
/// bytes, never fewer than its characters: what fits in bytes fits.
pub const COMMENT_LIMIT: usize = 65_536;

/// Room kept for the note that says what a comment leaves out.
pub const NOTE_ROOM: usize = 300;

/// Text for a table cell: a `|` would end the cell, a line break the row.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

/// `1 flow`, `3 flows`: `one` or `many` after the number.
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether `more` bytes still fit in a comment of `used` bytes, with `reserve` bytes kept for
/// what must follow (closing tags, the note on what is left out).
pub fn fits(used: usize, more: usize, reserve: usize) -> bool {
    used + more + reserve <= COMMENT_LIMIT
}

/// Open a folded section: `<details><summary>…</summary>` and the blank line Markdown needs
/// before a table; `open` shows it unfolded.
pub fn open_details(out: &mut String, summary: &str, open: bool) {
    let _ = write!(
        out,
        "<details{}><summary>{summary}</summary>\n\n",
        if open { " open" } else { "" }
    );
}

/// Close what [`open_details`] opened.
pub const CLOSE_DETAILS: &str = "\n</details>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_keep_their_row_and_counts_read_as_words() {
        assert_eq!(cell("a|b\nc"), "a\\|b<br>c");
        assert_eq!(counted(1, "flow", "flows"), "1 flow");
        assert_eq!(counted(0, "flow", "flows"), "0 flows");
        assert!(fits(COMMENT_LIMIT - 10, 5, 5));
        assert!(!fits(COMMENT_LIMIT - 10, 6, 5));
        let mut out = String::new();
        open_details(&mut out, "3 more", true);
        assert_eq!(out, "<details open><summary>3 more</summary>\n\n");
    }
}
