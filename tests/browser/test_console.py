"""The web console in a real headless chromium: the overview renders the cluster, a
topic created through the UI is what Kafka's AdminClient sees, records a real
producer wrote show in the message browser (and a live tail picks up new ones), and a
consumer group's lag shows with its chart.

Run: python3 -m pytest -q tests/browser   (README, "Admin API and console").
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Consumer, TopicPartition

from kafka_helpers import (
    assert_all_delivered,
    create_topic,
    partition_count,
    produce_all,
    producer,
    topic_names,
    unique_topic,
    wait_until,
)

pytestmark = pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0})


@pytest.fixture
def page(browser, brook_module):
    p = browser.new_page(brook_module.admin_url + "/")
    yield p
    p.close()


def rows(page, selector: str) -> int:
    return page.eval(f"document.querySelectorAll({json.dumps(selector)}).length")


def test_overview_shows_the_cluster(page, brook_module, screenshots):
    page.wait_for("document.querySelector('#overview')", what="the overview")
    assert page.wait_for("document.querySelector('[data-test=broker-count]')?.innerText") == "1"
    assert page.text("[data-test=controller]") == "broker 1"
    assert str(brook_module.port) in page.text("[data-test=broker-row]")
    assert page.text("[data-test=under-replicated]") == "0"
    # The throughput chart fills in from client-side samples of /api/v1/stats.
    page.wait_for("document.querySelector('#throughput svg')", timeout=10, what="throughput chart")
    page.screenshot(screenshots / "overview.png")


def test_a_topic_created_in_the_ui_exists_for_kafka_clients(page, brook_module, screenshots):
    topic = unique_topic("ui-made")
    page.goto(brook_module.admin_url + "/#/topics")
    page.wait_for("document.querySelector('#topic-create-form')")
    page.type_into("#topic-create-form input[name=name]", topic)
    page.type_into("#topic-create-form input[name=partitions]", "3")
    page.type_into("#topic-create-form textarea[name=configs]", "retention.ms=7200000")
    page.click("#topic-create-form button[type=submit]")
    page.wait_for(f"document.querySelector('[data-test=topic-row][data-topic=\"{topic}\"]')",
                  what="the new topic's row")
    assert topic in topic_names(brook_module.bootstrap)
    assert partition_count(brook_module.bootstrap, topic) == 3
    page.screenshot(screenshots / "topics.png")

    # Its page lists the partitions with leader and ISR, and the config set.
    page.click(f"[data-test=topic-row][data-topic=\"{topic}\"] a")
    page.wait_for("document.querySelectorAll('[data-test=partition-row]').length === 3")
    assert "1" in page.text("[data-test=partition-row]")
    page.screenshot(screenshots / "topic-partitions.png")
    page.click("[data-test=tab-configs]")
    page.wait_for("document.querySelector('[data-config=\"retention.ms\"]')")
    assert "7200000" in page.text("[data-config=\"retention.ms\"]")
    assert "DYNAMIC_TOPIC_CONFIG" in page.text("[data-config=\"retention.ms\"]")
    page.screenshot(screenshots / "topic-configs.png")

    # A refusal shows Kafka's error name.
    page.goto(brook_module.admin_url + "/#/topics")
    page.wait_for("document.querySelector('#topic-create-form')")
    page.type_into("#topic-create-form input[name=name]", topic)
    page.click("#topic-create-form button[type=submit]")
    page.wait_for("[...document.querySelectorAll('.toast.error')]"
                  ".some(t => t.innerText.includes('TOPIC_ALREADY_EXISTS'))",
                  what="TOPIC_ALREADY_EXISTS toast")


def test_the_message_browser_shows_what_a_producer_wrote(page, brook_module, screenshots):
    b = brook_module.bootstrap
    topic = unique_topic("ui-browse")
    create_topic(b, topic, partitions=1)
    records = [{"key": f"user-{i}".encode(), "value": json.dumps({"n": i, "ok": True}).encode(),
                "headers": [("source", b"test")]} for i in range(20)]
    assert_all_delivered(produce_all(producer(b), topic, records))

    page.goto(f"{brook_module.admin_url}/#/topic/{topic}/messages")
    page.wait_for("document.querySelectorAll('[data-test=message-row]').length === 20",
                  what="20 message rows")
    last = "document.querySelector('[data-test=message-row][data-offset=\"19\"]')"
    assert page.eval(f"{last}.querySelector('[data-test=message-key]').innerText") == "user-19"
    assert json.loads(page.eval(f"{last}.querySelector('[data-test=message-value]').innerText")) == \
        {"n": 19, "ok": True}
    assert "source=test" in page.eval(f"{last}.innerText")
    page.screenshot(screenshots / "messages.png")

    # Hex view of the same record.
    page.eval("(() => { const s = document.querySelector('#browse-form select[name=mode]');"
              " s.value = 'hex'; s.dispatchEvent(new Event('change')); })()")
    assert page.wait_for(f"{last}.querySelector('[data-test=message-key]').innerText") == \
        " ".join(f"{c:02x}" for c in b"user-19")

    # From an offset.
    page.eval("(() => { const f = document.querySelector('#browse-form');"
              " f.elements.from.value = 'offset'; f.elements.offset.value = '15'; })()")
    page.click("#browse-form button[type=submit]")
    page.wait_for("document.querySelectorAll('[data-test=message-row]').length === 5")

    # Live tail picks up records produced after it started.
    page.click("[data-test=live-tail]")
    more = [{"value": json.dumps({"n": i}).encode()} for i in range(20, 23)]
    assert_all_delivered(produce_all(producer(b), topic, more))
    page.wait_for("document.querySelector('[data-test=message-row][data-offset=\"22\"]')",
                  timeout=10, what="the tailed record at offset 22")
    page.click("[data-test=live-tail]")


def test_a_groups_lag_shows_with_its_chart(page, brook_module, screenshots):
    b = brook_module.bootstrap
    topic = unique_topic("ui-lag")
    group = f"g-{topic}"
    create_topic(b, topic, partitions=2)
    assert_all_delivered(produce_all(producer(b), topic,
                                     [{"value": b"r", "partition": i % 2} for i in range(40)]))
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "client.id": "ui-lag-test"})
    try:
        c.subscribe([topic])
        wait_until(lambda: c.poll(0.2) is not None and c.assignment(), 20, what="assignment")
        c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 8)],
                 asynchronous=False)

        page.goto(brook_module.admin_url + "/#/groups")
        page.wait_for(f"document.querySelector('[data-test=group-row][data-group=\"{group}\"]')",
                      what="the group's row")
        assert "Stable" in page.text(f"[data-test=group-row][data-group=\"{group}\"]")
        page.screenshot(screenshots / "groups.png")

        page.click(f"[data-test=group-row][data-group=\"{group}\"] a")
        assert page.wait_for("document.querySelector('[data-test=total-lag]')?.innerText") == "27"
        lag = {page.eval(f"document.querySelectorAll('[data-test=offset-row]')[{i}].dataset.partition"):
               page.eval(f"document.querySelectorAll('[data-test=offset-row]')[{i}]"
                         ".querySelector('[data-test=lag]').innerText")
               for i in range(2)}
        assert lag == {f"{topic}-0": "15", f"{topic}-1": "12"}
        assert "ui-lag-test" in page.text("[data-test=member-row]")
        # The page samples lag every 3 s; the chart draws from the second sample.
        page.wait_for("document.querySelectorAll('.chart svg path.line').length >= 2",
                      timeout=12, what="the lag charts")

        # Lag moves as the group commits; the page follows without a reload.
        c.commit(offsets=[TopicPartition(topic, 0, 20), TopicPartition(topic, 1, 20)],
                 asynchronous=False)
        page.wait_for("document.querySelector('[data-test=total-lag]')?.innerText === '0'",
                      timeout=10, what="lag 0 after the commit")
        page.screenshot(screenshots / "group.png")
    finally:
        c.close()
