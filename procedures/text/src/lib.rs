//! `text`: small string utilities.
//!
//! Call `text.slugify` with `["Hello, World!"]` to get `"hello-world"`.

use wasmrpc_guest::procedure;

/// Counts the words (runs of non-whitespace) in `text`.
#[procedure]
fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

/// Makes a URL slug: lowercase letters and digits joined by `separator` (`-` when left out).
#[procedure]
fn slugify(text: String, separator: Option<String>) -> String {
    let separator = separator.unwrap_or_else(|| "-".to_owned());
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(&separator)
}

/// Reverses `text` character by character.
#[procedure]
fn reverse(text: String) -> String {
    text.chars().rev().collect()
}

/// Converts `text` to upper case.
#[procedure]
fn upper(text: String) -> String {
    text.to_uppercase()
}

/// Whether `text` reads the same backwards, ignoring case and everything but letters and digits.
#[procedure]
fn is_palindrome(text: String) -> bool {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    letters.iter().eq(letters.iter().rev())
}

wasmrpc_guest::export!(word_count, slugify, reverse, upper, is_palindrome);
