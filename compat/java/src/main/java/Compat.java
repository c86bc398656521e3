// Brook compatibility scenarios driven by the Java client (kafka-clients, pinned in pom.xml).
//
//   java -cp 'jars/*:classes' Compat 127.0.0.1:9092 classic    # every scenario
//   java -cp 'jars/*:classes' Compat 127.0.0.1:9092 consumer   # consume, group and transaction
//                                                              # scenarios only, with
//                                                              # group.protocol=consumer (KIP-848)
//
// Prints one line per scenario: `RESULT {"scenario":..,"status":"pass|fail","detail":..}`;
// compat/run.sh collects those lines.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Compat {
    static String bootstrap;
    static String groupProtocol;
    static final String RUN = Long.toString(System.currentTimeMillis() % 100_000_000L, 36)
            + UUID.randomUUID().toString().substring(0, 4);
    static final long SCENARIO_DEADLINE_MS = 45_000;
    static Admin admin;

    interface Body { String run() throws Exception; }

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static void report(String scenario, String status, String detail) {
        if (detail.length() > 2000) detail = detail.substring(0, 2000);
        System.out.println("RESULT {\"scenario\":" + json(scenario) + ",\"status\":" + json(status)
                + ",\"detail\":" + json(detail) + "}");
        System.out.flush();
    }

    static String describe(Throwable t) {
        StringBuilder b = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (b.length() > 0) b.append(" <- caused by: ");
            b.append(c.getClass().getName()).append(": ").append(c.getMessage());
            if (c.getCause() == c) break;
        }
        return b.toString();
    }

    static void scenario(String name, Body body) {
        long start = System.currentTimeMillis();
        try {
            String detail = body.run();
            report(name, "pass", detail + " (" + (System.currentTimeMillis() - start) + " ms)");
        } catch (Throwable t) {
            // With group.protocol=consumer, a clean UnsupportedVersionException (a broker
            // without ConsumerGroupHeartbeat, KIP-848) is "not supported", not a failure;
            // the same for ShareCompat's share consumers (a broker without KIP-932).
            boolean unsupported = false;
            for (Throwable c = t; c != null && c.getCause() != c; c = c.getCause()) {
                if (c instanceof UnsupportedVersionException) unsupported = true;
            }
            report(name, !groupProtocol.equals("classic") && unsupported ? "unsupported" : "fail", describe(t));
        }
    }

    static void check(boolean cond, String msg) {
        if (!cond) throw new IllegalStateException("check failed: " + msg);
    }

    static String topicName(String s) { return "java-" + groupProtocol + "-" + s + "-" + RUN; }

    static Properties common() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", "brook-compat-java");
        p.put("request.timeout.ms", "10000");
        p.put("default.api.timeout.ms", "20000");
        return p;
    }

    static KafkaProducer<String, String> producer(Map<String, String> extra) {
        Properties p = common();
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "20000");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "20");
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(String group, Map<String, String> extra) {
        Properties p = common();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, groupProtocol);
        }
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    static void createTopic(String topic, int partitions, Map<String, String> configs) throws Exception {
        admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1).configs(configs)))
                .all().get(20, TimeUnit.SECONDS);
    }

    static List<RecordMetadata> produce(String topic, List<String> values, Map<String, String> extra) throws Exception {
        List<RecordMetadata> out = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(extra)) {
            List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
            for (String v : values) fs.add(p.send(new ProducerRecord<>(topic, v)));
            for (var f : fs) out.add(f.get(20, TimeUnit.SECONDS));
        }
        return out;
    }

    static List<String> values(String prefix, int n) {
        List<String> l = new ArrayList<>();
        for (int i = 0; i < n; i++) l.add(prefix + "-" + i);
        return l;
    }

    // Polls until n records arrived (or the scenario deadline).
    static List<ConsumerRecord<String, String>> poll(KafkaConsumer<String, String> c, int n) {
        List<ConsumerRecord<String, String>> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + SCENARIO_DEADLINE_MS;
        while (got.size() < n) {
            check(System.currentTimeMillis() < deadline, "timed out with " + got.size() + " of " + n + " records");
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r);
        }
        return got;
    }

    // Reads partition 0..parts-1 of topic from the start without a group.
    static List<ConsumerRecord<String, String>> readAll(String topic, int parts, int n) {
        return readAll(topic, parts, n, Map.of());
    }

    static List<ConsumerRecord<String, String>> readAll(String topic, int parts, int n, Map<String, String> extra) {
        try (KafkaConsumer<String, String> c = consumer(null, extra)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < parts; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            return poll(c, n);
        }
    }

    static String header(ConsumerRecord<String, String> r, String key) {
        Header h = r.headers().lastHeader(key);
        return h == null ? null : new String(h.value());
    }

    public static void main(String[] args) throws Exception {
        bootstrap = args.length > 0 ? args[0] : "127.0.0.1:9092";
        groupProtocol = args.length > 1 ? args[1] : "classic";
        if (System.getenv("COMPAT_SECURE") != null) { // compat/run.sh --secure: SecureCompat.java
            SecureCompat.run();
            System.exit(0);
        }
        Properties ap = common();
        ap.put(AdminClientConfig.CLIENT_ID_CONFIG, "brook-compat-java-admin");
        admin = Admin.create(ap);
        try {
            if (groupProtocol.equals("classic")) {
                adminScenarios();
                produceScenarios();
            }
            consumeScenarios();
            groupScenarios();
            txnScenarios();
        } finally {
            admin.close(Duration.ofSeconds(5));
        }
        System.exit(0);
    }

    static void adminScenarios() {
        String t = topicName("admin");
        scenario("admin.create", () -> {
            createTopic(t, 3, Map.of("retention.ms", "3600000"));
            return "created " + t + " with 3 partitions, retention.ms=3600000";
        });
        scenario("admin.list", () -> {
            Set<String> names = admin.listTopics().names().get(20, TimeUnit.SECONDS);
            check(names.contains(t), "listTopics lacks " + t + ": " + names);
            return names.size() + " topics";
        });
        scenario("admin.describe", () -> {
            TopicDescription d = admin.describeTopics(List.of(t)).allTopicNames().get(20, TimeUnit.SECONDS).get(t);
            check(d.partitions().size() == 3, "partitions " + d.partitions().size());
            check(d.partitions().get(0).leader() != null, "no leader: " + d);
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, t);
            Config cfg = admin.describeConfigs(List.of(res)).all().get(20, TimeUnit.SECONDS).get(res);
            ConfigEntry e = cfg.get("retention.ms");
            check(e != null && "3600000".equals(e.value()), "retention.ms " + e);
            return "3 partitions, topic id " + d.topicId() + ", retention.ms=3600000 (" + e.source() + "), "
                    + cfg.entries().size() + " configs";
        });
        scenario("admin.add_partitions", () -> {
            admin.createPartitions(Map.of(t, NewPartitions.increaseTo(5))).all().get(20, TimeUnit.SECONDS);
            TopicDescription d = admin.describeTopics(List.of(t)).allTopicNames().get(20, TimeUnit.SECONDS).get(t);
            check(d.partitions().size() == 5, "partitions " + d.partitions().size());
            return "3 -> 5 partitions";
        });
        scenario("admin.delete", () -> {
            admin.deleteTopics(List.of(t)).all().get(20, TimeUnit.SECONDS);
            long deadline = System.currentTimeMillis() + 10_000;
            while (admin.listTopics().names().get(20, TimeUnit.SECONDS).contains(t)) {
                check(System.currentTimeMillis() < deadline, "topic still listed 10 s after delete");
                Thread.sleep(200);
            }
            return "deleted, gone from listTopics";
        });
    }

    static void produceScenarios() {
        scenario("produce.keys_headers", () -> {
            String t = topicName("keys");
            createTopic(t, 3, Map.of());
            try (KafkaProducer<String, String> p = producer(Map.of())) {
                for (int i = 0; i < 30; i++) {
                    RecordHeaders h = new RecordHeaders();
                    h.add("h-index", Integer.toString(i).getBytes());
                    h.add("h-const", "brook".getBytes());
                    p.send(new ProducerRecord<>(t, null, "key-" + i, "value-" + i, h));
                }
                p.flush();
            }
            List<ConsumerRecord<String, String>> got = readAll(t, 3, 30);
            Set<Integer> parts = new HashSet<>();
            Map<String, Integer> keyPartition = new HashMap<>();
            for (ConsumerRecord<String, String> r : got) {
                int i = Integer.parseInt(r.key().substring(4));
                parts.add(r.partition());
                keyPartition.put(r.key(), r.partition());
                check(r.value().equals("value-" + i), "value " + r);
                check(Integer.toString(i).equals(header(r, "h-index")) && "brook".equals(header(r, "h-const")), "headers " + r);
            }
            check(keyPartition.size() == 30, "distinct keys " + keyPartition.size());
            return "30 keyed records with 2 headers each over " + parts.size() + " partitions";
        });
        for (String codec : List.of("gzip", "snappy", "lz4", "zstd")) {
            scenario("produce." + codec, () -> {
                String t = topicName(codec);
                createTopic(t, 1, Map.of());
                List<String> vals = new ArrayList<>();
                for (int i = 0; i < 50; i++) vals.add((codec + " record " + i + " ").repeat(20));
                produce(t, vals, Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec, ProducerConfig.LINGER_MS_CONFIG, "100"));
                List<ConsumerRecord<String, String>> got = readAll(t, 1, 50);
                for (int i = 0; i < 50; i++) {
                    check(got.get(i).offset() == i && got.get(i).value().equals(vals.get(i)), "record " + i);
                }
                return "50 records, " + codec + "-compressed batches, read back intact";
            });
        }
        scenario("produce.idempotent", () -> {
            String t = topicName("idem");
            createTopic(t, 1, Map.of());
            List<RecordMetadata> md = produce(t, values("idem", 100),
                    Map.of(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true", ProducerConfig.ACKS_CONFIG, "all"));
            for (int i = 0; i < 100; i++) check(md.get(i).offset() == i, "ack " + i + " at " + md.get(i).offset());
            List<ConsumerRecord<String, String>> got = readAll(t, 1, 100);
            for (int i = 0; i < 100; i++) {
                check(got.get(i).offset() == i && got.get(i).value().equals("idem-" + i), "record " + i);
            }
            return "enable.idempotence=true acks=all: 100 records exactly once, in order";
        });
    }

    static void consumeScenarios() {
        String t = topicName("consume");
        scenario("consume.earliest", () -> {
            createTopic(t, 1, Map.of());
            produce(t, values("old", 10), Map.of());
            try (KafkaConsumer<String, String> c = consumer("java-earliest-" + groupProtocol + RUN,
                    Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest"))) {
                c.subscribe(List.of(t));
                List<ConsumerRecord<String, String>> got = poll(c, 10);
                check(got.get(0).offset() == 0 && got.get(0).value().equals("old-0"), "first " + got.get(0));
            }
            return "group " + groupProtocol + ", auto.offset.reset=earliest: read offsets 0..9";
        });
        scenario("consume.latest", () -> {
            try (KafkaConsumer<String, String> c = consumer("java-latest-" + groupProtocol + RUN,
                    Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest"))) {
                c.subscribe(List.of(t));
                TopicPartition tp = new TopicPartition(t, 0);
                long deadline = System.currentTimeMillis() + SCENARIO_DEADLINE_MS;
                List<ConsumerRecord<String, String>> early = new ArrayList<>();
                while (c.assignment().isEmpty()) {
                    check(System.currentTimeMillis() < deadline, "no assignment");
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) early.add(r);
                }
                check(early.isEmpty(), "read old records: " + early);
                long pos = c.position(tp);
                check(pos == 10, "position after reset to latest " + pos);
                produce(t, values("new", 5), Map.of());
                List<ConsumerRecord<String, String>> got = poll(c, 5);
                check(got.get(0).offset() == 10 && got.get(0).value().equals("new-0"), "first " + got.get(0));
            }
            return "auto.offset.reset=latest: position 10, read only the 5 new records";
        });
        scenario("consume.timestamp", () -> {
            String ts = topicName("ts");
            createTopic(ts, 1, Map.of());
            long t0 = System.currentTimeMillis() - 600_000, t1 = System.currentTimeMillis() - 300_000;
            try (KafkaProducer<String, String> p = producer(Map.of())) {
                for (int i = 0; i < 10; i++) {
                    p.send(new ProducerRecord<>(ts, 0, i < 6 ? t0 + i : t1 + i, null, "ts-" + i));
                }
                p.flush();
            }
            TopicPartition tp = new TopicPartition(ts, 0);
            try (KafkaConsumer<String, String> c = consumer(null, Map.of())) {
                Map<TopicPartition, OffsetAndTimestamp> o = c.offsetsForTimes(Map.of(tp, t1));
                check(o.get(tp) != null && o.get(tp).offset() == 6 && o.get(tp).timestamp() == t1 + 6, "offsetsForTimes " + o);
                c.assign(List.of(tp));
                c.seek(tp, o.get(tp).offset());
                List<ConsumerRecord<String, String>> got = poll(c, 4);
                check(got.get(0).offset() == 6 && got.get(0).value().equals("ts-6") && got.get(0).timestamp() == t1 + 6,
                        "first " + got.get(0));
            }
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> lo =
                    admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(t1))).all().get(20, TimeUnit.SECONDS);
            check(lo.get(tp).offset() == 6, "admin listOffsets forTimestamp " + lo);
            return "offsetsForTimes -> 6 (and Admin.listOffsets), seek, read ts-6..ts-9 with their CreateTime";
        });
    }

    static void groupScenarios() {
        scenario("group.commit_resume", () -> {
            String t = topicName("group");
            String g = "java-group-" + groupProtocol + RUN;
            createTopic(t, 1, Map.of());
            produce(t, values("g", 10), Map.of());
            TopicPartition tp = new TopicPartition(t, 0);
            Map<String, String> cfg = Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                    ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false", ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "6");
            try (KafkaConsumer<String, String> c = consumer(g, cfg)) {
                c.subscribe(List.of(t));
                List<ConsumerRecord<String, String>> got = poll(c, 6);
                check(got.get(5).offset() == 5, "6th record at " + got.get(5).offset());
                c.commitSync(Map.of(tp, new OffsetAndMetadata(6, "compat")));
            }
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get(20, TimeUnit.SECONDS);
            check(committed.get(tp) != null && committed.get(tp).offset() == 6
                    && "compat".equals(committed.get(tp).metadata()), "committed " + committed);
            try (KafkaConsumer<String, String> c = consumer(g, cfg)) {
                c.subscribe(List.of(t));
                List<ConsumerRecord<String, String>> got = poll(c, 4);
                check(got.get(0).offset() == 6 && got.get(0).value().equals("g-6"), "resumed at " + got.get(0));
            }
            return "commitSync(6, metadata), close, new member resumed at offset 6";
        });
        scenario("group.describe_lag", () -> {
            String t = topicName("lag");
            String g = "java-lag-" + groupProtocol + RUN;
            createTopic(t, 1, Map.of());
            produce(t, values("l", 10), Map.of());
            TopicPartition tp = new TopicPartition(t, 0);
            try (KafkaConsumer<String, String> c = consumer(g, Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                    ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false", ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "4"))) {
                c.subscribe(List.of(t));
                poll(c, 4);
                c.commitSync(Map.of(tp, new OffsetAndMetadata(4)));
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(g)).all().get(20, TimeUnit.SECONDS).get(g);
                check(d.groupState() == GroupState.STABLE, "state " + d.groupState() + " " + d);
                Collection<MemberDescription> members = d.members();
                check(members.size() == 1, "members " + members);
                MemberDescription m = members.iterator().next();
                check(m.assignment().topicPartitions().equals(Set.of(tp)), "assignment " + m.assignment());
                long committed = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata()
                        .get(20, TimeUnit.SECONDS).get(tp).offset();
                long end = admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all().get(20, TimeUnit.SECONDS).get(tp).offset();
                check(end - committed == 6, "lag " + (end - committed) + " (end " + end + ", committed " + committed + ")");
                return "describeConsumerGroups: " + d.groupState() + ", type " + d.type() + ", assignor "
                        + d.partitionAssignor() + ", 1 member owning " + tp + "; committed 4, end 10, lag 6";
            }
        });
    }

    static final Map<String, String> READ_COMMITTED = Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    static final Map<String, String> READ_UNCOMMITTED = Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");

    static long endOffset(TopicPartition tp, IsolationLevel level) throws Exception {
        return admin.listOffsets(Map.of(tp, OffsetSpec.latest()), new ListOffsetsOptions(level))
                .all().get(20, TimeUnit.SECONDS).get(tp).offset();
    }

    static List<String> valuesOf(List<ConsumerRecord<String, String>> rs) {
        List<String> l = new ArrayList<>();
        for (ConsumerRecord<String, String> r : rs) l.add(r.value());
        return l;
    }

    static List<Long> offsetsOf(List<ConsumerRecord<String, String>> rs) {
        List<Long> l = new ArrayList<>();
        for (ConsumerRecord<String, String> r : rs) l.add(r.offset());
        return l;
    }

    static List<Long> range(long from, long to) {
        List<Long> l = new ArrayList<>();
        for (long i = from; i < to; i++) l.add(i);
        return l;
    }

    @SafeVarargs
    static <T> List<T> concat(List<T>... ls) {
        List<T> out = new ArrayList<>();
        for (List<T> l : ls) out.addAll(l);
        return out;
    }

    static void txnScenarios() {
        // Committed transaction of 10 records, aborted one of 5 (flushed to the broker first),
        // committed one of 7, each followed by its control marker: the log is
        // c1 0..9, commit 10, ab 11..15, abort 16, c2 17..23, commit 24.
        scenario("txn.commit_abort", () -> {
            String t = topicName("txn");
            createTopic(t, 1, Map.of());
            TopicPartition tp = new TopicPartition(t, 0);
            long lsoOpen, hwOpen;
            List<Long> abortedAt = new ArrayList<>();
            try (KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG,
                    "java-" + groupProtocol + "-txn-" + RUN))) {
                p.initTransactions();
                p.beginTransaction();
                for (String v : values("c1", 10)) p.send(new ProducerRecord<>(t, v));
                p.commitTransaction();
                p.beginTransaction();
                List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
                for (String v : values("ab", 5)) fs.add(p.send(new ProducerRecord<>(t, v)));
                p.flush();
                for (var f : fs) abortedAt.add(f.get(20, TimeUnit.SECONDS).offset());
                lsoOpen = endOffset(tp, IsolationLevel.READ_COMMITTED);
                hwOpen = endOffset(tp, IsolationLevel.READ_UNCOMMITTED);
                p.abortTransaction();
                p.beginTransaction();
                for (String v : values("c2", 7)) p.send(new ProducerRecord<>(t, v));
                p.commitTransaction();
            }
            check(abortedAt.equals(range(11, 16)), "aborted records acked at " + abortedAt + ", want 11..15");
            check(lsoOpen == 11 && hwOpen == 16, "while the 2nd transaction was open: read_committed end offset (LSO) "
                    + lsoOpen + ", read_uncommitted end offset (high watermark) " + hwOpen + "; want 11 and 16");
            List<ConsumerRecord<String, String>> rc = readAll(t, 1, 17, READ_COMMITTED);
            check(valuesOf(rc).equals(concat(values("c1", 10), values("c2", 7))), "read_committed values " + valuesOf(rc));
            check(offsetsOf(rc).equals(concat(range(0, 10), range(17, 24))), "read_committed offsets " + offsetsOf(rc));
            List<ConsumerRecord<String, String>> ru = readAll(t, 1, 22, READ_UNCOMMITTED);
            check(valuesOf(ru).equals(concat(values("c1", 10), values("ab", 5), values("c2", 7))),
                    "read_uncommitted values " + valuesOf(ru));
            long lso = endOffset(tp, IsolationLevel.READ_COMMITTED), hw = endOffset(tp, IsolationLevel.READ_UNCOMMITTED);
            check(lso == 25 && hw == 25, "end offsets after the last commit: LSO " + lso + ", high watermark " + hw + "; want 25");
            return "commit 10, abort 5 (flushed, acked at 11..15), commit 7: read_committed read the 17 committed "
                    + "(offsets 0..9, 17..23), read_uncommitted all 22; LSO 11 / HW 16 while the abort was open, 25 / 25 after";
        });

        // Consume-transform-produce: a read_committed group member reads 10 records; transaction 1
        // produces the first 6 transformed and commits offset 6 with them; transaction 2 produces
        // the other 4 with offset 10 and aborts (the group stays at 6); the member seeks back to the
        // committed offset and transaction 3 redoes the 4 and commits offset 10.
        scenario("txn.offsets", () -> {
            String in = topicName("txn-in"), out = topicName("txn-out");
            String g = "java-txn-" + groupProtocol + RUN;
            createTopic(in, 1, Map.of());
            createTopic(out, 1, Map.of());
            produce(in, values("in", 10), Map.of());
            TopicPartition itp = new TopicPartition(in, 0);
            Map<String, String> cc = new HashMap<>(READ_COMMITTED);
            cc.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cc.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            long afterAbort;
            try (KafkaConsumer<String, String> c = consumer(g, cc);
                 KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG,
                         "java-" + groupProtocol + "-txo-" + RUN))) {
                p.initTransactions();
                c.subscribe(List.of(in));
                List<ConsumerRecord<String, String>> got = poll(c, 10);
                check(offsetsOf(got).equals(range(0, 10)), "input offsets " + offsetsOf(got));
                p.beginTransaction();
                for (ConsumerRecord<String, String> r : got.subList(0, 6)) p.send(new ProducerRecord<>(out, r.value().toUpperCase()));
                p.sendOffsetsToTransaction(Map.of(itp, new OffsetAndMetadata(6)), c.groupMetadata());
                p.commitTransaction();
                p.beginTransaction();
                for (ConsumerRecord<String, String> r : got.subList(6, 10)) p.send(new ProducerRecord<>(out, r.value().toUpperCase()));
                p.sendOffsetsToTransaction(Map.of(itp, new OffsetAndMetadata(10)), c.groupMetadata());
                p.flush();
                p.abortTransaction();
                OffsetAndMetadata committed = c.committed(Set.of(itp)).get(itp);
                check(committed != null && committed.offset() == 6, "committed offset after the abort " + committed + ", want 6");
                afterAbort = committed.offset();
                c.seek(itp, committed.offset());
                List<ConsumerRecord<String, String>> again = poll(c, 4);
                check(offsetsOf(again).equals(range(6, 10)), "re-read offsets " + offsetsOf(again));
                p.beginTransaction();
                for (ConsumerRecord<String, String> r : again) p.send(new ProducerRecord<>(out, r.value().toUpperCase()));
                p.sendOffsetsToTransaction(Map.of(itp, new OffsetAndMetadata(10)), c.groupMetadata());
                p.commitTransaction();
                // read_committed: committed() asks with require_stable and retries while the
                // transaction's offsets are undecided (EndTxn is answered before its markers).
                OffsetAndMetadata fin = c.committed(Set.of(itp)).get(itp);
                check(fin != null && fin.offset() == 10, "committed offset after the last commit " + fin + ", want 10");
            }
            Map<TopicPartition, OffsetAndMetadata> offs =
                    admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get(20, TimeUnit.SECONDS);
            check(offs.get(itp) != null && offs.get(itp).offset() == 10, "group offsets " + offs);
            List<String> want = new ArrayList<>();
            for (String v : values("in", 10)) want.add(v.toUpperCase());
            List<ConsumerRecord<String, String>> rc = readAll(out, 1, 10, READ_COMMITTED);
            check(valuesOf(rc).equals(want), "output read_committed " + valuesOf(rc));
            List<ConsumerRecord<String, String>> ru = readAll(out, 1, 14, READ_UNCOMMITTED);
            check(valuesOf(ru).equals(concat(want.subList(0, 10), want.subList(6, 10))), "output read_uncommitted " + valuesOf(ru));
            return "group " + groupProtocol + ", read_committed input: txn 1 (6 records + offset 6) committed, txn 2 (4 + offset 10) "
                    + "aborted -> committed() " + afterAbort + ", seek, txn 3 (4 + offset 10) committed; output read_committed "
                    + "IN-0..IN-9 once, read_uncommitted 14; group offset 10 (committed(), then Admin.listConsumerGroupOffsets)";
        });
    }
}
