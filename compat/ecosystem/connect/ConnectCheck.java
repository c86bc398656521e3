// Helper of compat/ecosystem/connect/run.sh (kafka-clients only), run as a single-file source
// program: java -cp 'jars/*' ConnectCheck.java <command> <bootstrap> ...
//
//   configs <bootstrap> <topic>...
//       one line per topic: "<topic> partitions=<n> cleanup.policy=<value> (<source>)", read
//       with the Admin client (DescribeTopicPartitions/Metadata + DescribeConfigs), or
//       "<topic> MISSING <exception>"; exit 1 if any is missing.
//   records <bootstrap> <topic>
//       reads the topic from the start to its end (read_committed, so up to the last stable
//       offset) and prints one JSON line: records, distinct values, duplicated values, and the
//       duplicated values' first/last.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;

public class ConnectCheck {
  public static void main(String[] args) throws Exception {
    switch (args[0]) {
      case "configs" -> configs(args[1], Arrays.copyOfRange(args, 2, args.length));
      case "records" -> records(args[1], args[2]);
      default -> { System.out.println("unknown command " + args[0]); System.exit(2); }
    }
  }

  static Properties admin(String boot) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    return p;
  }

  static void configs(String boot, String[] topics) throws Exception {
    int bad = 0;
    try (Admin admin = Admin.create(admin(boot))) {
      for (String t : topics) {
        try {
          TopicDescription d = admin.describeTopics(List.of(t)).allTopicNames().get(20, TimeUnit.SECONDS).get(t);
          ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
          Map<ConfigResource, Config> cs = admin.describeConfigs(List.of(r)).all().get(20, TimeUnit.SECONDS);
          ConfigEntry e = cs.get(r).get("cleanup.policy");
          System.out.println(t + " partitions=" + d.partitions().size() + " cleanup.policy="
              + (e == null ? "<absent>" : e.value() + " (" + e.source() + ")"));
        } catch (Exception e) {
          bad++;
          System.out.println(t + " MISSING " + e);
        }
      }
    }
    System.exit(bad == 0 ? 0 : 1);
  }

  static void records(String boot, String topic) throws Exception {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    Map<String, Integer> counts = new LinkedHashMap<>();
    int n = 0;
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
      List<TopicPartition> tps = c.partitionsFor(topic, Duration.ofSeconds(20)).stream()
          .map(i -> new TopicPartition(topic, i.partition())).collect(Collectors.toList());
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(20)); // LSO under read_committed
      long deadline = System.currentTimeMillis() + 60_000;
      while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp)) && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
          n++;
          counts.merge(r.value(), 1, Integer::sum);
        }
      }
    }
    List<String> dup = counts.entrySet().stream().filter(e -> e.getValue() > 1).map(Map.Entry::getKey).collect(Collectors.toList());
    int dups = n - counts.size();
    System.out.println("{\"records\":" + n + ",\"distinct\":" + counts.size() + ",\"duplicates\":" + dups
        + ",\"first_duplicate\":" + (dup.isEmpty() ? "null" : q(dup.get(0)))
        + ",\"last_duplicate\":" + (dup.isEmpty() ? "null" : q(dup.get(dup.size() - 1))) + "}");
  }

  static String q(String s) {
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }
}
