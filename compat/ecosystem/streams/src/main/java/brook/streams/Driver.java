package brook.streams;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The test's driver, a plain Kafka client next to the Streams app. Each command prints progress
 * on stderr and one JSON object on stdout; exit 0 when its check holds.
 *
 * <pre>
 *   produce BOOTSTRAP LINES                       create wc-input/wc-output (3 partitions each),
 *                                                 write LINES deterministic lines (idempotent)
 *   wait-progress BOOTSTRAP MIN MAX TIMEOUT_S     until the app's group has committed between MIN
 *                                                 and MAX of the input and wc-output has committed
 *                                                 records (exit 3: already past MAX)
 *   verify BOOTSTRAP LINES TIMEOUT_S SETTLE_S     read wc-output read_committed until every word's
 *                                                 latest count is exact and the input is all
 *                                                 committed, then SETTLE_S more: nothing may change;
 *                                                 each word's updates must be 1, 2, ... N
 *   changelog BOOTSTRAP LINES                     DescribeConfigs + content of the changelog topic
 * </pre>
 */
public final class Driver {
  static final int PARTITIONS = 3;
  static final int VOCAB = 120;

  public static void main(String[] args) throws Exception {
    String cmd = args[0];
    String bootstrap = args[1];
    int rc;
    switch (cmd) {
      case "produce" -> rc = produce(bootstrap, Integer.parseInt(args[2]));
      case "wait-progress" -> rc = waitProgress(bootstrap, Double.parseDouble(args[2]),
          Double.parseDouble(args[3]), Integer.parseInt(args[4]));
      case "verify" -> rc = verify(bootstrap, Integer.parseInt(args[2]), Integer.parseInt(args[3]),
          Integer.parseInt(args[4]));
      case "changelog" -> rc = changelog(bootstrap, Integer.parseInt(args[2]));
      default -> throw new IllegalArgumentException("unknown command " + cmd);
    }
    System.exit(rc);
  }

  // ---- the input ------------------------------------------------------------------------

  /** Line i of the input: 1 to 8 words of a skewed 120-word vocabulary, from a fixed seed. */
  static List<String> lines(int n) {
    Random r = new Random(20261205L);
    List<String> out = new ArrayList<>(n);
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < n; i++) {
      sb.setLength(0);
      int k = 1 + r.nextInt(8);
      for (int j = 0; j < k; j++) {
        int idx = (int) (VOCAB * Math.pow(r.nextDouble(), 2));
        if (j > 0) sb.append(' ');
        sb.append(String.format(Locale.ROOT, "w%03d", idx));
      }
      out.add(sb.toString());
    }
    return out;
  }

  static Map<String, Long> expected(int n) {
    Map<String, Long> m = new TreeMap<>();
    for (String line : lines(n)) {
      for (String w : line.split(" ")) m.merge(w, 1L, Long::sum);
    }
    return m;
  }

  static int produce(String bootstrap, int n) throws Exception {
    try (Admin admin = admin(bootstrap)) {
      admin.createTopics(List.of(
          new NewTopic(WordCountApp.INPUT, PARTITIONS, (short) 1),
          new NewTopic(WordCountApp.OUTPUT, PARTITIONS, (short) 1))).all().get();
    }
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    List<String> ls = lines(n);
    long words = 0;
    try (KafkaProducer<String, String> prod = new KafkaProducer<>(p)) {
      for (int i = 0; i < n; i++) {
        words += ls.get(i).split(" ").length;
        prod.send(new ProducerRecord<>(WordCountApp.INPUT, "line-" + i, ls.get(i)));
      }
      prod.flush();
    }
    Map<TopicPartition, Long> ends;
    try (Admin admin = admin(bootstrap)) {
      ends = endOffsets(admin, WordCountApp.INPUT, IsolationLevel.READ_UNCOMMITTED);
    }
    long total = ends.values().stream().mapToLong(Long::longValue).sum();
    log("produced %d lines (%d words, %d distinct) to %s; end offsets %s", n, words,
        expected(n).size(), WordCountApp.INPUT, ends);
    System.out.printf("{\"lines\": %d, \"words\": %d, \"input_end\": %d}%n", n, words, total);
    return total == n ? 0 : 1;
  }

  // ---- progress -------------------------------------------------------------------------

  static int waitProgress(String bootstrap, double min, double max, int timeoutS) throws Exception {
    long deadline = System.currentTimeMillis() + timeoutS * 1000L;
    try (Admin admin = admin(bootstrap)) {
      Map<TopicPartition, Long> inEnd = endOffsets(admin, WordCountApp.INPUT, IsolationLevel.READ_UNCOMMITTED);
      long total = inEnd.values().stream().mapToLong(Long::longValue).sum();
      long lastLog = 0;
      while (System.currentTimeMillis() < deadline) {
        long committed = committedInput(admin);
        long outCommitted = endOffsets(admin, WordCountApp.OUTPUT, IsolationLevel.READ_COMMITTED)
            .values().stream().mapToLong(Long::longValue).sum();
        double frac = total == 0 ? 0 : (double) committed / total;
        if (System.currentTimeMillis() - lastLog > 1000) {
          log("app committed %d/%d input records (%.0f%%), wc-output last stable offsets sum %d; %s",
              committed, total, frac * 100, outCommitted, repartitionProgress(admin));
          lastLog = System.currentTimeMillis();
        }
        if (frac > max) {
          log("too late: %.0f%% of the input already committed", frac * 100);
          System.out.printf("{\"committed\": %d, \"total\": %d, \"output_lso\": %d}%n", committed, total, outCommitted);
          return 3;
        }
        if (frac >= min && outCommitted > 0) {
          log("app committed %d/%d input records (%.0f%%), wc-output last stable offsets sum %d",
              committed, total, frac * 100, outCommitted);
          System.out.printf("{\"committed\": %d, \"total\": %d, \"output_lso\": %d}%n", committed, total, outCommitted);
          return 0;
        }
        Thread.sleep(100);
      }
      log("timed out after %d s waiting for the app to commit %.0f%% of the input", timeoutS, min * 100);
      System.out.printf("{\"committed\": %d, \"total\": %d}%n", committedInput(admin), total);
      return 1;
    }
  }

  /** The repartition topic's end offsets, last stable offsets and the app's committed offsets. */
  static String repartitionProgress(Admin admin) {
    try {
      Map<TopicPartition, OffsetAndMetadata> offs =
          admin.listConsumerGroupOffsets(WordCountApp.APP_ID).partitionsToOffsetAndMetadata().get();
      long committed = 0;
      for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offs.entrySet()) {
        if (e.getKey().topic().equals(WordCountApp.REPARTITION) && e.getValue() != null) committed += e.getValue().offset();
      }
      long hw = endOffsets(admin, WordCountApp.REPARTITION, IsolationLevel.READ_UNCOMMITTED).values().stream()
          .mapToLong(Long::longValue).sum();
      long lso = endOffsets(admin, WordCountApp.REPARTITION, IsolationLevel.READ_COMMITTED).values().stream()
          .mapToLong(Long::longValue).sum();
      return String.format(Locale.ROOT, "repartition end %d, stable %d, committed %d", hw, lso, committed);
    } catch (Exception e) {
      return "repartition topic not there yet";
    }
  }

  /** Sum of the app group's committed offsets on the input topic (0 for none). */
  static long committedInput(Admin admin) throws Exception {
    Map<TopicPartition, OffsetAndMetadata> offs =
        admin.listConsumerGroupOffsets(WordCountApp.APP_ID).partitionsToOffsetAndMetadata().get();
    long sum = 0;
    for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offs.entrySet()) {
      if (e.getKey().topic().equals(WordCountApp.INPUT) && e.getValue() != null) sum += e.getValue().offset();
    }
    return sum;
  }

  // ---- verify ---------------------------------------------------------------------------

  static int verify(String bootstrap, int n, int timeoutS, int settleS) throws Exception {
    Map<String, Long> want = expected(n);
    long deadline = System.currentTimeMillis() + timeoutS * 1000L;
    Map<String, Long> latest = new HashMap<>();
    long records = 0;
    long repeated = 0;
    long gaps = 0;
    long overCount = 0;
    List<String> samples = new ArrayList<>();
    long settledAt = -1;
    long recordsAtSettle = -1;
    long lastRecordAt = System.currentTimeMillis();
    long lastLog = 0;
    String result;
    try (Admin admin = admin(bootstrap);
         KafkaConsumer<String, Long> c = new KafkaConsumer<>(consumerProps(bootstrap, "read_committed"),
             new StringDeserializer(), new LongDeserializer())) {
      List<TopicPartition> tps = partitions(admin, WordCountApp.OUTPUT);
      Map<TopicPartition, Long> inEnd = endOffsets(admin, WordCountApp.INPUT, IsolationLevel.READ_UNCOMMITTED);
      long inTotal = inEnd.values().stream().mapToLong(Long::longValue).sum();
      c.assign(tps);
      c.seekToBeginning(tps);
      long lastCheck = 0;
      while (true) {
        for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
          records++;
          lastRecordAt = System.currentTimeMillis();
          // No record cache in the app: a word's committed updates must be exactly 1, 2, ... N.
          Long prev = latest.put(r.key(), r.value());
          long before = prev == null ? 0 : prev;
          if (r.value() <= before) {
            repeated++;
            if (samples.size() < 5) samples.add(String.format("repeat %s: %d after %d at %s-%d@%d", r.key(), r.value(),
                before, r.topic(), r.partition(), r.offset()));
          } else if (r.value() != before + 1) {
            gaps++;
            if (samples.size() < 5) samples.add(String.format("gap %s: %d after %d at %s-%d@%d", r.key(), r.value(),
                before, r.topic(), r.partition(), r.offset()));
          }
          Long w = want.get(r.key());
          if (w == null || r.value() > w) {
            overCount++;
            if (samples.size() < 5) samples.add(String.format("%s: %d > expected %s at %s-%d@%d", r.key(), r.value(), w,
                r.topic(), r.partition(), r.offset()));
          }
        }
        long now = System.currentTimeMillis();
        if (now - lastCheck < 500) continue;
        lastCheck = now;
        long committed = committedInput(admin);
        boolean exact = latest.equals(want);
        if (now - lastLog > 3000) {
          log("read %d committed output records; %d/%d words exact; app committed %d/%d input records",
              records, want.entrySet().stream().filter(e -> e.getValue().equals(latest.get(e.getKey()))).count(),
              want.size(), committed, inTotal);
          lastLog = now;
        }
        if (settledAt < 0 && exact && committed == inTotal) {
          settledAt = now;
          recordsAtSettle = records;
          log("all %d words exact after %d committed output records; watching %d s more for late updates",
              want.size(), records, settleS);
        }
        if (settledAt >= 0 && now - settledAt >= settleS * 1000L) {
          break;
        }
        if (now > deadline) {
          break;
        }
        // A repeat, a gap or a count over the expected one is already a failure: stop once the
        // output has been quiet for 3 s (all of it read) rather than waiting for the deadline.
        if (repeated + gaps + overCount > 0 && committed == inTotal && now - lastRecordAt > 3000) {
          log("EOS violation seen; the output is quiet, stopping");
          break;
        }
      }
      boolean exact = latest.equals(want);
      List<String> wrong = new ArrayList<>();
      for (Map.Entry<String, Long> e : want.entrySet()) {
        Long got = latest.get(e.getKey());
        if (!e.getValue().equals(got)) wrong.add(e.getKey() + "=" + got + " (want " + e.getValue() + ")");
      }
      // The same output read_uncommitted: what the crash left behind in aborted transactions.
      long uncommitted = countAll(bootstrap, WordCountApp.OUTPUT, "read_uncommitted", tps);
      Map<TopicPartition, Long> hw = endOffsets(admin, WordCountApp.OUTPUT, IsolationLevel.READ_UNCOMMITTED);
      long late = recordsAtSettle < 0 ? 0 : records - recordsAtSettle;
      boolean ok = settledAt >= 0 && exact && repeated == 0 && gaps == 0 && overCount == 0 && late == 0;
      log("read_committed: %d records, read_uncommitted: %d records (%d only in aborted transactions), "
          + "output end offsets %s", records, uncommitted, uncommitted - records, hw);
      if (!wrong.isEmpty()) log("wrong final counts (%d): %s", wrong.size(), wrong.stream().limit(10).collect(Collectors.joining(", ")));
      if (!samples.isEmpty()) log("anomalies: %s", samples);
      result = String.format(Locale.ROOT,
          "{\"ok\": %s, \"words\": %d, \"words_wrong\": %d, \"committed_records\": %d, \"uncommitted_records\": %d, "
              + "\"aborted_visible_to_read_uncommitted\": %d, \"repeated\": %d, \"gaps\": %d, \"over_expected\": %d, "
              + "\"updates_after_settle\": %d, \"settled\": %s, \"input_committed\": %d, \"input_total\": %d, "
              + "\"first_wrong\": %s}",
          ok, want.size(), wrong.size(), records, uncommitted, uncommitted - records, repeated, gaps, overCount,
          late, settledAt >= 0, committedInput(admin), inTotal,
          json(wrong.isEmpty() ? (samples.isEmpty() ? "" : samples.get(0)) : wrong.get(0)));
      System.out.println(result);
      return ok ? 0 : 1;
    }
  }

  /** Records from the beginning up to the end offsets (high watermark) at the time of the call. */
  static long countAll(String bootstrap, String topic, String isolation, List<TopicPartition> tps) {
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(bootstrap, isolation),
        new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps);
      long n = 0;
      long deadline = System.currentTimeMillis() + 30_000;
      while (System.currentTimeMillis() < deadline) {
        boolean done = true;
        for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) done = false;
        if (done) break;
        n += c.poll(Duration.ofMillis(200)).count();
      }
      return n;
    }
  }

  // ---- the changelog --------------------------------------------------------------------

  static int changelog(String bootstrap, int n) throws Exception {
    Map<String, Long> want = expected(n);
    String topic = WordCountApp.CHANGELOG;
    try (Admin admin = admin(bootstrap)) {
      ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
      String policy = cfg.get("cleanup.policy") == null ? null : cfg.get("cleanup.policy").value();
      String segMs = cfg.get("segment.ms") == null ? null : cfg.get("segment.ms").value();
      String ratio = cfg.get("min.cleanable.dirty.ratio") == null ? null : cfg.get("min.cleanable.dirty.ratio").value();
      log("DescribeConfigs %s: cleanup.policy=%s segment.ms=%s min.cleanable.dirty.ratio=%s", topic, policy, segMs, ratio);
      List<TopicPartition> tps = partitions(admin, topic);
      Map<TopicPartition, Long> start = offsets(admin, tps, OffsetSpec.earliest(), IsolationLevel.READ_UNCOMMITTED);
      Map<TopicPartition, Long> end = offsets(admin, tps, OffsetSpec.latest(), IsolationLevel.READ_UNCOMMITTED);
      // What the store would be restored from: the changelog read_committed, last value per key.
      Map<String, Long> last = new HashMap<>();
      Set<String> keys = new HashSet<>();
      long records = 0;
      try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(consumerProps(bootstrap, "read_committed"),
          new StringDeserializer(), new LongDeserializer())) {
        c.assign(tps);
        c.seekToBeginning(tps);
        long deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline) {
          boolean done = true;
          for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) done = false;
          if (done) break;
          for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
            records++;
            keys.add(r.key());
            last.put(r.key(), r.value());
          }
        }
      }
      long endSum = end.values().stream().mapToLong(Long::longValue).sum();
      boolean contentOk = last.equals(want);
      // The repartition topic: Streams purges what it has consumed with DeleteRecords.
      List<TopicPartition> rtps = partitions(admin, WordCountApp.REPARTITION);
      Map<TopicPartition, Long> rStart = offsets(admin, rtps, OffsetSpec.earliest(), IsolationLevel.READ_UNCOMMITTED);
      Map<TopicPartition, Long> rEnd = offsets(admin, rtps, OffsetSpec.latest(), IsolationLevel.READ_UNCOMMITTED);
      log("changelog %s: %d partitions, offsets %s..%s, %d committed records readable for %d keys; "
          + "latest value per key %s the expected counts", topic, tps.size(), start, end, records, keys.size(),
          contentOk ? "equals" : "DIFFERS FROM");
      log("repartition %s: start offsets %s, end offsets %s", WordCountApp.REPARTITION, rStart, rEnd);
      boolean ok = "compact".equals(policy) && contentOk;
      System.out.printf(Locale.ROOT,
          "{\"ok\": %s, \"cleanup_policy\": %s, \"segment_ms\": %s, \"partitions\": %d, \"end_offset_sum\": %d, "
              + "\"readable_records\": %d, \"keys\": %d, \"latest_values_exact\": %s, "
              + "\"repartition_start_sum\": %d, \"repartition_end_sum\": %d}%n",
          ok, json(policy), json(segMs), tps.size(), endSum, records, keys.size(), contentOk,
          rStart.values().stream().mapToLong(Long::longValue).sum(),
          rEnd.values().stream().mapToLong(Long::longValue).sum());
      return ok ? 0 : 1;
    }
  }

  // ---- helpers --------------------------------------------------------------------------

  static Admin admin(String bootstrap) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20_000);
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    return Admin.create(p);
  }

  static Properties consumerProps(String bootstrap, String isolation) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    return p;
  }

  static List<TopicPartition> partitions(Admin admin, String topic) throws Exception {
    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
    List<TopicPartition> out = new ArrayList<>();
    d.partitions().forEach(p -> out.add(new TopicPartition(topic, p.partition())));
    return out;
  }

  static Map<TopicPartition, Long> endOffsets(Admin admin, String topic, IsolationLevel iso) throws Exception {
    return offsets(admin, partitions(admin, topic), OffsetSpec.latest(), iso);
  }

  static Map<TopicPartition, Long> offsets(Admin admin, List<TopicPartition> tps, OffsetSpec spec, IsolationLevel iso)
      throws ExecutionException, InterruptedException {
    Map<TopicPartition, OffsetSpec> req = new HashMap<>();
    for (TopicPartition tp : tps) req.put(tp, spec);
    Map<TopicPartition, Long> out = new TreeMap<>((a, b) -> Integer.compare(a.partition(), b.partition()));
    admin.listOffsets(req, new ListOffsetsOptions(iso)).all().get().forEach((tp, info) -> out.put(tp, info.offset()));
    return out;
  }

  static String json(String s) {
    if (s == null) return "null";
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  static void log(String fmt, Object... args) {
    System.err.println("[driver] " + String.format(Locale.ROOT, fmt, args));
  }
}
