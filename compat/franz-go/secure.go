// The secured run (compat/run.sh --secure) driven by franz-go: SASL_SSL with PLAIN (alice) and
// SCRAM-SHA-512 (carol), SSL with a client certificate (mTLS). For each, the principal is
// refused before its ACLs exist, works after the admin (super user, SCRAM-SHA-512) created
// them with kadm CreateACLs, and is refused again after kadm DeleteACLs; a wrong password is
// refused. Scenarios and environment: compat/python/secure.py.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

var secUsers = map[string]string{"admin": "admin-secret", "alice": "alice-secret", "carol": "carol-secret"}

const secN = 10

func secTLS(withCert bool) *tls.Config {
	certs := os.Getenv("COMPAT_CERTS")
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		panic(fmt.Sprintf("ca.pem: %v", err))
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		c, err := tls.LoadX509KeyPair(filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key"))
		if err != nil {
			panic(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// secOpts: the client options for a method ("plain", "scram512", "mtls"), as `user` (""
// for the method's own user) with `password` ("" for the user's).
func secOpts(method, user, password string) []kgo.Opt {
	if method == "mtls" {
		return []kgo.Opt{kgo.SeedBrokers(os.Getenv("COMPAT_SSL_BOOTSTRAP")), kgo.DialTLSConfig(secTLS(true))}
	}
	if user == "" {
		user = map[string]string{"plain": "alice", "scram512": "carol"}[method]
	}
	if password == "" {
		password = secUsers[user]
	}
	opts := []kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.DialTLSConfig(secTLS(false))}
	if method == "plain" {
		return append(opts, kgo.SASL(plain.Auth{User: user, Pass: password}.AsMechanism()))
	}
	return append(opts, kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()))
}

func secPrincipal(method string) string {
	if method == "mtls" {
		return os.Getenv("COMPAT_MTLS_PRINCIPAL")
	}
	return "User:" + map[string]string{"plain": "alice", "scram512": "carol"}[method]
}

func secClient(method, user, password string, extra ...kgo.Opt) *kgo.Client {
	opts := append(secOpts(method, user, password), kgo.ClientID("brook-compat-franz-go"),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.RetryTimeout(10*time.Second))
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		panic(err)
	}
	return cl
}

// refusedWith: err must be (or wrap) one of the Kafka errors `wants`.
func refusedWith(err error, what string, wants ...*kerr.Error) (string, error) {
	var names []string
	ok := false
	for _, w := range wants {
		names = append(names, w.Message)
		ok = ok || errors.Is(err, w)
	}
	want := strings.Join(names, " or ")
	if err == nil {
		return "", fmt.Errorf("%s: expected %s, but it succeeded", what, want)
	}
	if !ok {
		return "", fmt.Errorf("%s: expected %s, got %v", what, want, err)
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s, nil
}

func secProduce(ctx context.Context, method, topic string, values []string) error {
	cl := secClient(method, "", "", kgo.RecordRetries(2))
	defer cl.Close()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(v)})
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// secConsume: a group member reads n records from the start and commits them.
func secConsume(ctx context.Context, method, topic, group string, n int) ([]string, error) {
	cl := secClient(method, "", "", kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollRecords(ctx, n-len(got))
		if ctx.Err() != nil {
			return got, fmt.Errorf("timed out with %d of %d records", len(got), n)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = err })
		if ferr != nil {
			return got, ferr
		}
		for _, r := range fs.Records() {
			got = append(got, string(r.Value))
		}
	}
	return got, cl.CommitUncommittedOffsets(ctx)
}

func secureMain() {
	admCl := secClient("scram512", "admin", "")
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	// carol (SCRAM-SHA-512) is made here, by the admin: kadm AlterUserSCRAMs.
	scenario("secure.scram_user", func(ctx context.Context) (string, error) {
		res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
			User: "carol", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: secUsers["carol"],
		}})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			return "", fmt.Errorf("AlterUserSCRAMs: %w", err)
		}
		described, err := adm.DescribeUserSCRAMs(ctx, "carol")
		if err != nil {
			return "", fmt.Errorf("DescribeUserSCRAMs: %w", err)
		}
		d, ok := described["carol"]
		if !ok || d.Err != nil || len(d.CredInfos) != 1 || d.CredInfos[0].Mechanism != kadm.ScramSha512 {
			return "", fmt.Errorf("DescribeUserSCRAMs: %+v", described)
		}
		return "kadm AlterUserSCRAMs: carol SCRAM-SHA-512 (4096 iterations); DescribeUserSCRAMs shows it", nil
	})

	scenario("secure.bad_password", func(ctx context.Context) (string, error) {
		cl := secClient("plain", "alice", "wrong-password")
		defer cl.Close()
		err := cl.Ping(ctx)
		return refusedWith(err, "connect", kerr.SaslAuthenticationFailed)
	})

	for _, m := range []string{"plain", "scram512", "mtls"} {
		topic, group, who := "fgo-sec-"+m+"-"+run, "fgo-secg-"+m+"-"+run, secPrincipal(m)
		var values []string
		for i := range secN {
			values = append(values, fmt.Sprintf("%s-%d", m, i))
		}
		acls := func() *kadm.ACLBuilder {
			return kadm.NewACLs().Allow(who).AllowHosts("*").Topics(topic).Groups(group).
				ResourcePatternType(kadm.ACLPatternLiteral)
		}
		refuse := func(ctx context.Context, stage string) (string, error) {
			p, err := refusedWith(secProduce(ctx, m, topic, []string{stage + "-x"}), "produce", kerr.TopicAuthorizationFailed)
			if err != nil {
				return "", err
			}
			_, cerr := secConsume(ctx, m, topic, group, 1)
			// kgo looks the subscribed topic up before joining: its refusal comes first.
			c, err := refusedWith(cerr, "group consume", kerr.GroupAuthorizationFailed, kerr.TopicAuthorizationFailed)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("produce refused (%s); group consume refused (%s)", p, c), nil
		}
		scenario("secure."+m+".refused", func(ctx context.Context) (string, error) {
			if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
				return "", err
			}
			d, err := refuse(ctx, "before")
			if err != nil {
				return "", err
			}
			cl := secClient(m, "", "")
			defer cl.Close()
			topics, err := kadm.NewClient(cl).ListTopics(ctx)
			if err != nil {
				return "", fmt.Errorf("list topics as %s: %w", who, err)
			}
			if topics.Has(topic) {
				return "", fmt.Errorf("metadata lists %s to %s", topic, who)
			}
			return who + ": " + d + "; metadata hides the topic", nil
		})
		scenario("secure."+m+".allowed", func(ctx context.Context) (string, error) {
			// WRITE, DESCRIBE, READ on the topic; READ on the group (the builder puts every
			// operation on every resource: DESCRIBE and WRITE on a group are harmless, but keep
			// to the four: two builders).
			topicACLs := kadm.NewACLs().Allow(who).AllowHosts("*").Topics(topic).
				ResourcePatternType(kadm.ACLPatternLiteral).
				Operations(kadm.OpWrite, kadm.OpDescribe, kadm.OpRead)
			groupACLs := kadm.NewACLs().Allow(who).AllowHosts("*").Groups(group).
				ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead)
			n := 0
			for _, b := range []*kadm.ACLBuilder{topicACLs, groupACLs} {
				res, err := adm.CreateACLs(ctx, b)
				if err != nil {
					return "", err
				}
				for _, r := range res {
					if r.Err != nil {
						return "", fmt.Errorf("CreateACLs %v: %w", r, r.Err)
					}
					n++
				}
			}
			if n != 4 {
				return "", fmt.Errorf("CreateACLs created %d, want 4", n)
			}
			if err := secProduce(ctx, m, topic, values); err != nil {
				return "", fmt.Errorf("produce: %w", err)
			}
			got, err := secConsume(ctx, m, topic, group, secN)
			if err != nil {
				return "", fmt.Errorf("consume: %w", err)
			}
			if !slices.Equal(got, values) {
				return "", fmt.Errorf("consumed %v", got)
			}
			offs, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				return "", err
			}
			o, ok := offs.Lookup(topic, 0)
			if !ok || o.At != secN {
				return "", fmt.Errorf("committed offset %v", o)
			}
			return fmt.Sprintf("kadm CreateACLs: 4 ACLs for %s; produced %d, consumed %d in group %s, committed offset %d",
				who, secN, secN, group, o.At), nil
		})
		scenario("secure."+m+".revoked", func(ctx context.Context) (string, error) {
			b := acls().Operations(kadm.OpWrite, kadm.OpDescribe, kadm.OpRead).
				ResourcePatternType(kadm.ACLPatternLiteral)
			res, err := adm.DeleteACLs(ctx, b)
			if err != nil {
				return "", err
			}
			var deleted []string
			for _, r := range res {
				if r.Err != nil {
					return "", fmt.Errorf("DeleteACLs: %w", r.Err)
				}
				for _, d := range r.Deleted {
					if d.Err != nil {
						return "", fmt.Errorf("DeleteACLs: %w", d.Err)
					}
					deleted = append(deleted, fmt.Sprintf("%s %s %s", d.Type, d.Name, d.Operation))
				}
			}
			if len(deleted) != 4 {
				return "", fmt.Errorf("DeleteACLs deleted %d, want 4: %s", len(deleted), strings.Join(deleted, ", "))
			}
			d, err := refuse(ctx, "after")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("kadm DeleteACLs deleted %d; %s", len(deleted), d), nil
		})
	}
}
