//! trybuild cases for the `nursery` macros and for the borrows of local
//! children (`local_*`): `ui/pass` cases compile and
//! run; `ui/fail` cases fail to compile with the error in their `.stderr`.
//!
//! Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p nursery-ui-tests`, then read each one:
//! it is what a user will see.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
