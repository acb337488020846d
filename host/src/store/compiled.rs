//! Compiled code by module hash and engine compatibility key, in the data
//! dir whatever the store: each machine compiles for its own engine, and a
//! restart or a rollback loads code instead of compiling it again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::files::{create_and_clear, retain, write_atomic};

/// The compiled-code cache (`DATA_DIR/compiled`).
pub struct CompiledCache {
    dir: PathBuf,
    compatibility_key: String,
}

impl CompiledCache {
    /// Opens (creating) `DATA_DIR/compiled` and clears what an interrupted write left.
    pub fn open(data_dir: &Path, compatibility_key: String) -> anyhow::Result<Self> {
        let dir = data_dir.join("compiled");
        create_and_clear(&dir)?;
        Ok(CompiledCache { dir, compatibility_key })
    }

    /// Where the compiled form of module `sha256` lives for this engine.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.compatibility_key))
    }

    pub fn save(&self, sha256: &str, code: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.path(sha256), code)
    }

    /// Removes compiled code of modules not in `in_use`, and code compiled
    /// by another engine.
    pub fn retain(&self, in_use: &HashSet<String>) {
        let suffix = format!("-{}", self.compatibility_key);
        retain(&self.dir, |stem| stem.strip_suffix(&suffix).is_some_and(|sha| in_use.contains(sha)));
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::files::file_names as files;
    use super::*;

    #[test]
    fn the_compiled_cache_keeps_code_in_use_for_this_engine_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::open(dir.path(), "k1".into()).unwrap();
        for sha in ["aa", "bb"] {
            cache.save(sha, b"code").unwrap();
        }
        let compiled = dir.path().join("compiled");
        fs::write(compiled.join("aa-k0.cwasm"), b"old engine").unwrap();
        fs::write(compiled.join(".tmp-7-0-cc-k1.cwasm"), b"being written").unwrap();
        cache.retain(&HashSet::from(["aa".to_owned()]));
        assert_eq!(files(&compiled), [".tmp-7-0-cc-k1.cwasm", "aa-k1.cwasm"]);
        assert_eq!(cache.path("aa"), compiled.join("aa-k1.cwasm"));
    }
}
