// How long Kafka's Java consumers in one group wait on rebalances, with either group
// protocol. Run by bench/rebalance.py with Java's single-file source launcher:
//   java -cp 'KAFKA_LIBS/*' bench/RebalanceProbe.java BOOTSTRAP TOPIC PARTITIONS MEMBERS PROTOCOL
// PROTOCOL is `classic` (the consumer's defaults: range then cooperative-sticky, so an
// eager range rebalance) or `consumer` (KIP-848, the broker's default `uniform`
// assignor). Each member is a KafkaConsumer on its own thread, polling every 50 ms;
// the owner of every partition is tracked from the rebalance listener's callbacks, and a
// sampler adds up, every 5 ms, how many partitions have no owner (partition-seconds with
// nobody consuming: what a stop-the-world rebalance costs). Three steps:
//   join:  MEMBERS members start together; until every partition has exactly one owner;
//   grow:  one more member joins; until it owns a partition and every partition has one
//          owner;
//   leave: one member closes (a clean leave); until its partitions have new owners.
// Each step reports its wall time and its unowned partition-seconds. One JSON line on
// stdout.
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class RebalanceProbe {
    static final long STEP_LIMIT_MS = 120_000;
    /** partition -> owners (a partition owned twice is a bug of the protocol, not a gap). */
    static final Map<Integer, Map<Integer, Boolean>> OWNERS = new ConcurrentHashMap<>();
    static int partitions;

    static class Member implements Runnable, ConsumerRebalanceListener {
        final int id;
        final KafkaConsumer<byte[], byte[]> consumer;
        final AtomicBoolean stop = new AtomicBoolean();
        final Thread thread;
        final String topic;

        Member(int id, Properties props, String topic) {
            this.id = id;
            this.topic = topic;
            Properties p = new Properties();
            p.putAll(props);
            p.put(ConsumerConfig.CLIENT_ID_CONFIG, "probe-" + id);
            consumer = new KafkaConsumer<>(p);
            thread = new Thread(this, "member-" + id);
            thread.start();
        }

        public void run() {
            consumer.subscribe(List.of(topic), this);
            while (!stop.get()) {
                consumer.poll(Duration.ofMillis(50));
            }
            consumer.close();
            for (Map<Integer, Boolean> o : OWNERS.values()) {
                o.remove(id);
            }
        }

        public void onPartitionsAssigned(Collection<TopicPartition> ps) {
            for (TopicPartition tp : ps) {
                OWNERS.computeIfAbsent(tp.partition(), k -> new ConcurrentHashMap<>()).put(id, true);
            }
        }

        public void onPartitionsRevoked(Collection<TopicPartition> ps) {
            for (TopicPartition tp : ps) {
                OWNERS.computeIfAbsent(tp.partition(), k -> new ConcurrentHashMap<>()).remove(id);
            }
        }

        public void onPartitionsLost(Collection<TopicPartition> ps) {
            onPartitionsRevoked(ps);
        }

        boolean owns() {
            return OWNERS.values().stream().anyMatch(o -> o.containsKey(id));
        }

    }

    static int unowned() {
        int n = 0;
        for (int p = 0; p < partitions; p++) {
            Map<Integer, Boolean> o = OWNERS.get(p);
            if (o == null || o.isEmpty()) {
                n++;
            }
        }
        return n;
    }

    static boolean settled() {
        for (int p = 0; p < partitions; p++) {
            Map<Integer, Boolean> o = OWNERS.get(p);
            if (o == null || o.size() != 1) {
                return false;
            }
        }
        return true;
    }

    /** Waits until `done`, sampling unowned partitions; returns {ms, unowned partition-s}. */
    static String step(String name, BooleanSupplier done) throws InterruptedException {
        long t0 = System.nanoTime(), last = t0;
        double gap = 0;
        while (!done.getAsBoolean()) {
            Thread.sleep(5);
            long now = System.nanoTime();
            gap += unowned() * (now - last) / 1e9;
            last = now;
            if ((now - t0) / 1_000_000 > STEP_LIMIT_MS) {
                throw new IllegalStateException(name + ": not settled within " + STEP_LIMIT_MS + " ms");
            }
        }
        return String.format("\"%s\": {\"ms\": %.1f, \"unowned_partition_s\": %.3f}",
                name, (System.nanoTime() - t0) / 1e6, gap);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], protocol = args[4];
        partitions = Integer.parseInt(args[2]);
        int members = Integer.parseInt(args[3]);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, "rebalance-" + protocol + "-" + System.nanoTime());
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        List<Member> group = new ArrayList<>();
        List<String> out = new ArrayList<>();
        try {
            for (int i = 0; i < members; i++) {
                group.add(new Member(i, p, topic));
            }
            out.add(step("join", RebalanceProbe::settled));
            Member extra = new Member(members, p, topic);
            group.add(extra);
            out.add(step("grow", () -> extra.owns() && settled()));
            Member leaving = group.remove(0);
            leaving.stop.set(true);
            out.add(step("leave", () -> !leaving.thread.isAlive() && settled()));
            System.out.println("{" + String.join(", ", out) + "}");
        } finally {
            for (Member m : group) {
                m.stop.set(true);
            }
            for (Member m : group) {
                m.thread.join(30_000);
            }
        }
    }
}
