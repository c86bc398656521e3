// Kafka's Java Admin share group offset calls, one per run, for
// tests/clients/test_share_groups.py. Run with Java's source launcher:
//
//   java -cp 'jars/*' ShareOffsetsAdmin.java BOOTSTRAP list GROUP [TOPIC:PARTITION ...]
//   java -cp 'jars/*' ShareOffsetsAdmin.java BOOTSTRAP alter GROUP TOPIC:PARTITION=OFFSET ...
//   java -cp 'jars/*' ShareOffsetsAdmin.java BOOTSTRAP delete GROUP TOPIC ...
//
// Prints `OFFSET topic partition start leaderEpoch lag` per partition (`-` for an
// absent value, `OFFSET topic partition none` where the group has no start offset),
// `PARTITION topic partition OK|<exception>` / `TOPIC topic OK|<exception>` for alter
// and delete, then `OK` or `ERROR <exception class>` for the whole call. The client
// properties file named by $ADMIN_PROPERTIES, if set, is added to the Admin's config
// (security settings).

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterShareGroupOffsetsResult;
import org.apache.kafka.clients.admin.DeleteShareGroupOffsetsResult;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;

public class ShareOffsetsAdmin {
    static TopicPartition tp(String s) {
        int colon = s.lastIndexOf(':');
        return new TopicPartition(s.substring(0, colon), Integer.parseInt(s.substring(colon + 1)));
    }

    static String outcome(KafkaFuture<?> f) throws InterruptedException {
        try {
            f.get();
            return "OK";
        } catch (ExecutionException e) {
            return e.getCause().getClass().getSimpleName();
        }
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        String extra = System.getenv("ADMIN_PROPERTIES");
        if (extra != null) {
            try (java.io.Reader r = java.nio.file.Files.newBufferedReader(java.nio.file.Path.of(extra))) {
                props.load(r);
            }
        }
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        String op = args[1];
        String group = args[2];
        List<String> rest = List.of(args).subList(3, args.length);
        try (Admin admin = Admin.create(props)) {
            try {
                switch (op) {
                    case "list" -> {
                        ListShareGroupOffsetsSpec spec = new ListShareGroupOffsetsSpec();
                        if (!rest.isEmpty()) {
                            spec.topicPartitions(rest.stream().map(ShareOffsetsAdmin::tp).toList());
                        }
                        Map<TopicPartition, SharePartitionOffsetInfo> got = admin
                            .listShareGroupOffsets(Map.of(group, spec))
                            .partitionsToOffsetInfo(group).get();
                        Map<String, SharePartitionOffsetInfo> sorted = new TreeMap<>();
                        got.forEach((k, v) -> sorted.put(k.topic() + " " + k.partition(), v));
                        sorted.forEach((k, v) -> {
                            if (v == null) {
                                System.out.println("OFFSET " + k + " none");
                            } else {
                                System.out.println("OFFSET " + k + " " + v.startOffset() + " "
                                    + v.leaderEpoch().map(String::valueOf).orElse("-") + " "
                                    + v.lag().map(String::valueOf).orElse("-"));
                            }
                        });
                    }
                    case "alter" -> {
                        Map<TopicPartition, Long> offsets = new HashMap<>();
                        for (String a : rest) {
                            String[] kv = a.split("=");
                            offsets.put(tp(kv[0]), Long.parseLong(kv[1]));
                        }
                        AlterShareGroupOffsetsResult r = admin.alterShareGroupOffsets(group, offsets);
                        for (TopicPartition p : new TreeMap<>(Map.copyOf(offsets.keySet().stream()
                                .collect(java.util.stream.Collectors.toMap(TopicPartition::toString, x -> x)))).values()) {
                            System.out.println("PARTITION " + p.topic() + " " + p.partition() + " "
                                + outcome(r.partitionResult(p)));
                        }
                        r.all().get();
                    }
                    case "delete" -> {
                        Set<String> topics = new HashSet<>(rest);
                        DeleteShareGroupOffsetsResult r = admin.deleteShareGroupOffsets(group, topics);
                        for (String t : new TreeMap<>(Map.copyOf(
                                topics.stream().collect(java.util.stream.Collectors.toMap(x -> x, x -> x)))).keySet()) {
                            System.out.println("TOPIC " + t + " " + outcome(r.topicResult(t)));
                        }
                        r.all().get();
                    }
                    default -> throw new IllegalArgumentException("unknown operation " + op);
                }
                System.out.println("OK");
            } catch (ExecutionException e) {
                System.out.println("ERROR " + e.getCause().getClass().getSimpleName() + " "
                    + e.getCause().getMessage());
            }
        }
    }
}
