//! Text a guest or a client controls, made safe for one server log line:
//! control characters (newlines, carriage returns, escape sequences) are
//! escaped, so such text cannot start a forged line or repaint a terminal,
//! and it is cut at [`MAX_LOG_TEXT_BYTES`] with a note of how much was left
//! out. Every guest output line, host log message and guest error message
//! goes through [`loggable`] before it reaches `tracing`.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::config::MAX_LOG_TEXT_BYTES;

/// A name a client sent, quoted for an error message: escaped, and cut to
/// its first 40 characters (a message names what was wrong, it does not
/// echo a megabyte back).
pub fn quoted(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    let more = if short.len() < text.len() { "..." } else { "" };
    format!("\"{}{more}\"", short.escape_debug())
}

/// `text`, escaped and cut to fit one log line; borrowed when nothing changes.
pub fn loggable(text: &str) -> Cow<'_, str> {
    let needs_escape = text.chars().any(char::is_control);
    if !needs_escape && text.len() <= MAX_LOG_TEXT_BYTES {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MAX_LOG_TEXT_BYTES) + 32);
    let mut shown = 0;
    for c in text.chars() {
        if out.len() >= MAX_LOG_TEXT_BYTES {
            break;
        }
        shown += c.len_utf8();
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if shown < text.len() {
        let _ = write!(out, "... ({} more bytes)", text.len() - shown);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept_as_it_is() {
        assert!(matches!(loggable("adding 2 and 3 – ünïcode"), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let forged = "ok\n2026-11-30T00:00:00Z  INFO wasmrpc: deployed\r\x1b[2J";
        let safe = loggable(forged);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        assert_eq!(safe, "ok\\n2026-11-30T00:00:00Z  INFO wasmrpc: deployed\\r\\u{1b}[2J");
    }

    #[test]
    fn long_text_is_cut_with_a_note() {
        let long = "é".repeat(MAX_LOG_TEXT_BYTES);
        let safe = loggable(&long);
        assert!(safe.len() < MAX_LOG_TEXT_BYTES + 40, "{}", safe.len());
        assert!(safe.ends_with(&format!("... ({} more bytes)", 2 * MAX_LOG_TEXT_BYTES - MAX_LOG_TEXT_BYTES)));
    }
}
