/*
 * rdkafka_perf: drives librdkafka (the C client behind kcat, confluent-kafka and most
 * non-JVM clients) for bench/bench.py's librdkafka cells. librdkafka's own settings stay
 * at their defaults (linger.ms 5, batch.size 1 MB, sticky partitioning for null keys),
 * as kafka-producer-perf-test keeps the Java producer's; -X key=value changes one.
 *
 *   rdkafka_perf produce -b HOST:PORT -t TOPIC -n RECORDS -s SIZE -a ACKS [-X k=v]...
 *   rdkafka_perf consume -b HOST:PORT -t TOPIC -n RECORDS [-X k=v]...
 *
 * produce: RECORDS values of SIZE bytes, null keys, as fast as librdkafka takes them;
 *   timed from the first send to the last delivery report.
 * consume: every partition assigned from the beginning (no group rebalance), timed from
 *   the assignment to the RECORDS-th record.
 * Prints one JSON line: {"records":N,"seconds":S,"records_per_sec":R,"errors":E}.
 * Exits non-zero on a setup error or after 120 s without finishing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define MAX_SECONDS 120.0

static int64_t delivered, failed;
static char last_error[512];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "rdkafka_perf: %s: %s\n", what, why);
    exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die(key, err);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        failed++;
        snprintf(last_error, sizeof(last_error), "%s", rd_kafka_err2str(m->err));
    } else {
        delivered++;
    }
}

static void report(int64_t records, double seconds, int64_t errors) {
    printf("{\"records\":%" PRId64 ",\"seconds\":%.6f,\"records_per_sec\":%.1f,"
           "\"errors\":%" PRId64 "}\n",
           records, seconds, seconds > 0 ? (double)records / seconds : 0.0, errors);
}

static int produce(rd_kafka_conf_t *conf, const char *topic, int64_t n, size_t size) {
    char err[512];
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk)
        die("producer", err);
    char *value = malloc(size ? size : 1);
    if (!value)
        die("malloc", strerror(errno));
    for (size_t i = 0; i < size; i++)
        value[i] = (char)('a' + i % 26);
    double t0 = now_s();
    for (int64_t i = 0; i < n;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(value, size),
            RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 1);
        } else if (e) {
            die("produce", rd_kafka_err2str(e));
        } else {
            i++;
            if ((i & 1023) == 0)
                rd_kafka_poll(rk, 0);
        }
        if (now_s() - t0 > MAX_SECONDS)
            die("produce", "time limit");
    }
    while (delivered + failed < n) {
        rd_kafka_poll(rk, 50);
        if (now_s() - t0 > MAX_SECONDS)
            die("produce", "time limit waiting for delivery reports");
    }
    double secs = now_s() - t0;
    if (failed)
        fprintf(stderr, "rdkafka_perf: %" PRId64 " records failed, last: %s\n", failed,
                last_error);
    report(delivered, secs, failed);
    rd_kafka_destroy(rk);
    free(value);
    return failed ? 1 : 0;
}

static int consume(rd_kafka_conf_t *conf, const char *topic, int64_t n) {
    char err[512];
    char group[64];
    snprintf(group, sizeof(group), "rdkafka-perf-%ld", (long)time(NULL));
    set(conf, "group.id", group);
    set(conf, "enable.auto.commit", "false");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk)
        die("consumer", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    if (e)
        die("metadata", rd_kafka_err2str(e));
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1)
        die("metadata", "topic not found");
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[p].id)
            ->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    double t0 = now_s();
    e = rd_kafka_assign(rk, parts);
    if (e)
        die("assign", rd_kafka_err2str(e));
    int64_t got = 0, errors = 0;
    while (got < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m) {
            if (!m->err)
                got++;
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                errors++;
            rd_kafka_message_destroy(m);
        }
        if (now_s() - t0 > MAX_SECONDS)
            die("consume", "time limit");
    }
    double secs = now_s() - t0;
    report(got, secs, errors);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: rdkafka_perf produce|consume -b BOOTSTRAP -t TOPIC -n RECORDS "
                    "[-s SIZE] [-a ACKS] [-X key=value]...\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2)
        usage();
    const char *mode = argv[1], *bootstrap = NULL, *topic = NULL, *acks = "1";
    int64_t n = 0;
    size_t size = 100;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *flag = argv[i], *v = argv[i + 1];
        if (!strcmp(flag, "-b"))
            bootstrap = v;
        else if (!strcmp(flag, "-t"))
            topic = v;
        else if (!strcmp(flag, "-n"))
            n = strtoll(v, NULL, 10);
        else if (!strcmp(flag, "-s"))
            size = (size_t)strtoull(v, NULL, 10);
        else if (!strcmp(flag, "-a"))
            acks = v;
        else if (!strcmp(flag, "-X")) {
            char key[256];
            const char *eq = strchr(v, '=');
            if (!eq || (size_t)(eq - v) >= sizeof(key))
                usage();
            memcpy(key, v, (size_t)(eq - v));
            key[eq - v] = '\0';
            set(conf, key, eq + 1);
        } else
            usage();
    }
    if (!bootstrap || !topic || n <= 0)
        usage();
    set(conf, "bootstrap.servers", bootstrap);
    if (!strcmp(mode, "produce")) {
        set(conf, "acks", acks);
        return produce(conf, topic, n, size);
    }
    if (!strcmp(mode, "consume"))
        return consume(conf, topic, n);
    usage();
    return 2;
}
