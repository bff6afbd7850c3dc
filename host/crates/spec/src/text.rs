//! Guest-made text shown to people: a step's error string, an artifact's file name, a log
//! message. Printed raw, a control character in it can clear a terminal, move the cursor or
//! forge whole output lines; every front end passes such text through here first.

use std::borrow::Cow;

/// `text` with every control character (ANSI escapes, carriage returns, newlines, NUL, ...)
/// written as a Rust-style escape (`\u{1b}`, `\r`, `\n`), so it prints as one inert line.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The first `max` bytes of `text` (cut at a character boundary), with a note of how much was
/// left out when it was cut.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}… ({} more bytes)",
        &text[..end],
        text.len() - end
    ))
}

/// `text` on one line: runs of whitespace (newlines and indentation of debug-printed values
/// included) folded to one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_text_folds_to_one_line() {
        assert_eq!(
            one_line("expected=[\n    0x0,\n    0x61,\n]"),
            "expected=[ 0x0, 0x61, ]"
        );
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(escape_control("plain text"), "plain text");
        assert_eq!(
            escape_control("\u{1b}[2J\rSUCCEEDED\n"),
            "\\u{1b}[2J\\rSUCCEEDED\\n"
        );
        assert_eq!(escape_control("tab\there"), "tab\\there");
    }

    #[test]
    fn truncation_cuts_at_a_character_boundary_and_says_so() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 3), "é… (4 more bytes)");
    }
}
