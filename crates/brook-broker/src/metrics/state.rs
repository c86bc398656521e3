//! Gauges computed at scrape time from the services' own state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;

use crate::groups::Groups;
use crate::metadata::MetadataView;
use crate::replicas::Replicas;
use crate::shares::Shares;

/// Gauges read from the broker's state at each scrape.
pub(super) struct StateCollector {
    pub(super) replicas: Arc<Replicas>,
    pub(super) groups: Arc<Groups>,
    pub(super) shares: Arc<Shares>,
    pub(super) metadata: MetadataView,
    pub(super) per_partition: bool,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector")
            .field("per_partition", &self.per_partition)
            .finish_non_exhaustive()
    }
}

/// One partition replica's figures.
struct PartitionFigures {
    topic: Arc<str>,
    index: i32,
    size_bytes: u64,
    log_start: i64,
    log_end: i64,
    high_watermark: i64,
}

/// A gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A gauge family written straight to the encoder: `rows` are (labels, value).
fn gauge_family<L: EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let node_id = self.metadata.node_id();
        let image = self.metadata.image();
        let cluster = self.metadata.is_cluster();
        // Leadership from the applied image (a single broker leads everything it has).
        let (mut leaders, mut under_replicated, mut offline) = (0i64, 0i64, 0i64);
        for topic in image.topics.values() {
            for p in &topic.partitions {
                let leads = !cluster || p.leader == node_id;
                if p.leader < 0 {
                    offline += 1;
                }
                if leads {
                    leaders += 1;
                    if p.isr.len() < p.replicas.len() {
                        under_replicated += 1;
                    }
                }
            }
        }
        gauge(
            &mut encoder,
            "brook_active_controller",
            "1 if this broker is the active controller (Kafka's ActiveControllerCount)",
            i64::from(self.metadata.controller_id() == node_id),
        )?;
        gauge(
            &mut encoder,
            "brook_leader_partitions",
            "Partitions this broker leads (Kafka's LeaderCount)",
            leaders,
        )?;
        gauge(
            &mut encoder,
            "brook_under_replicated_partitions",
            "Partitions led here whose ISR is smaller than their replica set",
            under_replicated,
        )?;
        gauge(
            &mut encoder,
            "brook_offline_partitions",
            "Partitions without a leader, cluster-wide as this broker's metadata shows",
            offline,
        )?;

        let mut partitions: Vec<PartitionFigures> = self
            .replicas
            .all()
            .into_iter()
            .map(|p| {
                let (size_bytes, log_start, log_end) = p.with_log(|log| {
                    (
                        log.size_bytes(),
                        log.log_start_offset(),
                        log.log_end_offset(),
                    )
                });
                PartitionFigures {
                    topic: p.topic.clone(),
                    index: p.index,
                    size_bytes,
                    log_start,
                    log_end,
                    high_watermark: p.offsets().1,
                }
            })
            .collect();
        partitions.sort_unstable_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
        gauge(
            &mut encoder,
            "brook_partitions",
            "Partition replicas on this broker (Kafka's PartitionCount)",
            partitions.len() as i64,
        )?;
        if self.per_partition {
            let labels = |p: &PartitionFigures| {
                [
                    ("topic", p.topic.to_string()),
                    ("partition", p.index.to_string()),
                ]
            };
            gauge_family(
                &mut encoder,
                "brook_partition_log_size_bytes",
                "Bytes of the partition's log segments",
                partitions.iter().map(|p| (labels(p), p.size_bytes)),
            )?;
            gauge_family(
                &mut encoder,
                "brook_partition_log_start_offset",
                "The partition's log start offset",
                partitions.iter().map(|p| (labels(p), p.log_start)),
            )?;
            gauge_family(
                &mut encoder,
                "brook_partition_log_end_offset",
                "The partition's log end offset",
                partitions.iter().map(|p| (labels(p), p.log_end)),
            )?;
            gauge_family(
                &mut encoder,
                "brook_partition_high_watermark",
                "The partition's high watermark",
                partitions.iter().map(|p| (labels(p), p.high_watermark)),
            )?;
        }
        self.encode_groups(&mut encoder, &partitions)?;
        self.encode_share_groups(&mut encoder, &image)
    }
}

/// One committed offset of a group.
struct Committed {
    group: String,
    topic: String,
    partition: i32,
    offset: i64,
}

impl StateCollector {
    /// Committed offsets and lag (high watermark − committed offset) of the groups this
    /// broker coordinates, where it holds the partition.
    fn encode_groups(
        &self,
        encoder: &mut DescriptorEncoder,
        partitions: &[PartitionFigures],
    ) -> Result<(), std::fmt::Error> {
        // Copied out first: the group lock is never held while reading partitions.
        let mut members = Vec::new();
        let mut committed = Vec::new();
        self.groups.read(|state| {
            state.coordinator.visit_groups(|g| {
                members.push((g.group_id.to_string(), g.members, g.state.name()));
                committed.extend(g.committed().map(|(topic, partition, offset)| Committed {
                    group: g.group_id.to_string(),
                    topic: topic.to_string(),
                    partition,
                    offset,
                }));
            })
        });
        let high_watermarks: HashMap<(&str, i32), i64> = partitions
            .iter()
            .map(|p| ((&*p.topic, p.index), p.high_watermark))
            .collect();
        let lag = |c: &Committed| {
            high_watermarks
                .get(&(c.topic.as_str(), c.partition))
                .filter(|_| c.offset >= 0)
                .map(|hw| (hw - c.offset).max(0))
        };
        gauge_family(
            encoder,
            "brook_group_members",
            "Members of a consumer group coordinated here",
            members
                .iter()
                .map(|(g, n, _)| ([("group", g.as_str())], *n as i64)),
        )?;
        gauge_family(
            encoder,
            "brook_group_state",
            "1 for a consumer group's current state (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead)",
            members
                .iter()
                .map(|(g, _, state)| ([("group", g.as_str()), ("state", *state)], 1i64)),
        )?;
        let mut topic_lag: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for c in &committed {
            if let Some(l) = lag(c) {
                *topic_lag.entry((&c.group, &c.topic)).or_default() += l;
            }
        }
        gauge_family(
            encoder,
            "brook_group_topic_lag",
            "Sum over the topic's partitions of a group's lag",
            topic_lag
                .iter()
                .map(|((g, t), l)| ([("group", *g), ("topic", *t)], *l)),
        )?;
        if self.per_partition {
            let labels = |c: &Committed| {
                [
                    ("group", c.group.clone()),
                    ("topic", c.topic.clone()),
                    ("partition", c.partition.to_string()),
                ]
            };
            gauge_family(
                encoder,
                "brook_group_committed_offset",
                "A group's committed offset in a partition",
                committed.iter().map(|c| (labels(c), c.offset)),
            )?;
            gauge_family(
                encoder,
                "brook_group_lag",
                "High watermark minus the group's committed offset",
                committed
                    .iter()
                    .filter_map(|c| lag(c).map(|l| (labels(c), l))),
            )?;
        }
        Ok(())
    }

    /// Share groups coordinated here (count by state, members), and the records of the
    /// share-partitions this broker leads (acquired, in flight) summed per group and
    /// topic.
    fn encode_share_groups(
        &self,
        encoder: &mut DescriptorEncoder,
        image: &brook_meta::MetadataImage,
    ) -> Result<(), std::fmt::Error> {
        let mut by_state: BTreeMap<&'static str, i64> =
            [("Empty", 0), ("Stable", 0)].into_iter().collect();
        let mut members = Vec::new();
        self.groups.read(|state| {
            state
                .coordinator
                .visit_share_groups(|group, group_state, count| {
                    *by_state.entry(group_state.name()).or_default() += 1;
                    members.push((group.to_owned(), count as i64));
                })
        });
        gauge_family(
            encoder,
            "brook_share_groups",
            "Share groups coordinated here, by state",
            by_state.iter().map(|(s, n)| ([("state", *s)], *n)),
        )?;
        gauge_family(
            encoder,
            "brook_share_group_members",
            "Members of a share group coordinated here",
            members.iter().map(|(g, n)| ([("group", g.as_str())], *n)),
        )?;
        let mut records: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        for (group, topic, _, acquired, in_flight) in self.shares.figures() {
            let Some(name) = image.topic_by_id(&topic).map(|t| t.name.clone()) else {
                continue;
            };
            let e = records.entry((group, name)).or_default();
            e.0 += acquired as i64;
            e.1 += in_flight as i64;
        }
        let labels = |(g, t): &(String, String)| [("group", g.clone()), ("topic", t.clone())];
        gauge_family(
            encoder,
            "brook_share_group_acquired_records",
            "Records of the topic's share-partitions led here that a member of the share group holds under an acquisition lock",
            records.iter().map(|(k, v)| (labels(k), v.0)),
        )?;
        gauge_family(
            encoder,
            "brook_share_group_in_flight_records",
            "Records of the topic's share-partitions led here past the start offset and not yet acknowledged or archived",
            records.iter().map(|(k, v)| (labels(k), v.1)),
        )
    }
}
