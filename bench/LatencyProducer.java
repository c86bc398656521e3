// Produce latency of Kafka's Java producer at a fixed rate, with nanosecond timing.
// Run by bench/latency.py with Java's single-file source launcher (no build step):
//   java -cp 'KAFKA_LIBS/*' bench/LatencyProducer.java BOOTSTRAP TOPIC RATE WARMUP_S MEASURE_S SIZE ACKS [k=v ...]
// Each record is timed from just before send() to its callback (which the producer's I/O
// thread runs as the response arrives) with System.nanoTime. Sends are paced by an absolute
// schedule (record i is due at t0 + i/RATE), so a stall is followed by catching up, not by a
// lower rate; every record's latency is kept and the percentiles are exact. Records sent in
// the warm-up seconds are not recorded (JIT, connection set-up, metadata). Prints one JSON
// line on stdout.
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class LatencyProducer {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        double rate = Double.parseDouble(args[2]);
        double warmup = Double.parseDouble(args[3]), measure = Double.parseDouble(args[4]);
        int size = Integer.parseInt(args[5]);
        String acks = args[6];
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, acks);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        for (int i = 7; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            p.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        long total = (long) Math.ceil(rate * (warmup + measure));
        long firstRecorded = (long) Math.ceil(rate * warmup);
        int n = (int) (total - firstRecorded);
        long[] lat = new long[n];
        Arrays.fill(lat, -1);
        AtomicLong errors = new AtomicLong();
        AtomicLong done = new AtomicLong();
        byte[] value = new byte[size];
        Arrays.fill(value, (byte) 'x');
        long maxLagNs = 0;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.partitionsFor(topic); // metadata before the clock starts
            long t0 = System.nanoTime();
            for (long i = 0; i < total; i++) {
                long due = t0 + (long) (i * 1e9 / rate);
                long now = System.nanoTime();
                while (now < due) {
                    LockSupport.parkNanos(due - now);
                    now = System.nanoTime();
                }
                maxLagNs = i >= firstRecorded ? Math.max(maxLagNs, now - due) : maxLagNs;
                final int slot = (int) (i - firstRecorded);
                final long start = System.nanoTime();
                producer.send(new ProducerRecord<>(topic, null, value), (md, e) -> {
                    long end = System.nanoTime();
                    if (e != null) {
                        errors.incrementAndGet();
                    } else if (slot >= 0) {
                        lat[slot] = end - start;
                    }
                    done.incrementAndGet();
                });
            }
            producer.flush();
        }
        long[] ok = Arrays.stream(lat).filter(x -> x >= 0).sorted().toArray();
        StringBuilder out = new StringBuilder();
        out.append("{\"client\":\"java\",\"count\":").append(ok.length)
           .append(",\"errors\":").append(errors.get())
           .append(",\"max_send_lag_ms\":").append(maxLagNs / 1e6);
        double[] qs = {0.5, 0.9, 0.99, 0.999};
        String[] names = {"p50", "p90", "p99", "p999"};
        for (int i = 0; i < qs.length; i++) {
            out.append(",\"").append(names[i]).append("_ms\":").append(pct(ok, qs[i]) / 1e6);
        }
        out.append(",\"max_ms\":").append(ok.length == 0 ? 0 : ok[ok.length - 1] / 1e6);
        double sum = 0;
        for (long x : ok) sum += x;
        out.append(",\"mean_ms\":").append(ok.length == 0 ? 0 : sum / ok.length / 1e6).append("}");
        System.out.println(out);
    }

    // Nearest-rank percentile: the smallest sample with at least q of all samples at or below it.
    static long pct(long[] sorted, double q) {
        if (sorted.length == 0) return 0;
        int rank = (int) Math.ceil(q * sorted.length);
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))];
    }
}
