//! A frame as the broker reads it: size check, header peek, full decode.
//! Must never panic, abort or allocate more than the frame justifies.
#![no_main]

use brook_protocol::frame::{frame_len, DEFAULT_MAX_REQUEST_SIZE_BYTES};
use brook_protocol::request::{decode_request, peek_header};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = frame_len([data[0], data[1], data[2], data[3]], DEFAULT_MAX_REQUEST_SIZE_BYTES);
    }
    if peek_header(data).is_ok() {
        let _ = decode_request(Bytes::copy_from_slice(data));
    }
});
