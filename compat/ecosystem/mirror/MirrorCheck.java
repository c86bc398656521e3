// Helper of compat/ecosystem/mirror/run.sh (kafka-clients only). One command per run; each
// prints one JSON line on stdout and exits 0 on success, 1 on failure or timeout.
//
//   produce   <bootstrap> <topic> <partitions> <from> <count>
//       creates the topic if missing; record i (from <= i < from+count) has key "k-i",
//       value "rec-%06d", partition i % partitions; idempotent producer, acks=all.
//   commit    <bootstrap> <topic> <group> <count> <timeout_s>
//       a classic group member subscribes, reads from the earliest offset and commits
//       (commitSync) the positions just after the first <count> records it read.
//   records   <bootstrap> <topic> <expected> <timeout_s>
//       waits until the topic exists and holds <expected> records (assign, from the start),
//       checks they are exactly rec-000000 .. rec-<expected-1>, each partition in order.
//   group     <bootstrap> <group> <topic> <timeout_s> [p=offset,... | +N]
//       waits until the group has committed offsets for the topic (and, if given, until they
//       equal the expected ones, or add up to more than N); prints what it found.
//   topics    <bootstrap>
//       lists the topics.
//   set-config <bootstrap> <topic> <name> <value>
//       IncrementalAlterConfigs SET on the topic.
//   config    <bootstrap> <topic> <name> <timeout_s> [value]
//       waits until the topic exists (and, if given, its config <name> has <value>); prints
//       the value and its source.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class MirrorCheck {
  static String q(String s) {
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
  }

  static void out(boolean ok, String json) {
    System.out.println(json);
    System.out.flush();
    System.exit(ok ? 0 : 1);
  }

  static Properties admin(String boot) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    return p;
  }

  static String offsetsJson(Map<TopicPartition, Long> m) {
    return new TreeMap<>(m.entrySet().stream().collect(Collectors.toMap(e -> e.getKey().partition(), Map.Entry::getValue)))
        .entrySet().stream().map(e -> q(String.valueOf(e.getKey())) + ":" + e.getValue()).collect(Collectors.joining(",", "{", "}"));
  }

  public static void main(String[] a) throws Exception {
    try {
      switch (a[0]) {
        case "produce" -> produce(a[1], a[2], Integer.parseInt(a[3]), Integer.parseInt(a[4]), Integer.parseInt(a[5]));
        case "commit" -> commit(a[1], a[2], a[3], Integer.parseInt(a[4]), Integer.parseInt(a[5]));
        case "records" -> records(a[1], a[2], Integer.parseInt(a[3]), Integer.parseInt(a[4]));
        case "group" -> group(a[1], a[2], a[3], Integer.parseInt(a[4]), a.length > 5 ? a[5] : "");
        case "topics" -> {
          try (Admin ad = Admin.create(admin(a[1]))) {
            Set<String> names = new TreeSet<>(ad.listTopics(new ListTopicsOptions().listInternal(true)).names().get(20, TimeUnit.SECONDS));
            out(true, "{\"topics\":" + names.stream().map(MirrorCheck::q).collect(Collectors.joining(",", "[", "]")) + "}");
          }
        }
        case "set-config" -> {
          try (Admin ad = Admin.create(admin(a[1]))) {
            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, a[2]);
            ad.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(new ConfigEntry(a[3], a[4]), AlterConfigOp.OpType.SET))))
                .all().get(20, TimeUnit.SECONDS);
            out(true, "{\"set\":" + q(a[3] + "=" + a[4]) + "}");
          }
        }
        case "config" -> config(a[1], a[2], a[3], Integer.parseInt(a[4]), a.length > 5 ? a[5] : null);
        default -> out(false, "{\"error\":" + q("unknown command " + a[0]) + "}");
      }
    } catch (Exception e) {
      e.printStackTrace();
      out(false, "{\"error\":" + q(e.toString()) + "}");
    }
  }

  static void produce(String boot, String topic, int parts, int from, int count) throws Exception {
    try (Admin ad = Admin.create(admin(boot))) {
      try {
        ad.createTopics(List.of(new NewTopic(topic, parts, (short) 1))).all().get(20, TimeUnit.SECONDS);
      } catch (java.util.concurrent.ExecutionException e) {
        if (!(e.getCause() instanceof TopicExistsException)) throw e;
      }
    }
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    try (KafkaProducer<String, String> pr = new KafkaProducer<>(p)) {
      List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
      for (int i = from; i < from + count; i++) {
        fs.add(pr.send(new ProducerRecord<>(topic, i % parts, "k-" + i, String.format("rec-%06d", i))));
      }
      pr.flush();
      for (var f : fs) f.get(30, TimeUnit.SECONDS);
    }
    out(true, "{\"produced\":" + count + ",\"from\":" + from + "}");
  }

  static KafkaConsumer<String, String> consumer(String boot, String group) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
    if (group != null) p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    return new KafkaConsumer<>(p);
  }

  static void commit(String boot, String topic, String group, int count, int timeoutS) throws Exception {
    long deadline = System.currentTimeMillis() + timeoutS * 1000L;
    Map<TopicPartition, Long> next = new HashMap<>();
    int n = 0;
    try (KafkaConsumer<String, String> c = consumer(boot, group)) {
      c.subscribe(List.of(topic));
      while (n < count && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
          if (n == count) break;
          next.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
          n++;
        }
      }
      if (n < count) out(false, "{\"error\":\"read only " + n + " of " + count + " records\"}");
      Map<TopicPartition, OffsetAndMetadata> m = new HashMap<>();
      next.forEach((tp, o) -> m.put(tp, new OffsetAndMetadata(o)));
      c.commitSync(m, Duration.ofSeconds(15));
    }
    out(true, "{\"committed\":" + offsetsJson(next) + ",\"records\":" + n + "}");
  }

  static void records(String boot, String topic, int expected, int timeoutS) throws Exception {
    long deadline = System.currentTimeMillis() + timeoutS * 1000L;
    List<TopicPartition> tps = List.of();
    try (Admin ad = Admin.create(admin(boot))) {
      while (System.currentTimeMillis() < deadline) {
        try {
          TopicDescription d = ad.describeTopics(List.of(topic)).allTopicNames().get(10, TimeUnit.SECONDS).get(topic);
          tps = d.partitions().stream().map(i -> new TopicPartition(topic, i.partition())).collect(Collectors.toList());
          break;
        } catch (Exception e) {
          Thread.sleep(500);
        }
      }
    }
    if (tps.isEmpty()) out(false, "{\"error\":" + q("topic " + topic + " does not exist") + "}");
    Set<String> seen = new HashSet<>();
    int total = 0, dups = 0, outOfOrder = 0;
    Map<Integer, Integer> lastIdx = new HashMap<>();
    Map<TopicPartition, Long> pos = new HashMap<>();
    try (KafkaConsumer<String, String> c = consumer(boot, null)) {
      c.assign(tps);
      c.seekToBeginning(tps);
      while (seen.size() < expected && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
          total++;
          if (!seen.add(r.value())) dups++;
          int idx = Integer.parseInt(r.value().substring(4));
          Integer prev = lastIdx.put(r.partition(), idx);
          if (prev != null && prev >= idx) outOfOrder++;
          pos.put(new TopicPartition(topic, r.partition()), r.offset() + 1);
        }
      }
      // anything beyond the expected records?
      for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(300))) {
        total++;
        if (!seen.add(r.value())) dups++;
      }
    }
    List<String> missing = new ArrayList<>();
    for (int i = 0; i < expected && missing.size() < 3; i++) {
      if (!seen.contains(String.format("rec-%06d", i))) missing.add(String.format("rec-%06d", i));
    }
    int extra = (int) seen.stream().filter(v -> !v.matches("rec-\\d{6}") || Integer.parseInt(v.substring(4)) >= expected).count();
    boolean ok = seen.size() == expected && missing.isEmpty() && extra == 0 && outOfOrder == 0;
    out(ok, "{\"records\":" + total + ",\"distinct\":" + seen.size() + ",\"expected\":" + expected + ",\"duplicates\":" + dups
        + ",\"extra\":" + extra + ",\"out_of_order\":" + outOfOrder + ",\"missing_first\":"
        + missing.stream().map(MirrorCheck::q).collect(Collectors.joining(",", "[", "]"))
        + ",\"end_offsets\":" + offsetsJson(pos) + "}");
  }

  static void config(String boot, String topic, String name, int timeoutS, String want) throws Exception {
    long deadline = System.currentTimeMillis() + timeoutS * 1000L;
    String last = "", err = "";
    try (Admin ad = Admin.create(admin(boot))) {
      ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      while (true) {
        try {
          ConfigEntry e = ad.describeConfigs(List.of(r)).all().get(10, TimeUnit.SECONDS).get(r).get(name);
          last = e == null ? "<absent>" : e.value() + " (" + e.source() + ")";
          if (e != null && (want == null || want.equals(e.value()))) {
            out(true, "{\"topic\":" + q(topic) + ",\"" + name + "\":" + q(last) + "}");
          }
        } catch (Exception e) {
          err = e.toString();
        }
        if (System.currentTimeMillis() > deadline) break;
        Thread.sleep(500);
      }
    }
    out(false, "{\"topic\":" + q(topic) + ",\"" + name + "\":" + q(last) + ",\"error\":" + q(err.isEmpty() ? "timed out" : err) + "}");
  }

  static void group(String boot, String group, String topic, int timeoutS, String expect) throws Exception {
    Map<Integer, Long> want = new TreeMap<>();
    long moreThan = -1; // "+N": until the offsets add up to more than N
    if (expect.startsWith("+")) {
      moreThan = Long.parseLong(expect.substring(1));
    } else if (!expect.isEmpty()) {
      for (String kv : expect.split(",")) {
        String[] x = kv.split("=");
        want.put(Integer.parseInt(x[0]), Long.parseLong(x[1]));
      }
    }
    long deadline = System.currentTimeMillis() + timeoutS * 1000L;
    Map<TopicPartition, Long> got = new HashMap<>();
    String err = "";
    try (Admin ad = Admin.create(admin(boot))) {
      while (true) {
        try {
          Map<TopicPartition, OffsetAndMetadata> m =
              ad.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(10, TimeUnit.SECONDS);
          got.clear();
          m.forEach((tp, o) -> { if (tp.topic().equals(topic) && o != null) got.put(tp, o.offset()); });
          Map<Integer, Long> byP = new TreeMap<>();
          got.forEach((tp, o) -> byP.put(tp.partition(), o));
          long sum = got.values().stream().mapToLong(Long::longValue).sum();
          if (!got.isEmpty() && (want.isEmpty() || byP.equals(want)) && sum > moreThan) {
            out(true, "{\"group\":" + q(group) + ",\"offsets\":" + offsetsJson(got) + "}");
          }
        } catch (Exception e) {
          err = e.toString();
        }
        if (System.currentTimeMillis() > deadline) break;
        Thread.sleep(500);
      }
    }
    out(false, "{\"group\":" + q(group) + ",\"offsets\":" + offsetsJson(got) + ",\"error\":" + q(err.isEmpty() ? "timed out" : err) + "}");
  }
}
