//! `wasmrpc kv`: a procedure's key-value data through the admin API
//! (`/procedures/{name}/kv`, see `admin/kv.rs`): list, get, set, delete,
//! export and import. Buckets and keys go into paths percent-encoded, so a
//! key may hold `/`, spaces or any other character.

use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hyper::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::args::{KvCommand, ServerArgs};
use super::{admin_request, client_command};
use crate::admin::kv::Entry;

/// Everything but letters, digits, `-`, `_` and `~` is encoded in a path
/// segment: `/` so that it stays in the key, `.` so that no segment is `..`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// Keys per page when exporting, as values are up to 1 MiB each (key
/// listings take the server's page, `--kv-page-keys`). A server whose pages
/// are shorter refuses it: then the export takes the server's page too.
const EXPORT_PAGE: usize = 100;

/// Runs `wasmrpc kv ...`.
pub(crate) fn run(command: KvCommand) -> anyhow::Result<ExitCode> {
    client_command(async move {
        match command {
            KvCommand::List { name, bucket: None, prefix: _, server } => buckets(&name, &server).await,
            KvCommand::List { name, bucket: Some(bucket), prefix, server } => {
                keys(&name, &bucket, prefix.as_deref().unwrap_or_default(), &server).await
            }
            KvCommand::Get { name, bucket, key, server } => get(&name, &bucket, &key, &server).await,
            KvCommand::Set { name, bucket, key, value, file, server } => {
                let bytes = match (value, file) {
                    (_, Some(file)) => read_input(&file)?,
                    (Some(value), None) => value.into_bytes(),
                    (None, None) => bail!("give VALUE or --file FILE"),
                };
                set(&name, &bucket, &key, bytes, &server).await
            }
            KvCommand::Delete { name, all: true, yes, server, .. } => delete_all(&name, yes, &server).await,
            KvCommand::Delete { name, bucket: Some(bucket), key: Some(key), server, .. } => {
                admin_request(&server, Method::DELETE, &key_path(&name, &bucket, &key), Vec::new()).await?;
                println!("deleted key {key:?} in bucket {bucket:?} of {name}");
                Ok(ExitCode::SUCCESS)
            }
            KvCommand::Delete { .. } => bail!("give BUCKET and KEY, or --all"),
            KvCommand::Export { name, out, server } => export(&name, out.as_deref(), &server).await,
            KvCommand::Import { name, file, server } => import(&name, file.as_deref(), &server).await,
        }
    })
}

/// `/procedures/{name}/kv/{bucket}/{key}`, bucket and key percent-encoded.
fn key_path(name: &str, bucket: &str, key: &str) -> String {
    format!("{}/{}/{}", kv_path(name), utf8_percent_encode(bucket, SEGMENT), utf8_percent_encode(key, SEGMENT))
}

fn kv_path(name: &str) -> String {
    format!("/procedures/{}/kv", utf8_percent_encode(name, SEGMENT))
}

/// A key or bucket for a line of the terminal: control characters escaped.
fn shown(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

/// A procedure's buckets, by name: (bucket, keys, bytes). Sorted here, so
/// the table and the export are in one order whichever backend answers.
async fn bucket_list(name: &str, server: &ServerArgs) -> anyhow::Result<Vec<(String, u64, u64)>> {
    let listing = admin_request(server, Method::GET, &kv_path(name), Vec::new()).await?.json()?;
    let mut buckets: Vec<(String, u64, u64)> = listing["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| Some((b["bucket"].as_str()?.to_owned(), u64_of(&b["keys"]), u64_of(&b["bytes"]))))
        .collect();
    buckets.sort();
    Ok(buckets)
}

/// The buckets as a table.
async fn buckets(name: &str, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let buckets = bucket_list(name, server).await?;
    if buckets.is_empty() {
        println!("{name} has no key-value data");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<(String, u64, u64)> = buckets.into_iter().map(|(b, keys, bytes)| (shown(&b), keys, bytes)).collect();
    let width = rows.iter().map(|(b, _, _)| b.chars().count()).chain([6]).max().unwrap_or(6);
    println!("{:<width$}  {:>10}  {:>12}", "BUCKET", "KEYS", "BYTES");
    for (bucket, keys, bytes) in &rows {
        println!("{bucket:<width$}  {keys:>10}  {bytes:>12}");
    }
    let (keys, bytes) = rows.iter().fold((0, 0), |(k, b), row| (k + row.1, b + row.2));
    if rows.len() > 1 {
        println!("{:<width$}  {keys:>10}  {bytes:>12}", "(all)");
    }
    Ok(ExitCode::SUCCESS)
}

fn u64_of(value: &Value) -> u64 {
    value.as_u64().unwrap_or_default()
}

/// A bucket's listing, read a page at a time, following the cursor.
struct Pages<'a> {
    name: &'a str,
    bucket: &'a str,
    prefix: &'a str,
    /// With each key's value (`entries` instead of `keys`).
    values: bool,
    /// Keys per page asked for (the server caps it at `--kv-page-keys`);
    /// `None`: the server's page.
    limit: Option<usize>,
    /// Where the next page starts; `None` before the first.
    cursor: Option<String>,
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(name: &'a str, bucket: &'a str, prefix: &'a str, values: bool) -> Self {
        // Values are up to 1 MiB each: ask for short pages of them.
        let limit = values.then_some(EXPORT_PAGE);
        Pages { name, bucket, prefix, values, limit, cursor: None, done: false }
    }

    /// The next page's `keys` (or `entries`); `None` after the last.
    async fn next(&mut self, server: &ServerArgs) -> anyhow::Result<Option<Vec<Value>>> {
        if self.done {
            return Ok(None);
        }
        let answer = admin_request(server, Method::GET, &self.path(), Vec::new()).await?;
        let page = answer.json()?;
        let next = page["cursor"].as_str().map(str::to_owned);
        if next.is_some() && next == self.cursor {
            bail!("the server answered the same cursor twice for bucket {:?}: stopped", self.bucket);
        }
        self.done = next.is_none();
        self.cursor = next;
        let items = page[if self.values { "entries" } else { "keys" }].as_array().cloned().unwrap_or_default();
        Ok(Some(items))
    }

    fn path(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("bucket", self.bucket);
        if !self.prefix.is_empty() {
            query.append_pair("prefix", self.prefix);
        }
        if let Some(cursor) = &self.cursor {
            query.append_pair("cursor", cursor);
        }
        if let Some(limit) = self.limit {
            query.append_pair("limit", &limit.to_string());
        }
        if self.values {
            query.append_pair("values", "1");
        }
        format!("{}?{}", kv_path(self.name), query.finish())
    }
}

/// Every key of `bucket` with `prefix`, one a line.
async fn keys(name: &str, bucket: &str, prefix: &str, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let mut pages = Pages::new(name, bucket, prefix, false);
    while let Some(keys) = pages.next(server).await? {
        for key in keys.iter().filter_map(Value::as_str) {
            writeln!(stdout, "{}", shown(key))?;
        }
        stdout.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(name: &str, bucket: &str, key: &str, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let answer = admin_request(server, Method::GET, &key_path(name, bucket, key), Vec::new()).await?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&answer.body)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The bytes of `file`, or of stdin for `-`.
fn read_input(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().lock().read_to_end(&mut bytes).context("cannot read stdin")?;
        return Ok(bytes);
    }
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

async fn set(name: &str, bucket: &str, key: &str, value: Vec<u8>, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let len = value.len();
    admin_request(server, Method::PUT, &key_path(name, bucket, key), value).await?;
    println!("set key {key:?} in bucket {bucket:?} of {name} ({len} bytes)");
    Ok(ExitCode::SUCCESS)
}

/// `delete NAME --all`: without `--yes` it only says what would go.
async fn delete_all(name: &str, yes: bool, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    if !yes {
        let buckets = bucket_list(name, server).await?;
        let keys: u64 = buckets.iter().map(|b| b.1).sum();
        let bytes: u64 = buckets.iter().map(|b| b.2).sum();
        if keys == 0 {
            println!("{name} has no key-value data: nothing to delete");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "{name} has {keys} keys ({bytes} bytes) in {} buckets; nothing was deleted. To erase them all, \
             run `wasmrpc kv delete {name} --all --yes` (`wasmrpc kv export {name} -o {name}.jsonl` keeps a copy)",
            buckets.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let answer = admin_request(server, Method::DELETE, &kv_path(name), Vec::new()).await?.json()?;
    println!("erased {} keys of {name}", u64_of(&answer["erased_keys"]));
    Ok(ExitCode::SUCCESS)
}

/// Every key of every bucket as JSON lines, to `out` or stdout.
async fn export(name: &str, out: Option<&Path>, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let Some(out) = out.filter(|o| *o != Path::new("-")) else {
        let keys = export_to(name, &mut std::io::stdout().lock(), server).await?;
        eprintln!("exported {keys} keys of {name}");
        return Ok(ExitCode::SUCCESS);
    };
    // Written beside it and renamed when whole: a failed export leaves FILE as it was.
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = async {
        let file = std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        let keys = export_to(name, &mut writer, server).await?;
        writer.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
        std::fs::rename(&partial, out)
            .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
        anyhow::Ok(keys)
    }
    .await;
    match written {
        Ok(keys) => {
            eprintln!("exported {keys} keys of {name} to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e.context(format!("the export was not written to {}", out.display())))
        }
    }
}

/// Writes the export to `writer`; answers the number of keys.
async fn export_to(name: &str, writer: &mut impl Write, server: &ServerArgs) -> anyhow::Result<u64> {
    let mut count = 0_u64;
    for (bucket, _, _) in bucket_list(name, server).await? {
        let mut pages = Pages::new(name, &bucket, "", true);
        while let Some(entries) = pages.next(server).await? {
            for entry in &entries {
                let (Some(key), Some(value)) = (entry["key"].as_str(), entry["value"].as_str()) else {
                    bail!("the server answered an entry without a key or value: {entry}");
                };
                // Checked here, so an export never holds a line import refuses.
                BASE64
                    .decode(value)
                    .with_context(|| format!("the server answered a value that is not base64: {entry}"))?;
                let line = Entry { bucket: bucket.clone(), key: key.to_owned(), value: value.to_owned() };
                serde_json::to_writer(&mut *writer, &line)?;
                writer.write_all(b"\n")?;
                count += 1;
            }
            writer.flush()?;
        }
    }
    Ok(count)
}

async fn import(name: &str, file: Option<&Path>, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let file = file.map_or_else(|| PathBuf::from("-"), Path::to_path_buf);
    let body = read_input(&file)?;
    let from = if file == Path::new("-") { "stdin".to_owned() } else { file.display().to_string() };
    let answer = admin_request(server, Method::POST, &kv_path(name), body)
        .await
        .with_context(|| format!("cannot import {from} into {name}"))?
        .json()?;
    println!("imported {} keys into {name}", u64_of(&answer["imported_keys"]));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_keys_are_one_path_segment_each() {
        assert_eq!(key_path("notes", "default", "a/b c"), "/procedures/notes/kv/default/a%2Fb%20c");
        assert_eq!(key_path("notes", "b", ".."), "/procedures/notes/kv/b/%2E%2E");
        assert_eq!(key_path("notes", "ü", "?#%"), "/procedures/notes/kv/%C3%BC/%3F%23%25");
        assert_eq!(key_path("n", "x", "a-b_c~d"), "/procedures/n/kv/x/a-b_c~d");
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(shown("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(shown("naïve key/ü"), "naïve key/ü");
    }
}
