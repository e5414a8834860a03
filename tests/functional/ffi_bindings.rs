//! Runs the Python binding tests in ffi_bindings/ beside this file against the real cdylib.
uniffi::build_foreign_language_testcases!("../tests/functional/ffi_bindings/test_bottle.py");
