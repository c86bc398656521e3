//! The record batch view the produce path trusts: iterate, parse, verify CRC, stamp,
//! and decode records (with bounded decompression) as the client tools do.
#![no_main]

use brook_protocol::batch::{self, BatchIter};
use brook_protocol::records::decode_batches;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut owned = data.to_vec();
    let ranges: Vec<_> = BatchIter::new(data).map_while(Result::ok).map(|(_, r)| r).collect();
    for r in ranges {
        // Transaction markers are read from control batches at recovery.
        let _ = batch::control_type(&data[r.clone()]);
        let one = &mut owned[r];
        if batch::verify_crc(one).is_ok() {
            batch::stamp(one, 42, 1);
            assert!(batch::verify_crc(one).is_ok(), "stamping must not break the CRC");
        }
    }
    let _ = decode_batches(Bytes::copy_from_slice(data));
});
