package brook.streams;

import java.util.Arrays;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The application under test: an exactly_once_v2 word count.
 *
 * <pre>
 *   wc-input (line) -> flatMapValues(split) -> groupBy(word)   [repartition topic APP-words-repartition]
 *                   -> count() in the persistent (RocksDB) store "counts"
 *                                                              [compacted changelog APP-counts-changelog]
 *                   -> wc-output (word -> running count)
 * </pre>
 *
 * The record cache is off, so every increment is written: for each word the output and the
 * changelog carry 1, 2, ... N.
 *
 * Args: bootstrap state-dir. Env: THROTTLE_MS_PER_100_LINES (a sleep per 100 input lines, so
 * that the run is long enough to be killed part-way), STREAM_THREADS, PROCESSING_GUARANTEE
 * (default exactly_once_v2).
 */
public final class WordCountApp {
  public static final String APP_ID = "brook-eos-wordcount";
  public static final String INPUT = "wc-input";
  public static final String OUTPUT = "wc-output";
  public static final String STORE = "counts";
  public static final String CHANGELOG = APP_ID + "-" + STORE + "-changelog";
  public static final String REPARTITION = APP_ID + "-words-repartition";

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String stateDir = args[1];
    long throttleMs = Long.parseLong(System.getenv().getOrDefault("THROTTLE_MS_PER_100_LINES", "0"));
    int threads = Integer.parseInt(System.getenv().getOrDefault("STREAM_THREADS", "1"));

    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, APP_ID);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    // PROCESSING_GUARANTEE=at_least_once is the test's negative control: the crash then shows.
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
        System.getenv().getOrDefault("PROCESSING_GUARANTEE", StreamsConfig.EXACTLY_ONCE_V2));
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
    // No record cache: every count update goes to the changelog and the output, so for each word
    // the committed output must read 1, 2, 3 ... N with no repeat and no gap.
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
    // Purge consumed repartition records (DeleteRecords) every second rather than every 30 s.
    p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 1000);
    // The killed instance's member must leave the (classic) group quickly so that the restarted
    // one gets its tasks without waiting 45 s.
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1500);
    // The whole input is written before the app starts. With the default 1 MiB per partition,
    // the main consumer's first fetch queues all of it ahead of the repartition records, so the
    // counting sub-topology would only start once the input is read. Small fetches interleave
    // the two (the same happens with Apache Kafka; this is client behaviour).
    p.put(StreamsConfig.mainConsumerPrefix(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG), 32 * 1024);
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);

    AtomicLong lines = new AtomicLong();
    StreamsBuilder b = new StreamsBuilder();
    b.stream(INPUT, Consumed.with(Serdes.String(), Serdes.String()))
        .peek((k, v) -> {
          if (throttleMs > 0 && lines.incrementAndGet() % 100 == 0) {
            try {
              Thread.sleep(throttleMs);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
          }
        })
        .flatMapValues(line -> Arrays.asList(line.split(" ")))
        .groupBy((k, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
        .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(STORE)
            .withKeySerde(Serdes.String())
            .withValueSerde(Serdes.Long())
            // Roll the changelog's segments often and clean eagerly, so that the broker's
            // cleaner has closed segments to compact within the test's time.
            .withLoggingEnabled(Map.of("segment.ms", "2000", "min.cleanable.dirty.ratio", "0.01")))
        .toStream()
        .to(OUTPUT, Produced.with(Serdes.String(), Serdes.Long()));

    KafkaStreams streams = new KafkaStreams(b.build(), p);
    CountDownLatch stopped = new CountDownLatch(1);
    int[] exit = {0};
    streams.setStateListener((now, before) -> {
      System.err.println("[app] state " + before + " -> " + now);
      if (now == KafkaStreams.State.ERROR) {
        exit[0] = 2;
        stopped.countDown();
      } else if (now == KafkaStreams.State.NOT_RUNNING) {
        stopped.countDown();
      }
    });
    streams.setUncaughtExceptionHandler(e -> {
      System.err.println("[app] uncaught exception in a stream thread:");
      e.printStackTrace();
      exit[0] = 2;
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      stopped.countDown();
    }));
    streams.start();
    stopped.await();
    streams.close(java.time.Duration.ofSeconds(10));
    System.exit(exit[0]);
  }
}
