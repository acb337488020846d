//! The macros' compile errors, pinned: each misuse of `#[procedure]` and
//! `export!` in `tests/ui/*.rs` must fail to build with the message, and at
//! the place in the user's code, its `.stderr` file shows.
//!
//! After changing a message on purpose, rewrite the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p wasmrpc-guest --test ui` and read the
//! diff. trybuild builds the cases in its own directory under the target
//! directory; the first run compiles the SDK's dependencies there once.

#[test]
fn misuse_is_refused_at_the_users_code() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
