//! Compile errors of `#[kumi::service]`, as a user sees them: each `tests/ui/*.rs` must fail to
//! compile with exactly the `.stderr` next to it. After a deliberate change of a message, run
//! `TRYBUILD=overwrite cargo test -p kumi-macros --test ui` and review the new `.stderr` files.

#[test]
fn compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
