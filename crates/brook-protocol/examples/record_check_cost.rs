//! What checking a batch's records costs next to the CRC check every batch already
//! gets: `cargo run --release -p brook-protocol --example record_check_cost`.

use std::time::Instant;

use brook_protocol::batch::{verify_crc, BatchHeader, Compression};
use brook_protocol::record_check::{check_records, RecordRules};
use brook_protocol::records::{encode_batch, Record};
use bytes::Bytes;

fn per_batch_ns(mut f: impl FnMut(), bytes: usize) -> (f64, f64) {
    let iterations = (200_000_000 / bytes.max(1)).clamp(20, 200_000);
    f();
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
    (ns, bytes as f64 / ns) // GB/s of batch bytes
}

fn main() {
    let rules = RecordRules {
        require_keys: false,
        max_decompressed_bytes: 64 << 20,
    };
    println!("records x size   codec    batch bytes   crc ns (GB/s)      records ns (GB/s)");
    for (count, size) in [(100, 100), (100, 1024), (1000, 100), (16, 65536)] {
        for codec in [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Gzip,
        ] {
            let records: Vec<Record> = (0..count)
                .map(|i| Record {
                    key: Some(Bytes::from(format!("key-{i}"))),
                    value: Some(Bytes::from(
                        (0..size)
                            .map(|j| (i * 7 + j) as u8 % 61 + 48)
                            .collect::<Vec<u8>>(),
                    )),
                    headers: vec![],
                    timestamp_ms: 1_700_000_000_000 + i as i64,
                })
                .collect();
            let batch = encode_batch(&records, codec).unwrap().freeze();
            let header = BatchHeader::parse(&batch).unwrap();
            let (crc_ns, crc_rate) = per_batch_ns(|| verify_crc(&batch).unwrap(), batch.len());
            let (rec_ns, rec_rate) = per_batch_ns(
                || check_records(&batch, &header, &rules).unwrap(),
                batch.len(),
            );
            let (dec_ns, _) = per_batch_ns(
                || {
                    brook_protocol::compression::decompress(codec, &batch[61..]).unwrap();
                },
                batch.len(),
            );
            println!(
                "{count:>5} x {size:<6} {codec:<8?} {:>11}   {crc_ns:>9.0} ({crc_rate:>5.2})   {rec_ns:>11.0} ({rec_rate:>5.2})  decompress alone {dec_ns:>9.0}",
                batch.len()
            );
        }
    }
}
