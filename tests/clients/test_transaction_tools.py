"""Apache Kafka's `kafka-transactions` tool (TransactionsCommand, from the kafka-tools
jars that `scripts/kafka-jars.sh` fetches) against one broker: `list` and `describe`
(ListTransactions / DescribeTransactions on the coordinator), `describe-producers`
(DescribeProducers on the partition leader) and `abort` (WriteTxnMarkers), which ends a
hanging transaction so `read_committed` consumers move past it (KIP-664)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from kafka_helpers import create_topic, unique_topic
from test_cluster_tools import kafka_tool

TOOL = "org.apache.kafka.tools.TransactionsCommand"


def rows(output: str) -> list[list[str]]:
    """The tool's tab-separated table, header first, cells stripped."""
    lines = [line for line in output.splitlines() if "\t" in line]
    return [[cell.strip() for cell in line.split("\t") if cell.strip()] for line in lines]


def stable_offset(bootstrap: str, topic: str) -> int:
    """ListOffsets latest with isolation read_committed: the last stable offset."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lso-probe",
                  "isolation.level": "read_committed"})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return high
    finally:
        c.close()


def test_kafka_transactions_tool_lists_describes_and_aborts(brook):
    bs = brook.bootstrap
    topic = unique_topic("hang")
    create_topic(bs, topic, partitions=1)
    producer = Producer({"bootstrap.servers": bs, "transactional.id": "tool-hanger",
                         "transaction.timeout.ms": 600_000})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"open-{i}".encode())
    producer.flush(30)
    plain = Producer({"bootstrap.servers": bs})
    plain.produce(topic, value=b"after")
    plain.flush(30)
    assert stable_offset(bs, topic) == 0, "the open transaction holds the stable offset"

    common = ["--bootstrap-server", bs]
    listed = rows(kafka_tool(TOOL, *common, "list"))
    assert ["tool-hanger", "1"] == listed[1][:2] and "Ongoing" in listed[1], listed

    described = rows(kafka_tool(TOOL, *common, "describe", "--transactional-id", "tool-hanger"))
    header, row = described[0], described[1]
    state = dict(zip(header, row))
    assert state["TransactionState"] == "Ongoing", state
    assert state["TopicPartitions"] == f"{topic}-0", state
    assert state["TransactionTimeoutMs"] == "600000", state

    producers = rows(kafka_tool(TOOL, *common, "describe-producers", "--topic", topic,
                                "--partition", "0"))
    by_column = [dict(zip(producers[0], r)) for r in producers[1:]]
    open_txns = [p for p in by_column if p["CurrentTransactionStartOffset"] != "None"]
    assert [p["CurrentTransactionStartOffset"] for p in open_txns] == ["0"], by_column

    # The operator's way out of a hanging transaction: abort it at the partition.
    kafka_tool(TOOL, *common, "abort", "--topic", topic, "--partition", "0",
               "--start-offset", "0")
    deadline = time.time() + 10
    while stable_offset(bs, topic) == 0 and time.time() < deadline:
        time.sleep(0.2)
    # 3 open records, 1 plain one, 1 abort marker.
    assert stable_offset(bs, topic) == 5
    producers = rows(kafka_tool(TOOL, *common, "describe-producers", "--topic", topic,
                                "--partition", "0"))
    assert all(dict(zip(producers[0], r))["CurrentTransactionStartOffset"] == "None"
               for r in producers[1:]), producers

    consumer = Consumer({"bootstrap.servers": bs, "group.id": "after-abort",
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = []
    deadline = time.time() + 15
    while time.time() < deadline and not seen:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            seen.append(msg.value())
    consumer.close()
    assert seen == [b"after"], "read_committed skips the aborted records"
