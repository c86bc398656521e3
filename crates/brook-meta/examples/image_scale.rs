//! How the cost of one metadata change grows with the number of topics.
//!
//! Every change produces a new `MetadataImage` (the Raft state machine clones its image
//! per applied batch, the file store hands the broker a fresh `Arc` per append), so the
//! clone must not cost O(topics). This builds images of 1 and 12,000 single-partition
//! topics and times, as medians over many runs:
//! - `clone`: cloning the image;
//! - `raft batch`: clone, apply one `TopicCreated` plus one `PartitionChanged`, drop;
//! - `file append`: `FileMetadataLog::append` (in memory) of the same two records plus
//!   taking the new image as an `Arc`, as the broker's file store does after every
//!   change, while the previous image is still held.
//!
//! Run: `cargo run --release -p brook-meta --example image_scale`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_meta::{FileMetadataLog, MetadataImage, MetadataRecord};

const RUNS: usize = 301;

fn created(n: usize) -> Vec<MetadataRecord> {
    let name = format!("topic-{n:06}");
    vec![
        MetadataRecord::TopicCreated {
            name: name.clone(),
            topic_id: uuid::Uuid::new_v4(),
            partitions: 1,
            replication_factor: 3,
            configs: BTreeMap::from([("retention.ms".to_string(), "86400000".to_string())]),
            internal: false,
            assignment: vec![vec![1, 2, 3]],
        },
        MetadataRecord::PartitionChanged {
            topic: name,
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1, 2],
            replicas: None,
        },
    ]
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn time(mut f: impl FnMut(usize)) -> Duration {
    median(
        (0..RUNS)
            .map(|i| {
                let start = Instant::now();
                f(i);
                start.elapsed()
            })
            .collect(),
    )
}

fn measure(topics: usize) {
    let mut log = FileMetadataLog::in_memory(1);
    for n in 0..topics {
        log.append(&created(n)).unwrap();
    }
    let base = log.image().clone();
    let batches: Vec<_> = (0..RUNS).map(|i| created(topics + i)).collect();

    let clone = time(|_| drop(black_box(base.clone())));
    let raft = time(|i| {
        let mut image: MetadataImage = base.clone();
        for r in &batches[i] {
            image.apply(r);
        }
        black_box(&image);
    });
    let mut held: Arc<MetadataImage> = log.image_arc();
    black_box(&held);
    let mut file = Vec::with_capacity(RUNS);
    for batch in &batches {
        let start = Instant::now();
        log.append(batch).unwrap();
        held = log.image_arc();
        file.push(start.elapsed());
        black_box(&held);
        // Untimed: keep the topic count where it was.
        let MetadataRecord::TopicCreated { name, .. } = &batch[0] else {
            unreachable!()
        };
        log.append(&[MetadataRecord::TopicDeleted { name: name.clone() }])
            .unwrap();
        held = log.image_arc();
        black_box(&held);
    }
    let file = median(file);
    println!(
        "{topics:>6} topics: clone {:>9.1?}  raft batch {:>9.1?}  file append {:>9.1?}",
        clone, raft, file
    );
}

fn main() {
    for topics in [1, 12_000] {
        measure(topics);
    }
}
