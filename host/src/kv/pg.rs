//! The key-value backend of a cluster: a table in the shared PostgreSQL
//! registry, so every replica reads what any other wrote.

use super::{BucketInfo, KvError, Page, Start, Write, Written};

/// The key-value table of the shared registry.
#[derive(Clone)]
pub struct PgKv {}

impl PgKv {
    pub(super) async fn get_many(&self, _p: &str, _b: &str, _keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        Err(KvError::Storage(anyhow::anyhow!("not yet")))
    }
    pub(super) async fn write(
        &self,
        _p: &str,
        _b: &str,
        _w: Vec<Write>,
        _quota: u64,
    ) -> Result<Vec<Result<Written, KvError>>, KvError> {
        Err(KvError::Storage(anyhow::anyhow!("not yet")))
    }
    pub(super) async fn list(
        &self,
        _p: &str,
        _b: &str,
        _prefix: &str,
        _start: &Start,
        _limit: usize,
        _values: bool,
    ) -> Result<Page, KvError> {
        Err(KvError::Storage(anyhow::anyhow!("not yet")))
    }
    pub(super) async fn buckets(&self, _p: &str) -> Result<Vec<BucketInfo>, KvError> {
        Err(KvError::Storage(anyhow::anyhow!("not yet")))
    }
    pub(super) async fn erase(&self, _p: &str) -> Result<u64, KvError> {
        Err(KvError::Storage(anyhow::anyhow!("not yet")))
    }
}
