//! `wasmrpc new NAME`: scaffolds a procedure crate that builds standalone
//! (its own `[workspace]`), depends on this source tree's guest SDK by path,
//! and says in its README how to build, deploy, call and develop it. The
//! files' text lives in `templates/`; this module fills in the names and
//! writes them, never over an existing file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::registry;

/// The guest SDK of the source tree this binary was built from.
const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// The files of a new crate: path inside the crate, template.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("templates/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("templates/lib.rs.tmpl")),
    ("README.md", include_str!("templates/README.md.tmpl")),
    (".gitignore", include_str!("templates/gitignore.tmpl")),
];

/// What [`create`] made.
#[derive(Debug)]
pub struct Created {
    /// The files written, relative to `dir`.
    pub files: Vec<&'static str>,
    /// The procedure name `wasmrpc dev` deploys it as (NAME with `-` as `_`).
    pub procedure: String,
    /// The guest SDK the crate depends on.
    pub sdk: PathBuf,
}

/// Writes a new procedure crate named `name` into `dir` (which must not
/// exist or be empty), depending on the guest SDK at `sdk` (this source
/// tree's when `None`).
pub fn create(name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<Created> {
    registry::check_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sdk = find_sdk(sdk)?;
    let sdk_text = sdk.to_str().with_context(|| format!("the SDK path {} is not valid UTF-8", sdk.display()))?;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{} already exists and is not empty; pick another NAME or --path", dir.display());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot use {}: {e}", dir.display()),
    }
    let procedure = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{crate_name}}", name)
            .replace("{{proc_name}}", &procedure)
            .replace("{{lib_name}}", &procedure)
            .replace("{{sdk_path}}", &toml_string(sdk_text))
    };
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("cannot create {}", dir.display()))?;
    for (path, template) in FILES {
        let target = dir.join(path);
        write_new(&target, &fill(template)).with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok(Created { files: FILES.iter().map(|(p, _)| *p).collect(), procedure, sdk })
}

/// The guest SDK directory: `explicit`, or the one beside this binary's
/// sources; canonical, and checked to hold a crate.
fn find_sdk(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (given, hint) = match explicit {
        Some(path) => (path, "check --sdk: it must be the guest-sdk directory of a wasmrpc checkout"),
        None => (
            Path::new(DEFAULT_SDK),
            "this wasmrpc was built from a source tree that is no longer there; pass --sdk PATH \
             with the guest-sdk directory of a wasmrpc checkout",
        ),
    };
    let sdk =
        given.canonicalize().with_context(|| format!("cannot find the guest SDK at {}: {hint}", given.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!("{} has no Cargo.toml: {hint}", sdk.display());
    }
    Ok(sdk)
}

/// `text` as a TOML basic string, quotes included.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Creates `path` with `contents`; fails if it exists.
fn write_new(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("/a/b"), r#""/a/b""#);
        assert_eq!(toml_string(r#"C:\x "y""#), r#""C:\\x \"y\"""#);
        assert_eq!(toml_string("a\nb"), r#""a\u000Ab""#);
    }

    #[test]
    fn templates_have_no_unfilled_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let created = create("my-proc", &dir.path().join("p"), None).unwrap();
        assert_eq!(created.procedure, "my_proc");
        for (path, _) in FILES {
            let text = std::fs::read_to_string(dir.path().join("p").join(path)).unwrap();
            assert!(!text.contains("{{"), "{path}: {text}");
        }
        let manifest = std::fs::read_to_string(dir.path().join("p/Cargo.toml")).unwrap();
        assert!(manifest.contains(r#"name = "my-proc""#), "{manifest}");
        assert!(manifest.contains(&toml_string(created.sdk.to_str().unwrap())), "{manifest}");
    }
}
