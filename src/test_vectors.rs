//! Where the shared test vectors are, for the tests that read them (unit tests here, and
//! the integration tests, which include this file as `common::vectors`).
//!
//! The vectors live beside the checkout, in `../shared/vectors`; `BONDED_VECTORS` names
//! another place. Without them a test that needs them says
//! `skipped: ../shared/vectors not found` and passes, so a user's fresh clone is green;
//! with `BONDED_REQUIRE_VECTORS=1` (CI sets it) their absence fails the test instead, so CI
//! never skips silently.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What a test prints when it skips.
pub const SKIPPED: &str = "skipped: ../shared/vectors not found";

/// Where the vectors are expected.
pub fn expected_dir() -> PathBuf {
    match std::env::var_os("BONDED_VECTORS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors"),
    }
}

/// Whether the vectors must be present (CI).
pub fn required() -> bool {
    std::env::var("BONDED_REQUIRE_VECTORS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The decision, apart from the environment: `Ok(Some(dir))` to run, `Ok(None)` to skip,
/// `Err` to fail.
pub fn locate(dir: &Path, required: bool) -> Result<Option<PathBuf>, String> {
    if dir.is_dir() {
        Ok(Some(dir.to_path_buf()))
    } else if required {
        Err(format!(
            "the test vectors are required (BONDED_REQUIRE_VECTORS is set) but {} is not a directory",
            dir.display()
        ))
    } else {
        Ok(None)
    }
}

/// The vectors' directory, or `None` after saying the test is skipped. Panics when they
/// are required and missing. Call it first in every test that reads them:
/// `let Some(v) = vectors::dir() else { return };`
pub fn dir() -> Option<PathBuf> {
    let dir = expected_dir();
    match locate(&dir, required()) {
        Ok(Some(d)) => Some(d),
        Ok(None) => {
            // Straight to the process's stderr, past the test harness's capture, so the skip
            // is visible in a plain `cargo test`.
            let test = std::thread::current().name().unwrap_or("test").to_string();
            let _ = writeln!(
                std::io::stderr(),
                "{test}: {SKIPPED} (looked in {})",
                dir.display()
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// The vectors' directory for helpers of a test that already called [`dir`].
pub fn path() -> PathBuf {
    let dir = expected_dir();
    assert!(
        dir.is_dir(),
        "{} is missing: the test must start with `vectors::dir()`",
        dir.display()
    );
    dir
}
