//! Runs the Python binding tests in tests/bindings/ against the real cdylib.
uniffi::build_foreign_language_testcases!("tests/bindings/test_bottle.py");
