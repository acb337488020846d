//! `notes`: a notebook that outlives its calls, the key-value example.
//!
//! The notes live in the procedure's bucket `default` (`wasmrpc_guest::kv`):
//! each under `note:` and its id, zero-padded so the keys list in id order
//! (`note:000000000042`), as JSON; the counter `next-id` hands out ids and
//! the counter `count` counts the notes there are, and `removed:` and an id
//! marks a note removed. Call `notes.add` with
//! `["buy milk"]`, then `notes.list`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use wasmrpc_guest::kv;
use wasmrpc_guest::schemars::JsonSchema;
use wasmrpc_guest::serde_json::json;
use wasmrpc_guest::{procedure, Error};

/// The counter of the last id handed out.
const NEXT_ID: &str = "next-id";
/// The counter of the notes there are.
const COUNT: &str = "count";
/// Most notes in one page of `list`.
const PAGE: u64 = 100;
/// Code of the error for an id with no note (outside JSON-RPC's range).
const NO_SUCH_NOTE: i32 = 1;

/// A note.
#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Note {
    id: u64,
    text: String,
    /// When it was added, in seconds since 1970 (UTC).
    created: u64,
}

/// One page of notes, and where the next one starts (null after the last).
#[derive(Serialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Page {
    notes: Vec<Note>,
    cursor: Option<u64>,
}

fn key(id: u64) -> String {
    format!("note:{id:012}")
}

/// Adds a note and returns its id.
#[procedure]
fn add(text: String) -> Result<u64, Error> {
    if text.trim().is_empty() {
        return Err(Error::invalid_params("the note is empty"));
    }
    let notes = kv::open_default()?;
    // `increment` is atomic: concurrent calls never get the same id (1, 2, ...).
    let id = notes.increment(NEXT_ID, 1)? as u64;
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    notes.set(&key(id), &Note { id, text, created })?;
    notes.increment(COUNT, 1)?;
    Ok(id)
}

/// The notes after `cursor` (from the first when left out), oldest first,
/// at most 100; pass the answer's `cursor` for the next page.
#[procedure]
fn list(cursor: Option<u64>) -> Result<Page, Error> {
    let notes = kv::open_default()?;
    let last: u64 = notes.get(NEXT_ID)?.unwrap_or(0);
    let mut page = Vec::new();
    let mut after = cursor.unwrap_or(0);
    // Ids of removed notes are holes: read ids in batches until the page
    // is full or no ids are left.
    while (page.len() as u64) < PAGE && after < last {
        let end = last.min(after + PAGE - page.len() as u64);
        let found = notes.get_many::<Note>((after + 1..=end).map(key))?;
        page.extend(found.into_iter().filter_map(|(_, note)| note));
        after = end;
    }
    Ok(Page { notes: page, cursor: (after < last).then_some(after) })
}

/// The note `id`.
///
/// Fails with code 1 when there is none.
#[procedure]
fn get(id: u64) -> Result<Note, Error> {
    kv::open_default()?.get(&key(id))?.ok_or_else(|| no_such_note(id))
}

/// Removes the note `id`; false when there was none.
#[procedure]
fn remove(id: u64) -> Result<bool, Error> {
    let notes = kv::open_default()?;
    if !notes.exists(&key(id))? {
        return Ok(false);
    }
    // The first call to remove a note claims it (ids are never reused, so
    // the claim stays): two calls removing it at once count it off once.
    if notes.increment(&format!("removed:{id:012}"), 1)? != 1 {
        return Ok(false);
    }
    notes.delete(&key(id))?;
    notes.increment(COUNT, -1)?;
    Ok(true)
}

/// How many notes there are.
#[procedure]
fn count() -> Result<u64, Error> {
    Ok(kv::open_default()?.get(COUNT)?.unwrap_or(0))
}

fn no_such_note(id: u64) -> Error {
    Error::new(NO_SUCH_NOTE, format!("no note {id}")).with_data(json!({ "id": id }))
}

wasmrpc_guest::export!(add, list, get, remove, count);
