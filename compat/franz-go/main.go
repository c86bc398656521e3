// Brook compatibility scenarios driven by franz-go (kgo + kadm, pinned in go.mod).
//
//	go build -o compat-franz-go . && ./compat-franz-go 127.0.0.1:9092
//
// Prints one line per scenario: `RESULT {"scenario":..,"status":"pass|fail","detail":..}`;
// compat/run.sh collects those lines.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const scenarioTimeout = 45 * time.Second

var (
	bootstrap = "127.0.0.1:9092"
	run       = strconv.FormatInt(time.Now().UnixMilli()%1e8, 36) + strconv.Itoa(rand.Intn(1e5))
)

func report(scenario, status, detail string) {
	if len(detail) > 2000 {
		detail = detail[:2000]
	}
	b, _ := json.Marshal(map[string]string{"scenario": scenario, "status": status, "detail": detail})
	fmt.Println("RESULT " + string(b))
}

func scenario(name string, fn func(ctx context.Context) (string, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	start := time.Now()
	detail, err := func() (d string, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return fn(ctx)
	}()
	if err != nil {
		report(name, "fail", err.Error())
		return
	}
	report(name, "pass", fmt.Sprintf("%s (%d ms)", detail, time.Since(start).Milliseconds()))
}

func topicName(s string) string { return "fgo-" + s + "-" + run }

func newClient(opts ...kgo.Opt) *kgo.Client {
	base := []kgo.Opt{
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("brook-compat-franz-go"),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}
	if os.Getenv("COMPAT_DEBUG") != "" { // kgo's own request log, for investigating failures
		base = append(base, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, func() string {
			return time.Now().Format("15:04:05.000 ")
		})))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		panic(err)
	}
	return cl
}

func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) error {
	_, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	return err
}

func produce(ctx context.Context, recs []*kgo.Record, opts ...kgo.Opt) error {
	cl := newClient(opts...)
	defer cl.Close()
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// poll reads until n records arrived from cl.
func poll(ctx context.Context, cl *kgo.Client, n int) ([]*kgo.Record, error) {
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollRecords(ctx, n-len(got))
		if ctx.Err() != nil {
			return got, fmt.Errorf("timed out with %d of %d records", len(got), n)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err) })
		if ferr != nil {
			return got, ferr
		}
		got = append(got, fs.Records()...)
	}
	return got, nil
}

func readPartition(ctx context.Context, topic string, p int32, at kgo.Offset, n int) ([]*kgo.Record, error) {
	cl := newClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: at}}))
	defer cl.Close()
	return poll(ctx, cl, n)
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func values(prefix string, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	return recs
}

func main() {
	if len(os.Args) > 1 {
		bootstrap = os.Args[1]
	}
	admCl := newClient(kgo.MetadataMinAge(100 * time.Millisecond))
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	// ---- admin ----
	adminTopic := topicName("admin")
	scenario("admin.create", func(ctx context.Context) (string, error) {
		if err := createTopic(ctx, adm, adminTopic, 3, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}); err != nil {
			return "", err
		}
		return "created " + adminTopic + " with 3 partitions, retention.ms=3600000", nil
	})
	scenario("admin.list", func(ctx context.Context) (string, error) {
		tds, err := adm.ListTopics(ctx)
		if err != nil {
			return "", err
		}
		if !tds.Has(adminTopic) {
			return "", fmt.Errorf("ListTopics lacks %s: %v", adminTopic, tds.Names())
		}
		return fmt.Sprintf("%d topics", len(tds)), nil
	})
	scenario("admin.describe", func(ctx context.Context) (string, error) {
		tds, err := adm.ListTopics(ctx, adminTopic)
		if err != nil {
			return "", err
		}
		td := tds[adminTopic]
		if td.Err != nil || len(td.Partitions) != 3 {
			return "", fmt.Errorf("metadata: err=%v partitions=%d", td.Err, len(td.Partitions))
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, adminTopic)
		if err != nil {
			return "", err
		}
		rc, err := rcs.On(adminTopic, nil)
		if err != nil || rc.Err != nil {
			return "", fmt.Errorf("describe configs: %v %v", err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" {
				if c.Value == nil || *c.Value != "3600000" {
					return "", fmt.Errorf("retention.ms = %v", c.Value)
				}
				return fmt.Sprintf("3 partitions, topic id %s, retention.ms=3600000 (source %v), %d configs", td.ID, c.Source, len(rc.Configs)), nil
			}
		}
		return "", errors.New("retention.ms not described")
	})
	scenario("admin.add_partitions", func(ctx context.Context) (string, error) {
		rs, err := adm.UpdatePartitions(ctx, 5, adminTopic)
		if err == nil {
			err = rs.Error()
		}
		if err != nil {
			return "", err
		}
		for ctx.Err() == nil {
			tds, err := adm.ListTopics(ctx, adminTopic)
			if err == nil && len(tds[adminTopic].Partitions) == 5 {
				return "3 -> 5 partitions", nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return "", errors.New("partition count did not become 5")
	})
	scenario("admin.delete", func(ctx context.Context) (string, error) {
		rs, err := adm.DeleteTopics(ctx, adminTopic)
		if err == nil {
			err = rs.Error()
		}
		if err != nil {
			return "", err
		}
		for ctx.Err() == nil {
			tds, err := adm.ListTopics(ctx)
			if err == nil && !tds.Has(adminTopic) {
				return "deleted, gone from the topic list", nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return "", errors.New("topic still listed")
	})

	// ---- produce ----
	scenario("produce.keys_headers", func(ctx context.Context) (string, error) {
		topic := topicName("keys")
		if err := createTopic(ctx, adm, topic, 3, nil); err != nil {
			return "", err
		}
		var recs []*kgo.Record
		for i := 0; i < 30; i++ {
			recs = append(recs, &kgo.Record{
				Topic: topic,
				Key:   []byte(fmt.Sprintf("key-%d", i)),
				Value: []byte(fmt.Sprintf("value-%d", i)),
				Headers: []kgo.RecordHeader{
					{Key: "h-index", Value: []byte(strconv.Itoa(i))},
					{Key: "h-const", Value: []byte("brook")},
				},
			})
		}
		if err := produce(ctx, recs); err != nil {
			return "", err
		}
		cl := newClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		got, err := poll(ctx, cl, 30)
		if err != nil {
			return "", err
		}
		parts := map[int32]bool{}
		for _, r := range got {
			parts[r.Partition] = true
			var i int
			if _, err := fmt.Sscanf(string(r.Key), "key-%d", &i); err != nil {
				return "", fmt.Errorf("bad key %q", r.Key)
			}
			hi, ok1 := header(r, "h-index")
			hc, ok2 := header(r, "h-const")
			if string(r.Value) != fmt.Sprintf("value-%d", i) || !ok1 || hi != strconv.Itoa(i) || !ok2 || hc != "brook" {
				return "", fmt.Errorf("record %q: value %q headers %v", r.Key, r.Value, r.Headers)
			}
		}
		return fmt.Sprintf("30 keyed records with 2 headers each over %d partitions", len(parts)), nil
	})

	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	for _, c := range codecs {
		scenario("produce."+c.name, func(ctx context.Context) (string, error) {
			topic := topicName(c.name)
			if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
				return "", err
			}
			var recs []*kgo.Record
			for i := 0; i < 50; i++ {
				v := ""
				for j := 0; j < 20; j++ {
					v += fmt.Sprintf("%s record %d ", c.name, i)
				}
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(v)})
			}
			if err := produce(ctx, recs, kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(50*time.Millisecond)); err != nil {
				return "", err
			}
			got, err := readPartition(ctx, topic, 0, kgo.NewOffset().AtStart(), 50)
			if err != nil {
				return "", err
			}
			for i, r := range got {
				if r.Offset != int64(i) || string(r.Value) != string(recs[i].Value) {
					return "", fmt.Errorf("record %d: offset %d value differs", i, r.Offset)
				}
			}
			return "50 records, " + c.name + "-compressed batches, read back intact", nil
		})
	}

	scenario("produce.idempotent", func(ctx context.Context) (string, error) {
		topic := topicName("idem")
		if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
			return "", err
		}
		// kgo is idempotent by default (acks=all, InitProducerId).
		cl := newClient(kgo.DefaultProduceTopic(topic))
		for b := 0; b < 5; b++ {
			var recs []*kgo.Record
			for i := 0; i < 20; i++ {
				recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprintf("idem-%d", b*20+i))})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				cl.Close()
				return "", err
			}
		}
		cl.Close()
		got, err := readPartition(ctx, topic, 0, kgo.NewOffset().AtStart(), 100)
		if err != nil {
			return "", err
		}
		for i, r := range got {
			if r.Offset != int64(i) || string(r.Value) != fmt.Sprintf("idem-%d", i) {
				return "", fmt.Errorf("record %d: offset %d value %q", i, r.Offset, r.Value)
			}
			if r.ProducerID < 0 || r.ProducerEpoch < 0 {
				return "", fmt.Errorf("record %d has no producer id (%d/%d): not idempotent", i, r.ProducerID, r.ProducerEpoch)
			}
		}
		return fmt.Sprintf("100 records, producer id %d epoch %d, exactly once, in order", got[0].ProducerID, got[0].ProducerEpoch), nil
	})

	// ---- consume ----
	consumeTopic := topicName("consume")
	scenario("consume.earliest", func(ctx context.Context) (string, error) {
		if err := createTopic(ctx, adm, consumeTopic, 1, nil); err != nil {
			return "", err
		}
		if err := produce(ctx, values("old", 10), kgo.DefaultProduceTopic(consumeTopic)); err != nil {
			return "", err
		}
		cl := newClient(kgo.ConsumerGroup("fgo-earliest-"+run), kgo.ConsumeTopics(consumeTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		got, err := poll(ctx, cl, 10)
		if err != nil {
			return "", err
		}
		if got[0].Offset != 0 || string(got[0].Value) != "old-0" {
			return "", fmt.Errorf("first record at %d: %q", got[0].Offset, got[0].Value)
		}
		return "new group, reset to start: read offsets 0..9", nil
	})
	scenario("consume.latest", func(ctx context.Context) (string, error) {
		cl := newClient(kgo.ConsumerGroup("fgo-latest-"+run), kgo.ConsumeTopics(consumeTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
		defer cl.Close()
		prod := newClient(kgo.DefaultProduceTopic(consumeTopic))
		defer prod.Close()
		// Produce one new record at a time until the consumer sees one: the first record it
		// sees must be a new one (offset >= 10), never one of the 10 old ones.
		for i := 0; ctx.Err() == nil; i++ {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("new-%d", i))}).FirstErr(); err != nil {
				return "", err
			}
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			if recs := fs.Records(); len(recs) > 0 {
				if recs[0].Offset < 10 {
					return "", fmt.Errorf("latest consumer read old record at offset %d", recs[0].Offset)
				}
				return fmt.Sprintf("first record read: offset %d (%s), none of the 10 old ones", recs[0].Offset, recs[0].Value), nil
			}
		}
		return "", errors.New("no new record read")
	})
	scenario("consume.timestamp", func(ctx context.Context) (string, error) {
		topic := topicName("ts")
		if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
			return "", err
		}
		t0 := time.Now().Add(-10 * time.Minute)
		t1 := time.Now().Add(-5 * time.Minute)
		recs := values("ts", 10)
		for i, r := range recs {
			r.Topic = topic
			if i < 6 {
				r.Timestamp = t0.Add(time.Duration(i) * time.Millisecond)
			} else {
				r.Timestamp = t1.Add(time.Duration(i) * time.Millisecond)
			}
		}
		if err := produce(ctx, recs); err != nil {
			return "", err
		}
		los, err := adm.ListOffsetsAfterMilli(ctx, t1.UnixMilli(), topic)
		if err != nil {
			return "", err
		}
		lo, ok := los.Lookup(topic, 0)
		if !ok || lo.Err != nil || lo.Offset != 6 {
			return "", fmt.Errorf("ListOffsetsAfterMilli: %+v", lo)
		}
		got, err := readPartition(ctx, topic, 0, kgo.NewOffset().AfterMilli(t1.UnixMilli()), 4)
		if err != nil {
			return "", err
		}
		if got[0].Offset != 6 || string(got[0].Value) != "ts-6" || got[0].Timestamp.UnixMilli() != recs[6].Timestamp.UnixMilli() {
			return "", fmt.Errorf("first record: offset %d %q ts %v", got[0].Offset, got[0].Value, got[0].Timestamp)
		}
		return "ListOffsetsAfterMilli -> 6; consuming AfterMilli read ts-6..ts-9 with their CreateTime", nil
	})

	// ---- groups ----
	scenario("group.commit_resume", func(ctx context.Context) (string, error) {
		topic := topicName("group")
		group := "fgo-group-" + run
		if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
			return "", err
		}
		if err := produce(ctx, values("g", 10), kgo.DefaultProduceTopic(topic)); err != nil {
			return "", err
		}
		opts := []kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
		c1 := newClient(opts...)
		got, err := poll(ctx, c1, 6)
		if err != nil {
			c1.Close()
			return "", err
		}
		if err := c1.CommitRecords(ctx, got[:6]...); err != nil {
			c1.Close()
			return "", fmt.Errorf("commit: %w", err)
		}
		c1.Close() // leaves the group
		ors, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return "", err
		}
		or, ok := ors.Lookup(topic, 0)
		if !ok || or.Err != nil || or.At != 6 {
			return "", fmt.Errorf("OffsetFetch after commit: %+v", or)
		}
		c2 := newClient(opts...)
		defer c2.Close()
		got2, err := poll(ctx, c2, 4)
		if err != nil {
			return "", err
		}
		if got2[0].Offset != 6 || string(got2[0].Value) != "g-6" {
			return "", fmt.Errorf("resumed at %d (%q), want 6", got2[0].Offset, got2[0].Value)
		}
		return "committed 6, closed, new member resumed at offset 6", nil
	})
	scenario("group.describe_lag", func(ctx context.Context) (string, error) {
		topic := topicName("lag")
		group := "fgo-lag-" + run
		if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
			return "", err
		}
		if err := produce(ctx, values("l", 10), kgo.DefaultProduceTopic(topic)); err != nil {
			return "", err
		}
		cl := newClient(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		got, err := poll(ctx, cl, 4)
		if err != nil {
			return "", err
		}
		if err := cl.CommitRecords(ctx, got[:4]...); err != nil {
			return "", fmt.Errorf("commit: %w", err)
		}
		lags, err := adm.Lag(ctx, group)
		if err != nil {
			return "", err
		}
		l, ok := lags[group]
		if !ok || l.DescribeErr != nil || l.FetchErr != nil {
			return "", fmt.Errorf("Lag: %+v", l)
		}
		if l.State != "Stable" || len(l.Members) != 1 || l.ProtocolType != "consumer" {
			return "", fmt.Errorf("group state %q members %d protocol type %q", l.State, len(l.Members), l.ProtocolType)
		}
		ml, ok := l.Lag.Lookup(topic, 0)
		if !ok || ml.Err != nil || ml.Lag != 6 || ml.Member == nil {
			return "", fmt.Errorf("partition lag: %+v", ml)
		}
		names := []string{}
		for _, m := range l.Members {
			names = append(names, m.ClientID)
		}
		slices.Sort(names)
		return fmt.Sprintf("Stable, 1 member (%s, %s), committed 4, end 10, lag 6", names[0], l.Protocol), nil
	})
}
