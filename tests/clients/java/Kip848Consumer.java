// A consumer of Kafka's own Java client with the KIP-848 protocol (group.protocol=consumer),
// driven by tests/clients/test_kip848.py.
//
//   java -cp 'jars/*:classes' Kip848Consumer BOOTSTRAP GROUP TOPIC IDLE_MS [INSTANCE_ID]
//
// The environment variable GROUP_PROTOCOL=classic makes it a classic-protocol member;
// CLIENT_RACK sets its client.rack (the rack id its heartbeats carry).
//
// TOPIC `regex:PATTERN` subscribes with a server-side regular expression
// (`subscribe(SubscriptionPattern)`, KIP-848) instead of one topic name.
// Prints one line per event, flushed at once so a test that kills the process knows
// what it did:  READY / ASSIGNED t-p,... / REVOKED t-p,... / LOST t-p,... /
// RECORD partition offset value topic / COMMITTED n / ERROR message / CLOSED.
// Offsets are committed synchronously after each poll and when partitions are revoked,
// so a clean hand-over re-delivers nothing. Exits after IDLE_MS without records, or on
// SIGTERM (closing the consumer, which leaves the group).

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

public class Kip848Consumer {
    static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static String names(Collection<TopicPartition> parts) {
        return parts.stream().map(TopicPartition::toString).sorted().collect(Collectors.joining(","));
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], group = args[1], topic = args[2];
        long idleMs = Long.parseLong(args[3]);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        // GROUP_PROTOCOL=classic runs the same consumer with the classic protocol
        // (the protocol-migration tests roll a group between the two).
        String protocol = System.getenv().getOrDefault("GROUP_PROTOCOL", "consumer");
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        if (protocol.equals("classic")) {
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        }
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        if (args.length > 4) {
            p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, args[4]);
        }
        String rack = System.getenv("CLIENT_RACK");
        if (rack != null) {
            p.put(ConsumerConfig.CLIENT_RACK_CONFIG, rack);
        }
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p);
        Map<TopicPartition, OffsetAndMetadata> pending = new HashMap<>();
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.wakeup();
            try {
                main.join(20_000);
            } catch (InterruptedException ignored) {
            }
        }));
        ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
            public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                commit(consumer, pending);
                out("REVOKED " + names(parts));
            }

            public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                out("ASSIGNED " + names(parts));
            }

            public void onPartitionsLost(Collection<TopicPartition> parts) {
                pending.keySet().removeAll(parts);
                out("LOST " + names(parts));
            }
        };
        if (topic.startsWith("regex:")) {
            consumer.subscribe(new SubscriptionPattern(topic.substring("regex:".length())), listener);
        } else {
            consumer.subscribe(List.of(topic), listener);
        }
        out("READY");
        long lastRecord = System.currentTimeMillis();
        try {
            while (System.currentTimeMillis() - lastRecord < idleMs) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    out("RECORD " + r.partition() + " " + r.offset() + " " + r.value() + " " + r.topic());
                    pending.put(new TopicPartition(r.topic(), r.partition()),
                                new OffsetAndMetadata(r.offset() + 1));
                    lastRecord = System.currentTimeMillis();
                }
                commit(consumer, pending);
            }
        } catch (WakeupException e) {
            // SIGTERM: close below.
        } catch (Exception e) {
            out("ERROR " + e);
        }
        try {
            consumer.close(Duration.ofSeconds(10));
        } catch (Exception e) {
            out("ERROR close " + e);
        }
        out("CLOSED");
    }

    static void commit(KafkaConsumer<String, String> consumer, Map<TopicPartition, OffsetAndMetadata> pending) {
        if (pending.isEmpty()) {
            return;
        }
        try {
            consumer.commitSync(pending);
            out("COMMITTED " + pending.size());
        } catch (WakeupException e) {
            throw e;
        } catch (Exception e) {
            out("ERROR commit " + e);
        }
        pending.clear();
    }
}
