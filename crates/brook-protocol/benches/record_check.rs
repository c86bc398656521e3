//! What checking a produced batch's records costs the broker, per codec: the walk
//! Kafka's broker also does before it appends (`cargo bench -p brook-protocol`).
//!
//! Prints MB/s of batch bytes as the client sent them and of records once inflated,
//! for a 1 MiB batch of 1 KiB records and a 64 KiB batch of 100-byte ones.

use std::hint::black_box;
use std::time::{Duration, Instant};

use brook_protocol::batch::{BatchHeader, Compression};
use brook_protocol::record_check::{check_records, RecordRules};
use brook_protocol::records::{encode_batch, Record};
use bytes::Bytes;

const RULES: RecordRules = RecordRules {
    require_keys: false,
    max_decompressed_bytes: 64 << 20,
};

fn records(count: usize, size: usize) -> Vec<Record> {
    (0..count)
        .map(|i| Record {
            key: Some(Bytes::from(format!("key-{i}"))),
            // Compressible like real payloads: a few distinct words.
            value: Some(Bytes::from(
                (0..size)
                    .map(|j| b"abcdefgh"[(i + j / 7) % 8])
                    .collect::<Vec<u8>>(),
            )),
            headers: Vec::new(),
            timestamp_ms: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    println!(
        "{:<28} {:>12} {:>14} {:>10}",
        "case", "wire MB/s", "inflated MB/s", "µs/batch"
    );
    for (label, count, size) in [("1 KiB x 1024", 1024, 1024), ("100 B x 640", 640, 100)] {
        let recs = records(count, size);
        let inflated: usize = count * (size + 16);
        for codec in [
            Compression::None,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Gzip,
        ] {
            let name = format!("{label} {codec:?}");
            if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            let batch = encode_batch(&recs, codec).expect("encodes");
            let header = BatchHeader::parse(&batch).expect("parses");
            let mut runs = 0u32;
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(700) {
                check_records(black_box(&batch), &header, &RULES).expect("valid");
                runs += 1;
            }
            let per = start.elapsed() / runs;
            let mbps = |bytes: usize| bytes as f64 / per.as_secs_f64() / 1e6;
            println!(
                "{name:<28} {:>12.0} {:>14.0} {:>10.1}",
                mbps(batch.len()),
                mbps(inflated),
                per.as_secs_f64() * 1e6
            );
        }
    }
}
