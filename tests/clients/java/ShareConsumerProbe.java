import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.config.ConfigResource;

/**
 * A KIP-932 share consumer for Brook's client tests, with explicit acknowledgements.
 *
 * Usage: ShareConsumerProbe BOOTSTRAP GROUP TOPIC MODE [CONFIG=VALUE...]
 *
 * Modes: accept (ACCEPT every record); release-first (RELEASE a record at its first
 * delivery, ACCEPT it later); release (RELEASE every record, every time); reject-even
 * (REJECT even offsets, ACCEPT odd ones); implicit (run with
 * share.acknowledgement.mode=implicit: each poll accepts the previous one's records,
 * piggy-backed on ShareFetch); hold (take one poll's records, acknowledge
 * nothing, keep the member alive by sleeping); renew (RENEW each record, KIP-1222,
 * until "probe.renew.ms=N" milliseconds after it was first delivered, then ACCEPT it;
 * a renewed record comes back from poll and is printed as "AGAIN partition offset
 * deliveryCount", a renewal as "RENEW partition offset").
 *
 * With "probe.earliest=true" among the configs it first sets the group's
 * share.auto.offset.reset to earliest (IncrementalAlterConfigs on the GROUP resource),
 * so records produced before its first fetch are delivered too.
 *
 * Prints "READY" after its first poll, "POLL n" for each poll that returned n > 0
 * records, then "RECORD partition offset deliveryCount value" for each record
 * delivered; "COMMIT partition error" when an acknowledgement
 * fails; "CLOSED" after a clean close (SIGTERM).
 */
public class ShareConsumerProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], group = args[1], topic = args[2], mode = args[3];
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        props.put("share.acknowledgement.mode", "explicit");
        props.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        props.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        boolean earliest = false;
        long renewMs = 0;
        for (int i = 4; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            if (kv[0].equals("probe.earliest")) {
                earliest = Boolean.parseBoolean(kv[1]);
            } else if (kv[0].equals("probe.renew.ms")) {
                renewMs = Long.parseLong(kv[1]);
            } else {
                props.put(kv[0], kv[1]);
            }
        }
        if (earliest) {
            try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
                ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
                AlterConfigOp op = new AlterConfigOp(
                    new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET);
                admin.incrementalAlterConfigs(Map.of(resource, List.of(op))).all().get();
            }
        }
        AtomicBoolean stop = new AtomicBoolean();
        KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(props);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop.set(true);
            consumer.wakeup();
            try {
                main.join(20_000);
            } catch (InterruptedException e) {
                // exiting anyway
            }
        }));
        consumer.subscribe(List.of(topic));
        boolean ready = false;
        // renew mode: when each (partition, offset, delivery count) was first delivered.
        Map<String, Long> firstSeen = new java.util.HashMap<>();
        try {
            while (!stop.get()) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (!ready) {
                    System.out.println("READY");
                    ready = true;
                }
                if (!records.isEmpty()) {
                    System.out.println("POLL " + records.count());
                }
                boolean renewed = false;
                for (ConsumerRecord<String, String> r : records) {
                    short count = r.deliveryCount().orElse((short) -1);
                    String key = r.partition() + " " + r.offset() + " " + count;
                    Long seen = firstSeen.get(key);
                    if (seen == null) {
                        System.out.println("RECORD " + key + " " + r.value());
                    } else {
                        System.out.println("AGAIN " + key);
                    }
                    AcknowledgeType type;
                    switch (mode) {
                        case "accept": type = AcknowledgeType.ACCEPT; break;
                        case "release": type = AcknowledgeType.RELEASE; break;
                        case "release-first": type = count <= 1 ? AcknowledgeType.RELEASE : AcknowledgeType.ACCEPT; break;
                        case "reject-even": type = r.offset() % 2 == 0 ? AcknowledgeType.REJECT : AcknowledgeType.ACCEPT; break;
                        case "hold": case "implicit": type = null; break;
                        case "renew":
                            long now = System.currentTimeMillis();
                            if (seen == null) {
                                firstSeen.put(key, now);
                                seen = now;
                            }
                            type = now - seen < renewMs ? AcknowledgeType.RENEW : AcknowledgeType.ACCEPT;
                            if (type == AcknowledgeType.RENEW) {
                                System.out.println("RENEW " + r.partition() + " " + r.offset());
                                renewed = true;
                            }
                            break;
                        default: throw new IllegalArgumentException(mode);
                    }
                    if (type != null) {
                        consumer.acknowledge(r, type);
                    }
                }
                System.out.flush();
                if (mode.equals("hold") && !records.isEmpty()) {
                    System.out.println("HOLDING");
                    System.out.flush();
                    while (!stop.get()) {
                        Thread.sleep(100);
                    }
                    return;
                }
                if (!records.isEmpty() && !mode.equals("implicit")) {
                    Map<?, ?> result = consumer.commitSync();
                    result.forEach((tp, error) -> {
                        if (((java.util.Optional<?>) error).isPresent()) {
                            System.out.println("COMMIT " + tp + " " + ((java.util.Optional<?>) error).get());
                        }
                    });
                }
                if (renewed) {
                    // Renew a few times per lock duration rather than in a tight loop.
                    Thread.sleep(500);
                }
            }
        } catch (org.apache.kafka.common.errors.WakeupException e) {
            // shutting down
        } catch (Exception e) {
            System.out.println("ERROR " + e);
            e.printStackTrace();
        } finally {
            if (!mode.equals("hold")) {
                consumer.close(Duration.ofSeconds(10));
                System.out.println("CLOSED");
            }
            System.out.flush();
        }
    }
}
