// Brook compatibility scenarios driven by franz-go (kgo + kadm, pinned in go.mod).
//
//	go build -o compat-franz-go . && ./compat-franz-go 127.0.0.1:9092
//	./compat-franz-go 127.0.0.1:9092 consumer   # consume, group and transaction scenarios
//	                                            # with KIP-848 groups (kgo.ServerSideBalancer)
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
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const scenarioTimeout = 45 * time.Second

var (
	bootstrap = "127.0.0.1:9092"
	// "consumer": every group member uses KIP-848's protocol (ConsumerGroupHeartbeat,
	// the broker assigns), as franz-go does with kgo.ServerSideBalancer.
	groupProtocol = "classic"
	run           = strconv.FormatInt(time.Now().UnixMilli()%1e8, 36) + strconv.Itoa(rand.Intn(1e5))
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

func topicName(s string) string { return "fgo-" + groupProtocol + "-" + s + "-" + run }

func baseOpts() []kgo.Opt {
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
	return base
}

func newClient(opts ...kgo.Opt) *kgo.Client {
	if groupProtocol == "consumer" {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	cl, err := kgo.NewClient(append(baseOpts(), opts...)...)
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

func readPartition(ctx context.Context, topic string, p int32, at kgo.Offset, n int, opts ...kgo.Opt) ([]*kgo.Record, error) {
	cl := newClient(append([]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: at}})}, opts...)...)
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
	if len(os.Args) > 2 {
		groupProtocol = os.Args[2]
	}
	if os.Getenv("COMPAT_SECURE") != "" { // compat/run.sh --secure: secure.go
		secureMain()
		return
	}
	admCl := newClient(kgo.MetadataMinAge(100 * time.Millisecond))
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	if groupProtocol == "classic" {
		adminAndProduceScenarios(adm)
	}

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
		if groupProtocol == "consumer" {
			return describe848Lag(ctx, adm, group, topic)
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

	// ---- transactions ----
	readCommitted := kgo.FetchIsolationLevel(kgo.ReadCommitted())
	readUncommitted := kgo.FetchIsolationLevel(kgo.ReadUncommitted())
	// endOffsets: the read_committed end offset (last stable offset) and the
	// read_uncommitted one (high watermark) of partition 0.
	endOffsets := func(ctx context.Context, topic string) (lso, hw int64, err error) {
		c, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return 0, 0, err
		}
		e, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return 0, 0, err
		}
		lo, ok1 := c.Lookup(topic, 0)
		he, ok2 := e.Lookup(topic, 0)
		if !ok1 || !ok2 || lo.Err != nil || he.Err != nil {
			return 0, 0, fmt.Errorf("list offsets: %+v %+v", lo, he)
		}
		return lo.Offset, he.Offset, nil
	}
	type ov struct {
		off int64
		val string
	}
	view := func(rs []*kgo.Record) []ov {
		out := make([]ov, len(rs))
		for i, r := range rs {
			out[i] = ov{r.Offset, string(r.Value)}
		}
		return out
	}
	want := func(parts ...[]ov) []ov { return slices.Concat(parts...) }
	seq := func(prefix string, n int, from int64) []ov {
		out := make([]ov, n)
		for i := range out {
			out[i] = ov{from + int64(i), fmt.Sprintf("%s-%d", prefix, i)}
		}
		return out
	}

	// Committed transaction of 10, aborted one of 5 (ProduceSync: acked by the broker before
	// the abort), committed one of 7; with the control markers the log is c1 0..9, commit 10,
	// ab 11..15, abort 16, c2 17..23, commit 24.
	scenario("txn.commit_abort", func(ctx context.Context) (string, error) {
		topic := topicName("txn")
		if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
			return "", err
		}
		cl := newClient(kgo.TransactionalID("fgo-txn-"+run), kgo.DefaultProduceTopic(topic))
		defer cl.Close()
		var lsoOpen, hwOpen int64
		txn := func(prefix string, n int, end kgo.TransactionEndTry, whileOpen func() error) ([]*kgo.Record, error) {
			if err := cl.BeginTransaction(); err != nil {
				return nil, fmt.Errorf("begin: %w", err)
			}
			recs := values(prefix, n)
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return nil, fmt.Errorf("produce %s: %w", prefix, err)
			}
			if whileOpen != nil {
				if err := whileOpen(); err != nil {
					return nil, err
				}
			}
			if err := cl.EndTransaction(ctx, end); err != nil {
				return nil, fmt.Errorf("end transaction (commit=%v) after %s: %w", end, prefix, err)
			}
			return recs, nil
		}
		if _, err := txn("c1", 10, kgo.TryCommit, nil); err != nil {
			return "", err
		}
		aborted, err := txn("ab", 5, kgo.TryAbort, func() (err error) {
			lsoOpen, hwOpen, err = endOffsets(ctx, topic)
			return err
		})
		if err != nil {
			return "", err
		}
		if _, err := txn("c2", 7, kgo.TryCommit, nil); err != nil {
			return "", err
		}
		if got := view(aborted); !slices.Equal(got, seq("ab", 5, 11)) {
			return "", fmt.Errorf("aborted records acked at %v, want offsets 11..15", got)
		}
		if lsoOpen != 11 || hwOpen != 16 {
			return "", fmt.Errorf("while the 2nd transaction was open: read_committed end offset (LSO) %d, high watermark %d; want 11 and 16", lsoOpen, hwOpen)
		}
		rc, err := readPartition(ctx, topic, 0, kgo.NewOffset().AtStart(), 17, readCommitted)
		if err != nil {
			return "", fmt.Errorf("read_committed: %w", err)
		}
		if got := view(rc); !slices.Equal(got, want(seq("c1", 10, 0), seq("c2", 7, 17))) {
			return "", fmt.Errorf("read_committed read %v", got)
		}
		ru, err := readPartition(ctx, topic, 0, kgo.NewOffset().AtStart(), 22, readUncommitted)
		if err != nil {
			return "", fmt.Errorf("read_uncommitted: %w", err)
		}
		if got := view(ru); !slices.Equal(got, want(seq("c1", 10, 0), seq("ab", 5, 11), seq("c2", 7, 17))) {
			return "", fmt.Errorf("read_uncommitted read %v", got)
		}
		lso, hw, err := endOffsets(ctx, topic)
		if err != nil {
			return "", err
		}
		if lso != 25 || hw != 25 {
			return "", fmt.Errorf("end offsets after the last commit: LSO %d, high watermark %d; want 25", lso, hw)
		}
		return "commit 10, abort 5 (acked at 11..15), commit 7: read_committed read the 17 committed (offsets 0..9, 17..23), " +
			"read_uncommitted all 22; LSO 11 / HW 16 while the abort was open, 25 / 25 after", nil
	})

	// Consume-transform-produce with a GroupTransactSession (read_committed, group offsets
	// committed in the transaction): txn 1 processes 6 records and commits; txn 2 processes the
	// other 4 and aborts (the session rewinds to the committed offset 6; kgo sends no
	// TxnOffsetCommit for a transaction it aborts); txn 3 re-reads and processes the 4 and commits.
	scenario("txn.offsets", func(ctx context.Context) (string, error) {
		in, out, group := topicName("txn-in"), topicName("txn-out"), "fgo-txn-"+run
		for _, t := range []string{in, out} {
			if err := createTopic(ctx, adm, t, 1, nil); err != nil {
				return "", err
			}
		}
		if err := produce(ctx, values("in", 10), kgo.DefaultProduceTopic(in)); err != nil {
			return "", err
		}
		sess, err := kgo.NewGroupTransactSession(append(baseOpts(), kgo.TransactionalID("fgo-txo-"+run),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), readCommitted, kgo.RequireStableFetchOffsets(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic(out))...)
		if err != nil {
			return "", err
		}
		defer sess.Close()
		// The group's committed offset, as a KIP-447 consumer reads it: OffsetFetch with
		// require_stable, retried while a transaction's offsets are still undecided
		// (UNSTABLE_OFFSET_COMMIT: EndTxn is answered before its markers are written).
		unstable := 0
		groupOffset := func() (int64, error) {
			for {
				ors, err := adm.FetchOffsets(kadm.RequireStable(ctx), group)
				if err != nil {
					return 0, err
				}
				or, ok := ors.Lookup(in, 0)
				if ok && errors.Is(or.Err, kerr.UnstableOffsetCommit) && ctx.Err() == nil {
					unstable++
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if !ok || or.Err != nil {
					return 0, fmt.Errorf("OffsetFetch (require_stable): %+v", or)
				}
				return or.At, nil
			}
		}
		txn := func(n int, end kgo.TransactionEndTry) ([]int64, error) {
			if err := sess.Begin(); err != nil {
				return nil, fmt.Errorf("begin: %w", err)
			}
			var got []*kgo.Record
			for len(got) < n {
				fs := sess.PollRecords(ctx, n-len(got))
				if ctx.Err() != nil {
					return nil, fmt.Errorf("timed out with %d of %d input records", len(got), n)
				}
				var ferr error
				fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err) })
				if ferr != nil {
					return nil, ferr
				}
				got = append(got, fs.Records()...)
			}
			var offs []int64
			var outRecs []*kgo.Record
			for _, r := range got {
				offs = append(offs, r.Offset)
				outRecs = append(outRecs, &kgo.Record{Value: []byte(strings.ToUpper(string(r.Value)))})
			}
			if err := sess.ProduceSync(ctx, outRecs...).FirstErr(); err != nil {
				return nil, fmt.Errorf("produce: %w", err)
			}
			committed, err := sess.End(ctx, end)
			if err != nil {
				return nil, fmt.Errorf("end (commit=%v): %w", end, err)
			}
			if committed != bool(end) {
				return nil, fmt.Errorf("End(%v) returned committed=%v", end, committed)
			}
			return offs, nil
		}
		offs1, err := txn(6, kgo.TryCommit)
		if err != nil {
			return "", fmt.Errorf("txn 1: %w", err)
		}
		offs2, err := txn(4, kgo.TryAbort)
		if err != nil {
			return "", fmt.Errorf("txn 2: %w", err)
		}
		afterAbort, err := groupOffset()
		if err != nil {
			return "", err
		}
		offs3, err := txn(4, kgo.TryCommit)
		if err != nil {
			return "", fmt.Errorf("txn 3: %w", err)
		}
		if !slices.Equal(offs1, []int64{0, 1, 2, 3, 4, 5}) || !slices.Equal(offs2, []int64{6, 7, 8, 9}) || !slices.Equal(offs3, offs2) {
			return "", fmt.Errorf("input offsets per transaction: %v, %v, %v", offs1, offs2, offs3)
		}
		if afterAbort != 6 {
			return "", fmt.Errorf("group offset after the aborted transaction %d, want 6", afterAbort)
		}
		sess.Close()
		final, err := groupOffset()
		if err != nil {
			return "", err
		}
		if final != 10 {
			return "", fmt.Errorf("group offset after the last commit %d, want 10", final)
		}
		var wantOut []string
		for i := 0; i < 10; i++ {
			wantOut = append(wantOut, fmt.Sprintf("IN-%d", i))
		}
		vals := func(rs []*kgo.Record) []string {
			var out []string
			for _, r := range rs {
				out = append(out, string(r.Value))
			}
			return out
		}
		rc, err := readPartition(ctx, out, 0, kgo.NewOffset().AtStart(), 10, readCommitted)
		if err != nil {
			return "", fmt.Errorf("output read_committed: %w", err)
		}
		if !slices.Equal(vals(rc), wantOut) {
			return "", fmt.Errorf("output read_committed %v", vals(rc))
		}
		ru, err := readPartition(ctx, out, 0, kgo.NewOffset().AtStart(), 14, readUncommitted)
		if err != nil {
			return "", fmt.Errorf("output read_uncommitted: %w", err)
		}
		if !slices.Equal(vals(ru), slices.Concat(wantOut, wantOut[6:])) {
			return "", fmt.Errorf("output read_uncommitted %v", vals(ru))
		}
		return "GroupTransactSession, read_committed: txn 1 (input 0..5) committed, txn 2 (6..9) aborted -> group offset 6, " +
			"rewound, txn 3 (6..9 again) committed; output read_committed IN-0..IN-9 once, read_uncommitted 14; " +
			fmt.Sprintf("group offset 10 (OffsetFetch require_stable, %d UNSTABLE_OFFSET_COMMIT answers retried)", unstable), nil
	})
}

// The admin and produce scenarios: their group protocol does not matter, so the KIP-848
// run skips them.
func adminAndProduceScenarios(adm *kadm.Client) {
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
}

// describe848Lag checks a KIP-848 group as `kafka-consumer-groups --describe` shows it:
// ConsumerGroupDescribe (the classic DescribeGroups does not describe such a group, as on
// Kafka) for its state, epoch, assignor and member's assignment, then lag from the
// committed and end offsets.
func describe848Lag(ctx context.Context, adm *kadm.Client, group, topic string) (string, error) {
	described, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		return "", fmt.Errorf("ConsumerGroupDescribe: %w", err)
	}
	d, ok := described[group]
	if !ok || d.Err != nil {
		return "", fmt.Errorf("ConsumerGroupDescribe: %+v", d)
	}
	if d.State != "Stable" || len(d.Members) != 1 {
		return "", fmt.Errorf("group state %q, %d members", d.State, len(d.Members))
	}
	if ps := d.Members[0].Assignment[topic]; len(ps) != 1 {
		return "", fmt.Errorf("member assignment %v, want partition 0 of %s", d.Members[0].Assignment, topic)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return "", err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return "", err
	}
	c, okc := committed.Lookup(topic, 0)
	e, oke := ends.Lookup(topic, 0)
	if !okc || !oke || c.Err != nil || e.Err != nil || c.At != 4 || e.Offset != 10 {
		return "", fmt.Errorf("committed %+v, end %+v", c, e)
	}
	return fmt.Sprintf("ConsumerGroupDescribe: Stable, epoch %d, assignor %s, 1 member owning partition 0; committed 4, end 10, lag 6",
		d.Epoch, d.AssignorName), nil
}
