// franz-perf drives franz-go (twmb/franz-go, a pure-Go Kafka client) for bench/bench.py's
// franz-go cells. The client's own settings stay at their defaults (linger 0, 1 MB
// batches, 10,000 buffered records, sticky partitioning for null keys), as
// kafka-producer-perf-test keeps the Java producer's.
//
//	franz-perf produce -b HOST:PORT -t TOPIC -n RECORDS -s SIZE -a ACKS
//	franz-perf consume -b HOST:PORT -t TOPIC -n RECORDS
//	franz-perf many -b HOST:PORT -t TOPIC -c CLIENTS -r RATE -s SIZE -d SECONDS [-heavy]
//
// produce: RECORDS values of SIZE bytes, null keys, as fast as the client takes them
// (idempotent writes with acks=all, as franz-go requires them off for acks=1); timed from
// the first send to the last acknowledgement.
// consume: every partition from the beginning, no group; timed from the client's start
// to the RECORDS-th record.
// Prints one JSON line: {"records":N,"seconds":S,"records_per_sec":R,"errors":E}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const maxTime = 120 * time.Second

type result struct {
	Records       int64   `json:"records"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	Errors        int64   `json:"errors"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "franz-perf: "+format+"\n", args...)
	os.Exit(1)
}

func report(n int64, d time.Duration, errs int64) {
	r := result{Records: n, Seconds: d.Seconds(), Errors: errs}
	if d > 0 {
		r.RecordsPerSec = float64(n) / d.Seconds()
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: franz-perf produce|consume -b BOOTSTRAP -t TOPIC -n RECORDS [-s SIZE] [-a ACKS]")
	}
	mode := os.Args[1]
	if mode == "many" {
		manyMain(os.Args[2:])
		return
	}
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	bootstrap := fs.String("b", "", "bootstrap server")
	topic := fs.String("t", "", "topic")
	n := fs.Int64("n", 0, "records")
	size := fs.Int("s", 100, "record value size")
	acks := fs.String("a", "1", "acks: 0, 1 or all")
	_ = fs.Parse(os.Args[2:])
	if *bootstrap == "" || *topic == "" || *n <= 0 {
		fail("-b, -t and -n are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxTime)
	defer cancel()
	switch mode {
	case "produce":
		produce(ctx, *bootstrap, *topic, *n, *size, *acks)
	case "consume":
		consume(ctx, *bootstrap, *topic, *n)
	default:
		fail("unknown mode %q", mode)
	}
}

func produce(ctx context.Context, bootstrap, topic string, n int64, size int, acks string) {
	opts := []kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.DefaultProduceTopic(topic)}
	switch acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	default:
		fail("acks must be 1 or all, not %q", acks)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fail("client: %v", err)
	}
	defer cl.Close()
	value := make([]byte, size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var errs atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(int(n))
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			errs.Add(1)
			lastErr.Store(err.Error())
		}
		wg.Done()
	}
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Value: value}, done)
	}
	wg.Wait()
	d := time.Since(t0)
	if e := errs.Load(); e > 0 {
		fmt.Fprintf(os.Stderr, "franz-perf: %d records failed, last: %v\n", e, lastErr.Load())
		report(n-e, d, e)
		os.Exit(1)
	}
	report(n, d, 0)
}

func consume(ctx context.Context, bootstrap, topic string, n int64) {
	t0 := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		fail("client: %v", err)
	}
	defer cl.Close()
	var got, errs int64
	for got < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("time limit: %d of %d records", got, n)
		}
		fetches.EachError(func(_ string, _ int32, err error) { errs++ })
		got += int64(fetches.NumRecords())
	}
	report(got, time.Since(t0), errs)
}
