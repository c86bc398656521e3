// KIP-932 share group scenarios driven by the Java client's KafkaShareConsumer
// (kafka-clients, pinned in pom.xml), explicit acknowledgement mode.
//
//   java -cp 'jars/*:classes' ShareCompat 127.0.0.1:9092                   # every scenario
//   java -cp 'jars/*:classes' ShareCompat 127.0.0.1:9092 hold GROUP TOPIC  # the member that
//       share.lock_timeout kills: takes one poll's records, prints "HOLDING offset,...",
//       acknowledges nothing, sleeps until killed
//
// The broker's group.share.record.lock.duration.ms and group.share.delivery.count.limit
// are read back with DescribeConfigs (compat/run.sh makes them small for this client).
// Each group first gets share.auto.offset.reset=earliest (IncrementalAlterConfigs on the
// GROUP resource), so records produced before a member's first fetch are delivered too.
// Prints one `RESULT {...}` line per scenario (Compat.report).

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.serialization.StringDeserializer;

public class ShareCompat {
    static long lockMs;
    static int deliveryLimit;

    public static void main(String[] args) throws Exception {
        Compat.bootstrap = args[0];
        Compat.groupProtocol = "share"; // topic names "java-share-..."
        if (args.length > 1 && args[1].equals("hold")) {
            hold(args[2], args[3]);
            return;
        }
        Properties ap = Compat.common();
        ap.put(AdminClientConfig.CLIENT_ID_CONFIG, "brook-compat-java-admin");
        Compat.admin = Admin.create(ap);
        try {
            String node = Compat.admin.describeCluster().nodes().get(20, TimeUnit.SECONDS).iterator().next().idString();
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, node);
            Config cfg = Compat.admin.describeConfigs(List.of(broker)).all().get(20, TimeUnit.SECONDS).get(broker);
            lockMs = Long.parseLong(cfg.get("group.share.record.lock.duration.ms").value());
            deliveryLimit = Integer.parseInt(cfg.get("group.share.delivery.count.limit").value());
            Compat.scenario("share.split2", () -> split(2, 200));
            Compat.scenario("share.split5", () -> split(5, 300));
            Compat.scenario("share.lock_timeout", ShareCompat::lockTimeout);
            Compat.scenario("share.reject", ShareCompat::reject);
            Compat.scenario("share.release", ShareCompat::release);
            Compat.scenario("share.delivery_limit", ShareCompat::deliveryLimit);
        } finally {
            Compat.admin.close(Duration.ofSeconds(5));
        }
        System.exit(0);
    }

    /** One KafkaShareConsumer on its own thread: polls, acknowledges each record as `ack`
     *  says, commits (commitSync) after each non-empty poll. */
    static final class Member implements Runnable {
        final KafkaShareConsumer<String, String> consumer;
        final String topic;
        final Function<ConsumerRecord<String, String>, AcknowledgeType> ack;
        /** {offset, delivery count} of every delivery, in order. */
        final List<long[]> deliveries = Collections.synchronizedList(new ArrayList<>());
        final List<String> problems = Collections.synchronizedList(new ArrayList<>());
        final Thread thread = new Thread(this);
        volatile boolean stop;
        volatile Optional<Integer> lockTimeout = Optional.empty();

        Member(String group, String topic, int maxPollRecords, Function<ConsumerRecord<String, String>, AcknowledgeType> ack) {
            this.consumer = shareConsumer(group, maxPollRecords);
            this.topic = topic;
            this.ack = ack;
            thread.setDaemon(true);
            thread.start();
        }

        public void run() {
            try {
                consumer.subscribe(List.of(topic));
                while (!stop) {
                    ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(100));
                    for (ConsumerRecord<String, String> r : records) {
                        deliveries.add(new long[] {r.offset(), r.deliveryCount().orElse((short) -1)});
                        consumer.acknowledge(r, ack.apply(r));
                    }
                    if (!records.isEmpty()) {
                        lockTimeout = consumer.acquisitionLockTimeoutMs();
                        Map<TopicIdPartition, Optional<KafkaException>> result = consumer.commitSync();
                        result.forEach((tp, e) -> e.ifPresent(x -> problems.add("commitSync " + tp + ": " + Compat.describe(x))));
                    }
                }
            } catch (Throwable t) {
                problems.add(Compat.describe(t));
            } finally {
                try {
                    consumer.close(Duration.ofSeconds(10));
                } catch (Throwable t) {
                    problems.add("close: " + Compat.describe(t));
                }
            }
        }

        List<Long> offsets() {
            synchronized (deliveries) {
                List<Long> l = new ArrayList<>();
                for (long[] d : deliveries) l.add(d[0]);
                return l;
            }
        }

        int count() { return deliveries.size(); }

        void close() throws InterruptedException {
            stop = true;
            thread.join(20_000);
            Compat.check(!thread.isAlive(), "a share consumer did not close within 20 s");
            Compat.check(problems.isEmpty(), "share consumer problems: " + problems);
        }
    }

    static KafkaShareConsumer<String, String> shareConsumer(String group, int maxPollRecords) {
        Properties p = Compat.common();
        p.put("group.id", group);
        p.put("share.acknowledgement.mode", "explicit");
        p.put("max.poll.records", Integer.toString(maxPollRecords));
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        return new KafkaShareConsumer<>(p);
    }

    static void earliest(String group) throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.GROUP, group);
        AlterConfigOp op = new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET);
        Compat.admin.incrementalAlterConfigs(Map.of(res, List.of(op))).all().get(20, TimeUnit.SECONDS);
    }

    /** A one-partition topic and a group reading it from the earliest offset. */
    static String[] topicAndGroup(String name) throws Exception {
        String topic = Compat.topicName(name);
        Compat.createTopic(topic, 1, Map.of());
        String group = topic + "-g";
        earliest(group);
        return new String[] {topic, group};
    }

    /** Values v0..v(n-1), `batch` records per produce request (linger 0, a flush per batch). */
    static void produce(String topic, int n, int batch) throws Exception {
        try (KafkaProducer<String, String> p = Compat.producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, "0"))) {
            List<java.util.concurrent.Future<?>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                fs.add(p.send(new ProducerRecord<>(topic, "k" + i, "v" + i)));
                if ((i + 1) % batch == 0) p.flush();
            }
            for (var f : fs) f.get(20, TimeUnit.SECONDS);
        }
    }

    interface Cond { boolean ok() throws Exception; }

    static void waitFor(Cond c, long ms, java.util.function.Supplier<String> what) throws Exception {
        long deadline = System.currentTimeMillis() + ms;
        while (!c.ok()) {
            Compat.check(System.currentTimeMillis() < deadline, "timed out after " + ms + " ms: " + what.get());
            Thread.sleep(50);
        }
    }

    /** The share-partition start offset of the group (ListShareGroupOffsets), -1 if none. */
    static long startOffset(String group, String topic) throws Exception {
        Map<TopicPartition, SharePartitionOffsetInfo> m = Compat.admin
                .listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
                .partitionsToOffsetInfo(group).get(20, TimeUnit.SECONDS);
        SharePartitionOffsetInfo info = m.get(new TopicPartition(topic, 0));
        return info == null ? -1 : info.startOffset();
    }

    /** Every record acknowledged (accepted, rejected or archived): the start offset is `n`. */
    static void checkStartOffset(String group, String topic, long n) throws Exception {
        long[] last = {-2};
        waitFor(() -> (last[0] = startOffset(group, topic)) == n, 10_000,
                () -> "share-partition start offset " + last[0] + ", expected " + n);
    }

    /** offset -> delivery counts, in delivery order, over some members. */
    static TreeMap<Long, List<Long>> byOffset(List<Member> members) {
        TreeMap<Long, List<Long>> m = new TreeMap<>();
        for (Member mb : members) {
            synchronized (mb.deliveries) {
                for (long[] d : mb.deliveries) m.computeIfAbsent(d[0], k -> new ArrayList<>()).add(d[1]);
            }
        }
        return m;
    }

    static String split(int n, int records) throws Exception {
        String[] tg = topicAndGroup("split" + n);
        String topic = tg[0], group = tg[1];
        List<Member> members = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) members.add(new Member(group, topic, 10, r -> AcknowledgeType.ACCEPT));
            // Every member holds the partition before anything is produced.
            String[] seen = {""};
            waitFor(() -> {
                ShareGroupDescription d;
                try {
                    d = Compat.admin.describeShareGroups(List.of(group))
                            .describedGroups().get(group).get(20, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof GroupIdNotFoundException)) throw e;
                    seen[0] = "no group yet";
                    return false; // no member has joined yet
                }
                seen[0] = d.toString();
                if (d.members().size() != n) return false;
                for (ShareMemberDescription m : d.members()) {
                    if (!m.assignment().topicPartitions().contains(new TopicPartition(topic, 0))) return false;
                }
                return true;
            }, 30_000, () -> n + " members each assigned " + topic + "-0: " + seen[0]);
            produce(topic, records, 5);
            waitFor(() -> byOffset(members).size() >= records, 30_000,
                    () -> byOffset(members).size() + " of " + records + " records delivered");
            // A record delivered twice would come back within a poll or two; give it one.
            Thread.sleep(300);
        } finally {
            for (Member m : members) m.close();
        }
        TreeMap<Long, List<Long>> got = byOffset(members);
        Compat.check(got.size() == records && got.firstKey() == 0 && got.lastKey() == records - 1,
                "offsets delivered: " + got.size() + " distinct, " + got.firstKey() + ".." + got.lastKey());
        List<String> twice = new ArrayList<>();
        got.forEach((o, counts) -> { if (!counts.equals(List.of(1L))) twice.add(o + "=" + counts); });
        Compat.check(twice.isEmpty(), "records delivered more than once (offset=delivery counts): " + twice);
        List<Integer> per = new ArrayList<>();
        for (Member m : members) per.add(m.count());
        Compat.check(!per.contains(0), "a member got no records: " + per);
        checkStartOffset(group, topic, records);
        return n + " members of " + group + ", all assigned partition 0, split " + records
                + " records " + per + ", each delivered and accepted once; share-partition start offset " + records;
    }

    /** The child process of share.lock_timeout. */
    static void hold(String group, String topic) throws Exception {
        KafkaShareConsumer<String, String> c = shareConsumer(group, 500);
        c.subscribe(List.of(topic));
        long deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline) {
            ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
            if (records.isEmpty()) continue;
            StringBuilder b = new StringBuilder("HOLDING");
            String sep = " ";
            for (ConsumerRecord<String, String> r : records) {
                b.append(sep).append(r.offset());
                sep = ",";
            }
            System.out.println(b);
            System.out.flush();
            Thread.sleep(120_000); // killed long before
        }
        System.out.println("NOTHING");
    }

    static String lockTimeout() throws Exception {
        String[] tg = topicAndGroup("lock");
        String topic = tg[0], group = tg[1];
        int n = 10;
        produce(topic, n, n);
        String java = ProcessHandle.current().info().command().orElse("java");
        Process holder = new ProcessBuilder(java, "-Xshare:auto", "-XX:+UseSerialGC", "-Xmx256m",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", System.getProperty("java.class.path"), "ShareCompat", Compat.bootstrap, "hold", group, topic)
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String line;
        long heldAt;
        Member other = null;
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(holder.getInputStream(), StandardCharsets.UTF_8));
            do {
                line = out.readLine(); // the child gives up after 30 s
            } while (line != null && !line.startsWith("HOLDING ") && !line.equals("NOTHING"));
            heldAt = System.currentTimeMillis();
            Compat.check(line != null && line.startsWith("HOLDING "), "the holding member printed " + line);
            List<Long> held = new ArrayList<>();
            for (String s : line.substring(8).split(",")) held.add(Long.parseLong(s));
            Compat.check(held.size() == n, "the holding member took " + held + ", expected all " + n);
            // kill -9 (SIGKILL): no acknowledgement, no leave heartbeat, no close.
            holder.destroyForcibly();
            Compat.check(holder.waitFor(10, TimeUnit.SECONDS), "the holding JVM did not die");
            Member m = other = new Member(group, topic, 500, r -> AcknowledgeType.ACCEPT);
            waitFor(() -> m.count() >= n, lockMs + 20_000,
                    () -> "the killed member's records redelivered: got " + m.offsets());
            long after = System.currentTimeMillis() - heldAt;
            Thread.sleep(300);
            m.close();
            other = null;
            TreeMap<Long, List<Long>> got = byOffset(List.of(m));
            Compat.check(got.keySet().equals(new java.util.TreeSet<>(held)), "redelivered " + got.keySet() + ", held " + held);
            got.forEach((o, counts) -> Compat.check(counts.equals(List.of(2L)),
                    "offset " + o + " delivery counts " + counts + " (expected one redelivery, count 2)"));
            Compat.check(m.lockTimeout.equals(Optional.of((int) lockMs)),
                    "acquisitionLockTimeoutMs " + m.lockTimeout + ", broker's lock duration " + lockMs);
            checkStartOffset(group, topic, n);
            return "a member (own JVM) took offsets 0.." + (n - 1) + " and was killed with SIGKILL; another member got all "
                    + n + " with delivery count 2, " + after + " ms after the first took them (acquisition lock "
                    + lockMs + " ms), accepted them: start offset " + n;
        } finally {
            holder.destroyForcibly();
            if (other != null) {
                other.stop = true;
            }
        }
    }

    /** REJECT on even offsets, ACCEPT on odd ones: each record is delivered once, even
     *  after the acquisition lock duration has passed. */
    static String reject() throws Exception {
        String[] tg = topicAndGroup("reject");
        String topic = tg[0], group = tg[1];
        int n = 20;
        produce(topic, n, 4);
        Member m = new Member(group, topic, 500,
                r -> r.offset() % 2 == 0 ? AcknowledgeType.REJECT : AcknowledgeType.ACCEPT);
        try {
            waitFor(() -> m.count() >= n, 30_000, () -> "deliveries " + m.offsets());
            Thread.sleep(lockMs + 1000); // a rejected record never comes back
        } finally {
            m.close();
        }
        TreeMap<Long, List<Long>> got = byOffset(List.of(m));
        Compat.check(got.size() == n && got.lastKey() == n - 1, "offsets delivered " + got.keySet());
        got.forEach((o, counts) -> Compat.check(counts.equals(List.of(1L)), "offset " + o + " delivered with counts " + counts));
        checkStartOffset(group, topic, n);
        return n + " records, the 10 even offsets rejected, the odd accepted; none redelivered within "
                + (lockMs + 1000) + " ms (lock " + lockMs + " ms); start offset " + n;
    }

    /** RELEASE at the first delivery, ACCEPT at the second. */
    static String release() throws Exception {
        String[] tg = topicAndGroup("release");
        String topic = tg[0], group = tg[1];
        int n = 10;
        produce(topic, n, 5);
        Member m = new Member(group, topic, 500,
                r -> r.deliveryCount().orElse((short) 0) <= 1 ? AcknowledgeType.RELEASE : AcknowledgeType.ACCEPT);
        try {
            waitFor(() -> m.count() >= 2 * n, 30_000, () -> "deliveries " + m.offsets());
            Thread.sleep(300);
        } finally {
            m.close();
        }
        TreeMap<Long, List<Long>> got = byOffset(List.of(m));
        Compat.check(got.size() == n, "offsets delivered " + got.keySet());
        got.forEach((o, counts) -> Compat.check(counts.equals(List.of(1L, 2L)), "offset " + o + " delivery counts " + counts));
        checkStartOffset(group, topic, n);
        return n + " records released at delivery 1, each redelivered (count 2) and accepted; start offset " + n;
    }

    /** RELEASE every time: each record is delivered group.share.delivery.count.limit times,
     *  then archived. */
    static String deliveryLimit() throws Exception {
        String[] tg = topicAndGroup("limit");
        String topic = tg[0], group = tg[1];
        int n = 5;
        produce(topic, n, n);
        Member m = new Member(group, topic, 500, r -> AcknowledgeType.RELEASE);
        try {
            waitFor(() -> m.count() >= n * deliveryLimit, 30_000, () -> "deliveries " + m.offsets());
            Thread.sleep(500); // one more would show by now
        } finally {
            m.close();
        }
        TreeMap<Long, List<Long>> got = byOffset(List.of(m));
        List<Long> expected = new ArrayList<>();
        for (long i = 1; i <= deliveryLimit; i++) expected.add(i);
        Compat.check(got.size() == n, "offsets delivered " + got.keySet());
        got.forEach((o, counts) -> Compat.check(counts.equals(expected), "offset " + o + " delivery counts " + counts
                + ", expected " + expected + " (group.share.delivery.count.limit " + deliveryLimit + ")"));
        checkStartOffset(group, topic, n);
        return n + " records released at every delivery: each delivered " + deliveryLimit
                + " times (group.share.delivery.count.limit), then archived: start offset " + n;
    }
}
