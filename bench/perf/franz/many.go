package main

// franz-perf many: many active producers at once, and one heavy producer beside them
// (bench/active_clients.py; issue 19's "many clients" and fairness measures).
//
//	franz-perf many -b HOST:PORT -t TOPIC -c CLIENTS -r RATE -s SIZE -d SECONDS [-heavy]
//
// CLIENTS producers, each its own franz-go client (its own connections), each send RATE
// records/s of SIZE bytes on an absolute schedule (record i due at start + i/RATE, the
// clients' schedules spread evenly over one interval) for SECONDS, acks=1, linger 0.
// Every record is timed from Produce to its acknowledgement. Each client first sends one
// unrecorded record, so connections and metadata are in place before the clock starts.
// With -heavy, one more client sends 1 KiB random records as fast as franz-go takes them
// (its defaults, acks=1) for the whole run: what the others see beside it is fairness.
// Prints one JSON line.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type manyResult struct {
	Clients       int     `json:"clients"`
	RatePerClient float64 `json:"rate_per_client"`
	Seconds       float64 `json:"seconds"`
	Expected      int64   `json:"expected"`
	Acked         int64   `json:"acked"`
	Errors        int64   `json:"errors"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	P999Ms        float64 `json:"p999_ms"`
	MaxMs         float64 `json:"max_ms"`
	// The worst client's p99, and the smallest share of its scheduled records any
	// client had acknowledged by the end: one starved client shows here.
	WorstClientP99Ms  float64 `json:"worst_client_p99_ms"`
	MinClientFraction float64 `json:"min_client_fraction"`
	HeavyRecordsPerS  float64 `json:"heavy_records_per_sec"`
}

func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}

func manyMain(args []string) {
	fs := flag.NewFlagSet("many", flag.ExitOnError)
	bootstrap := fs.String("b", "", "bootstrap server")
	topic := fs.String("t", "", "topic")
	clients := fs.Int("c", 1000, "producers")
	rate := fs.Float64("r", 20, "records/s per producer")
	size := fs.Int("s", 100, "record value size")
	seconds := fs.Float64("d", 20, "seconds")
	heavy := fs.Bool("heavy", false, "one more producer as fast as it goes")
	_ = fs.Parse(args)
	if *bootstrap == "" || *topic == "" || *clients <= 0 || *rate <= 0 {
		fail("-b, -t, -c and -r are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxTime)
	defer cancel()
	value := make([]byte, *size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	opts := func() []kgo.Opt {
		return []kgo.Opt{kgo.SeedBrokers(*bootstrap), kgo.DefaultProduceTopic(*topic),
			kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.ProducerLinger(0)}
	}
	cls := make([]*kgo.Client, *clients)
	var warm sync.WaitGroup
	for i := range cls {
		cl, err := kgo.NewClient(opts()...)
		if err != nil {
			fail("client %d: %v", i, err)
		}
		cls[i] = cl
		warm.Add(1)
		go func() {
			defer warm.Done()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
				fail("client %d warm-up: %v", i, err)
			}
		}()
	}
	warm.Wait()
	defer func() {
		for _, cl := range cls {
			cl.Close()
		}
	}()

	interval := time.Duration(float64(time.Second) / *rate)
	per := int64(*seconds * *rate)
	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(time.Duration(*seconds * float64(time.Second)))

	var stopHeavy atomic.Bool
	var heavyAcked atomic.Int64
	var heavyDone sync.WaitGroup
	if *heavy {
		hcl, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap), kgo.DefaultProduceTopic(*topic),
			kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
		if err != nil {
			fail("heavy client: %v", err)
		}
		defer hcl.Close()
		// 4,096 different random values, so a batch (at most 1 MB) holds no value twice
		// and franz-go's default compression cannot shrink the heavy load away.
		pool := make([]byte, 4096*1024)
		_, _ = rand.Read(pool)
		next := 0
		heavyDone.Add(1)
		go func() {
			defer heavyDone.Done()
			for !stopHeavy.Load() && ctx.Err() == nil {
				big := pool[next*1024 : (next+1)*1024]
				next = (next + 1) % 4096
				hcl.Produce(ctx, &kgo.Record{Value: big}, func(_ *kgo.Record, err error) {
					if err == nil && time.Now().Before(end) {
						heavyAcked.Add(1)
					}
				})
			}
			_ = hcl.Flush(ctx)
		}()
	}

	lat := make([][]time.Duration, *clients)
	acked := make([]atomic.Int64, *clients)
	var errs atomic.Int64
	var run sync.WaitGroup
	for c := range cls {
		lat[c] = make([]time.Duration, per)
		run.Add(1)
		go func() {
			defer run.Done()
			cl := cls[c]
			offset := time.Duration(int64(interval) * int64(c) / int64(*clients))
			var mu sync.Mutex
			for i := int64(0); i < per; i++ {
				due := start.Add(offset + time.Duration(i)*interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				i := i
				sent := time.Now()
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						errs.Add(1)
						return
					}
					mu.Lock()
					lat[c][i] = time.Since(sent)
					mu.Unlock()
					acked[c].Add(1)
				})
			}
			_ = cl.Flush(ctx)
		}()
	}
	run.Wait()
	stopHeavy.Store(true)
	heavyDone.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	r := manyResult{Clients: *clients, RatePerClient: *rate, Seconds: elapsed.Seconds(),
		Expected: per * int64(*clients), Errors: errs.Load(), MinClientFraction: 1}
	for c := range cls {
		mine := make([]time.Duration, 0, per)
		for _, d := range lat[c] {
			if d > 0 {
				mine = append(mine, d)
			}
		}
		sort.Slice(mine, func(a, b int) bool { return mine[a] < mine[b] })
		r.WorstClientP99Ms = max(r.WorstClientP99Ms, quantile(mine, 0.99))
		r.MinClientFraction = min(r.MinClientFraction, float64(acked[c].Load())/float64(per))
		r.Acked += acked[c].Load()
		all = append(all, mine...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	r.P50Ms, r.P99Ms, r.P999Ms = quantile(all, 0.50), quantile(all, 0.99), quantile(all, 0.999)
	if len(all) > 0 {
		r.MaxMs = float64(all[len(all)-1].Microseconds()) / 1000
	}
	if *heavy {
		r.HeavyRecordsPerS = float64(heavyAcked.Load()) / *seconds
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.Errors > 0 {
		fmt.Fprintf(os.Stderr, "franz-perf: %d records failed\n", r.Errors)
		os.Exit(1)
	}
}
