//! Everything about Kafka bytes on the wire, nothing about sockets.
//!
//! - [`frame`]: the 4-byte length prefix and its size limit.
//! - [`request`]: peeking the API key and version before decoding, decoding the header
//!   and body with `kafka-protocol`, encoding responses.
//! - [`batch`]: a zero-copy view of a v2 record batch: header fields, CRC-32C check,
//!   stamping base offset and leader epoch in place.
//! - [`records`]: building and reading record batches for Brook's own client tools.
//! - [`record_check`]: walking the records of a batch to check them against its header.
//! - [`consumer_protocol`]: the subscription and assignment a classic consumer group
//!   carries inside JoinGroup and SyncGroup.

pub mod batch;
pub mod compact;
pub mod compression;
pub mod consumer_protocol;
pub mod frame;
pub mod record_check;
pub mod records;
pub mod request;

pub use kafka_protocol;
