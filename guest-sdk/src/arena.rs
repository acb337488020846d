//! The guest's global allocator: a bump arena for a call's first
//! allocations, std's allocator (dlmalloc) past it.
//!
//! Every call runs in a fresh instance that is thrown away afterwards, and the
//! server clears each memory page the call wrote before the next instance
//! uses its slot. What a call costs therefore grows with the pages it
//! touches. std's allocator touches at least four on the first allocation:
//! its own state, the `memory.grow` it asks for at once, the header of the
//! new segment and the fence post at the segment's far end. Most calls
//! allocate a few hundred bytes.
//!
//! So the first [`ARENA_BYTES`] of allocations come from a static buffer.
//! It is zero-initialised memory inside the module's initial memory, so no
//! `memory.grow` is needed and an untouched page costs nothing. The arena
//! bumps a pointer. Freeing or growing the most recent block works in
//! place, which covers the usual alloc/free and `Vec`-push patterns. Any
//! other freed block stays used until the instance is dropped at the end of
//! the call, so the arena wastes at most its own size. A request that does
//! not fit goes to std's allocator, which then serves as usual.
//!
//! An instance deployed with reuse (`?reuse=N`) serves several calls: its
//! arena fills once (at most its 64 KiB stay used for the instance's life)
//! and std's allocator serves the calls after, freeing as usual.
//!
//! Installed as the `#[global_allocator]` by the default feature `arena`
//! (turn it off to use your own allocator). Only for single-threaded Wasm:
//! the arena's state is unsynchronised.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// The arena's size: 64 KiB, one Wasm page. It covers the parse of a few
/// KB of JSON params with the result. Larger calls spill over to std's
/// allocator after touching at most this much.
pub(crate) const ARENA_BYTES: usize = 64 << 10;

/// The global allocator (see the module's documentation).
pub(crate) struct Arena {
    bytes: UnsafeCell<Aligned>,
    /// Offset of the first free byte in `bytes`.
    next: UnsafeCell<usize>,
}

#[repr(C, align(16))]
struct Aligned([u8; ARENA_BYTES]);

// SAFETY: only compiled for Wasm without the `atomics` feature, where there
// is exactly one thread: nothing can reach the cells concurrently.
unsafe impl Sync for Arena {}

impl Arena {
    /// An empty arena, in zero-initialised static memory.
    pub(crate) const fn new() -> Arena {
        Arena { bytes: UnsafeCell::new(Aligned([0; ARENA_BYTES])), next: UnsafeCell::new(0) }
    }

    fn base(&self) -> usize {
        self.bytes.get() as usize
    }

    /// The offset of `ptr` in the arena, if it is in it.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize).checked_sub(self.base()).filter(|&offset| offset < ARENA_BYTES)
    }

    /// A block of `layout` from the arena, if it fits.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        // SAFETY: one thread (see `Sync`), and no reference to `next`
        // outlives this function.
        let next = unsafe { &mut *self.next.get() };
        let start = (self.base() + *next).next_multiple_of(layout.align()) - self.base();
        let end = start.checked_add(layout.size()).filter(|&end| end <= ARENA_BYTES)?;
        *next = end;
        // `start` is within the arena, so the pointer keeps its provenance.
        Some(self.bytes.get().cast::<u8>().wrapping_add(start))
    }
}

impl Default for Arena {
    fn default() -> Arena {
        Arena::new()
    }
}

// SAFETY: a block from `bump` lies inside the arena, aligned as asked and
// never handed out twice while in use: `next` only moves back over the most
// recent block when that block is freed or resized. Every other block is
// System's, and goes back to System.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: the caller's guarantees for `layout` hold for System.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => {
                // A freed and reused block is not zero any more.
                // SAFETY: `bump` gave `layout.size()` bytes at `ptr`.
                unsafe { ptr.write_bytes(0, layout.size()) };
                ptr
            }
            // SAFETY: as in `alloc`; fresh System memory is zeroed cheaply.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            Some(offset) => {
                // SAFETY: one thread (see `Sync`).
                let next = unsafe { &mut *self.next.get() };
                if offset + layout.size() == *next {
                    *next = offset;
                }
            }
            // SAFETY: not in the arena, so System allocated it with `layout`.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(offset) = self.offset(ptr) else {
            // SAFETY: not in the arena, so System allocated it with `layout`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        {
            // SAFETY: one thread (see `Sync`); the borrow ends before `alloc`.
            let next = unsafe { &mut *self.next.get() };
            if offset + layout.size() == *next && offset + new_size <= ARENA_BYTES {
                // The most recent block grows or shrinks in place.
                *next = offset + new_size;
                return ptr;
            }
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (it is larger than the old).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for `layout.size()` bytes and
            // distinct (the old one is still allocated).
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("a valid layout")
    }

    #[test]
    fn bumps_reuses_the_last_block_and_spills_over() {
        let arena = Box::new(Arena::new());
        unsafe {
            let a = arena.alloc(layout(10, 1));
            let b = arena.alloc(layout(8, 8));
            assert_eq!(b as usize % 8, 0);
            assert!(b as usize >= a as usize + 10);
            // The last block grows in place; an earlier one moves.
            assert_eq!(arena.realloc(b, layout(8, 8), 100), b);
            a.write_bytes(7, 10);
            let a2 = arena.realloc(a, layout(10, 1), 20);
            assert_ne!(a2, a);
            assert_eq!(*a2.add(9), 7);
            // Freeing the last block gives its bytes back.
            let c = arena.alloc(layout(16, 1));
            arena.dealloc(c, layout(16, 1));
            assert_eq!(arena.alloc(layout(16, 1)), c);
            // Zeroed memory is zero even where a block was freed.
            c.write_bytes(9, 16);
            arena.dealloc(c, layout(16, 1));
            let z = arena.alloc_zeroed(layout(16, 1));
            assert_eq!(std::slice::from_raw_parts(z, 16), &[0; 16]);
            // What does not fit comes from System, and goes back there.
            let big = arena.alloc(layout(ARENA_BYTES, 1));
            assert!(arena.offset(big).is_none());
            let big = arena.realloc(big, layout(ARENA_BYTES, 1), 2 * ARENA_BYTES);
            arena.dealloc(big, layout(2 * ARENA_BYTES, 1));
            // A block that no longer fits in place moves out of the arena.
            let last = arena.alloc(layout(64, 1));
            last.write_bytes(3, 64);
            let moved = arena.realloc(last, layout(64, 1), ARENA_BYTES);
            assert!(arena.offset(moved).is_none());
            assert_eq!(*moved.add(63), 3);
            arena.dealloc(moved, layout(ARENA_BYTES, 1));
        }
    }
}
