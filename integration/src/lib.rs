//! Helpers shared by the namespace tests in `tests/`.
