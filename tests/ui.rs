//! Compile-time errors are part of the product: every mistake a user can make with
//! `#[event]` / `#[listen]` and the typed API has a case here, with the exact message the
//! compiler shows (`tests/ui/*.stderr`). Regenerate with `TRYBUILD=overwrite` and read every
//! changed `.stderr` before accepting it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
