//! The wasmtime engine every call shares: its settings (bounds checks or
//! guard pages, epoch interruption), the pooling allocator sized from the
//! call limits, how a reused slot's memory is reset, and the thread that
//! advances the epoch.

use std::time::Duration;

use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::Config;

/// Instances kept beyond the call limit, for `describe` during deploys.
pub(super) const DEPLOY_SLOTS: u32 = 16;
/// Bytes of an instance's memory kept resident between calls in the pool:
/// resetting them with memset is cheaper than unmapping and faulting them in
/// again (the prototype measured 6.7 us against 22 us per instantiate + call).
const KEEP_RESIDENT_BYTES: usize = 1 << 20;
/// Table elements per table in the pool (Rust guests need a few hundred;
/// interpreters compiled to Wasm need more).
pub(super) const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Whether the pool resets memory through PAGEMAP_SCAN, given the flag and the
/// text of `/proc/swaps`.
///
/// The scan finds the dirty pages that are present in memory. A dirty page
/// that has been swapped out is neither reset nor decommitted (wasmtime PR
/// #14357), so the next instance in that slot could read the previous call's
/// data. Until a wasmtime release fixes that, active swap turns the scan off:
/// every kept-resident page is then cleared, which costs time, not safety.
pub(super) fn pagemap_scan(allowed: bool, proc_swaps: &str) -> Enabled {
    let swap_devices: Vec<&str> = proc_swaps.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    if !allowed {
        tracing::info!("memory reset by PAGEMAP_SCAN is off (--no-pagemap-scan)");
        Enabled::No
    } else if !swap_devices.is_empty() {
        tracing::warn!(
            swap = swap_devices.join(", "),
            "swap is active: memory reset by PAGEMAP_SCAN is off, since it would miss swapped-out \
             pages a call dirtied and leave them for the next call (wasmtime PR #14357)"
        );
        Enabled::No
    } else {
        Enabled::Auto
    }
}

/// Instances the pool must hold: every call slot with a full chain of
/// nested calls below it (a guest waits for its nested call, so a tree has
/// at most one instance per level at a time), twice over (a tree waiting on
/// storage lends its slot to another, at most one per slot:
/// `sandbox/slots.rs`), plus [`DEPLOY_SLOTS`].
pub(super) fn pool_instances(config: &Config) -> u32 {
    let per_slot = config.max_call_depth.saturating_add(1);
    u32::try_from(config.max_concurrent_calls)
        .unwrap_or(u32::MAX)
        .saturating_mul(2)
        .saturating_mul(per_slot)
        .min(u32::MAX / 8)
        .saturating_add(DEPLOY_SLOTS)
}

pub(super) fn engine_config(config: &Config, pool_instances: Option<u32>, pagemap: Enabled) -> wasmtime::Config {
    let mut cfg = wasmtime::Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    if !config.guard_pages {
        // Explicit bounds checks, no guard pages. With guard pages, wasmtime
        // must make a reused slot's memory inaccessible again past the
        // initial size at every instantiate, and accessible again when the
        // guest grows (Rust's allocator grows memory on every call that
        // allocates): two mprotect calls per call, each taking the process's
        // mmap lock for writing and flushing the TLB of every core with an
        // IPI. A profile of the server at 64 connections found them (with
        // the lock waits and IPIs) as the largest cost of a call outside the
        // call itself. Without guard pages a slot stays accessible up to the
        // largest size it reached, and compiled code checks each access
        // against the memory's current size instead (as safe: wasmtime's
        // supported mode for hosts without virtual memory tricks). Measured
        // (one binary, two servers, alternating): math.add at 64 connections
        // 14.5k -> 21.5k calls/s and 110 -> 73 us of CPU per call; the 10 KB
        // json.invoice call runs about 12% slower at 1 connection.
        cfg.signals_based_traps(false).memory_guard_size(0);
    }
    if let Some(n) = pool_instances {
        let mut pool = PoolingAllocationConfig::default();
        let memory_limit = usize::try_from(config.memory_limit_bytes).unwrap_or(usize::MAX);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(memory_limit)
            .table_elements(MAX_TABLE_ELEMENTS)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(pagemap);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
pub(super) fn start_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasmrpc-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!("cannot start the epoch thread: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_turns_the_pagemap_scan_off() {
        let none = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        let one = format!("{none}/swapfile                               file\t\t1048572\t\t0\t\t-2\n");
        assert!(matches!(pagemap_scan(true, none), Enabled::Auto));
        assert!(matches!(pagemap_scan(true, ""), Enabled::Auto));
        assert!(matches!(pagemap_scan(true, &one), Enabled::No));
        assert!(matches!(pagemap_scan(false, none), Enabled::No));
    }
}
