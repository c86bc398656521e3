//! Recovery of an arbitrary active segment: open must not panic, the recovered log must
//! be readable end to end, accept an append, and pass the offline check.
#![no_main]

use brook_log::{check_dir, Log, LogConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("00000000000000000000.log"), data).expect("write segment");
    let Ok(log) = Log::open(dir.path(), LogConfig::default(), 0) else { return };
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, None, true).expect("recovered log is readable");
        assert!(slice.len > 0, "a non-empty range reads at least one batch");
        offset = slice.next_offset_hint.max(offset + 1);
    }
    log.close().expect("close");
    let report = check_dir(dir.path()).expect("check");
    assert!(report.is_ok(), "recovered log fails the check: {:?}", report.problems);
});
