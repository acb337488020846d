//! Test-only: a procedure whose docs, field names and enum values are HTML,
//! for the dashboard's escaping test. Everything the page shows of it must
//! come out as the characters below, and none of it may run: each attempt
//! would open a dialog or set `window.pwned`, which the test watches for.

use serde::Deserialize;
use wasmrpc_guest::procedure;
use wasmrpc_guest::schemars::JsonSchema;

/// <script>alert("doc")</script><img src=x onerror="window.pwned=1"> Echoes the note's text.
///
/// <a href="javascript:alert('link')">a link</a> <style>body{display:none}</style>
#[procedure]
fn echo(note: Note, mood: Option<Mood>) -> String {
    let mood = match mood {
        Some(Mood::Calm) => "calm",
        Some(Mood::Loud) => "loud",
        None => "none",
    };
    format!("{} ({mood})", note.text)
}

/// A note. <b onmouseover="window.pwned=2">bold</b>
#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Note {
    /// <img src=x onerror="window.pwned=3">
    #[serde(rename = "<svg onload=\"window.pwned=4\">")]
    text: String,
}

/// How to say it.
#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
enum Mood {
    /// <iframe src="javascript:alert('variant')"></iframe>
    #[serde(rename = "<i>calm</i>")]
    Calm,
    #[serde(rename = "</option><script>alert('option')</script>")]
    Loud,
}

wasmrpc_guest::export!(echo);
