// The secured run (compat/run.sh --secure) driven by the Java client: SASL_SSL with PLAIN
// (alice) and SCRAM-SHA-512 (carol), SSL with a client certificate in a PEM keystore (mTLS).
// For each, the principal is refused before its ACLs exist, works after the admin (super
// user, SCRAM-SHA-512) created them with Admin.createAcls, and is refused again after
// Admin.deleteAcls; a wrong password is refused. Scenarios and environment:
// compat/python/secure.py. Started by Compat.main when COMPAT_SECURE is set.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class SecureCompat {
    static final String CERTS = System.getenv("COMPAT_CERTS");
    static final String SSL_BOOTSTRAP = System.getenv("COMPAT_SSL_BOOTSTRAP");
    static final String MTLS_PRINCIPAL = System.getenv("COMPAT_MTLS_PRINCIPAL");
    static final Map<String, String> USERS = Map.of("admin", "admin-secret", "alice", "alice-secret",
            "carol", "carol-secret");
    static final int N = 10;

    static String userOf(String method) { return method.equals("plain") ? "alice" : "carol"; }

    static String principal(String method) {
        return method.equals("mtls") ? MTLS_PRINCIPAL : "User:" + userOf(method);
    }

    static Properties conf(String method, String user, String password) {
        Properties p = new Properties();
        p.put("client.id", "brook-compat-java");
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", CERTS + "/ca.pem");
        if (method.equals("mtls")) {
            p.put("bootstrap.servers", SSL_BOOTSTRAP);
            p.put("security.protocol", "SSL");
            p.put("ssl.keystore.type", "PEM");
            p.put("ssl.keystore.location", CERTS + "/client.keystore.pem");
            return p;
        }
        if (user == null) user = userOf(method);
        if (password == null) password = USERS.get(user);
        p.put("bootstrap.servers", Compat.bootstrap);
        p.put("security.protocol", "SASL_SSL");
        boolean plain = method.equals("plain");
        p.put("sasl.mechanism", plain ? "PLAIN" : "SCRAM-SHA-512");
        p.put("sasl.jaas.config", (plain ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule")
                + " required username=\"" + user + "\" password=\"" + password + "\";");
        return p;
    }

    static Admin admin() { return Admin.create(conf("scram512", "admin", null)); }

    /** body must fail with one of `wants` somewhere in its causes; returns that exception's text. */
    @SafeVarargs
    static String refused(Compat.Body body, String what, Class<? extends Throwable>... wants) throws Exception {
        StringBuilder want = new StringBuilder();
        for (Class<? extends Throwable> w : wants) want.append(want.length() > 0 ? " or " : "").append(w.getSimpleName());
        String got;
        try {
            got = body.run();
        } catch (Throwable t) {
            for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
                for (Class<? extends Throwable> w : wants) {
                    if (w.isInstance(c)) {
                        String s = c.getClass().getSimpleName() + ": " + c.getMessage();
                        return s.length() > 200 ? s.substring(0, 200) : s;
                    }
                }
            }
            throw new AssertionError(what + ": expected " + want + ", got " + Compat.describe(t));
        }
        throw new AssertionError(what + ": expected " + want + ", but it succeeded: " + got);
    }

    static String produce(String method, String topic, List<String> values) throws Exception {
        Properties p = conf(method, null, null);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("max.block.ms", "10000");
        p.put("delivery.timeout.ms", "15000");
        p.put("request.timeout.ms", "10000");
        try (KafkaProducer<String, String> pr = new KafkaProducer<>(p)) {
            for (String v : values) pr.send(new ProducerRecord<>(topic, v)).get(20, TimeUnit.SECONDS);
        }
        return "produced " + values.size();
    }

    static List<String> consume(String method, String topic, String group, int n) throws Exception {
        Properties p = conf(method, null, null);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("group.id", group);
        p.put("group.protocol", "classic");
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.put("fetch.max.wait.ms", "200");
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 20_000;
            while (got.size() < n) {
                if (System.currentTimeMillis() > deadline) {
                    throw new AssertionError("timed out with " + got.size() + " of " + n + " records");
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r.value());
            }
            c.commitSync(Duration.ofSeconds(10));
        }
        return got;
    }

    static List<AclBinding> acls(String who, String topic, String group) {
        List<AclBinding> l = new ArrayList<>();
        for (AclOperation op : List.of(AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.READ)) {
            l.add(new AclBinding(new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
                    new AccessControlEntry(who, "*", op, AclPermissionType.ALLOW)));
        }
        l.add(new AclBinding(new ResourcePattern(ResourceType.GROUP, group, PatternType.LITERAL),
                new AccessControlEntry(who, "*", AclOperation.READ, AclPermissionType.ALLOW)));
        return l;
    }

    static void run() {
        // carol (SCRAM-SHA-512) is made here, by the admin: Admin.alterUserScramCredentials.
        Compat.scenario("secure.scram_user", () -> {
            try (Admin a = admin()) {
                a.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion("carol",
                        new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), USERS.get("carol"))))
                        .all().get(20, TimeUnit.SECONDS);
                UserScramCredentialsDescription d = a.describeUserScramCredentials(List.of("carol"))
                        .description("carol").get(20, TimeUnit.SECONDS);
                if (d.credentialInfos().size() != 1
                        || d.credentialInfos().get(0).mechanism() != ScramMechanism.SCRAM_SHA_512) {
                    throw new AssertionError("described " + d);
                }
                return "Admin.alterUserScramCredentials: carol SCRAM-SHA-512 (4096 iterations); described back";
            }
        });
        Compat.scenario("secure.bad_password", () -> {
            try (Admin a = Admin.create(conf("plain", "alice", "wrong-password"))) {
                return refused(() -> "listed " + a.listTopics().names().get(20, TimeUnit.SECONDS),
                        "connect", SaslAuthenticationException.class);
            }
        });
        for (String m : List.of("plain", "scram512", "mtls")) {
            String topic = "java-sec-" + m + "-" + Compat.RUN, group = "java-secg-" + m + "-" + Compat.RUN;
            String who = principal(m);
            List<String> values = new ArrayList<>();
            for (int i = 0; i < N; i++) values.add(m + "-" + i);
            Compat.Body refuseBoth = () -> {
                String p = refused(() -> produce(m, topic, List.of("x")), "produce", TopicAuthorizationException.class);
                // A client that looks the topic up before joining may get its refusal first.
                String c = refused(() -> "consumed " + consume(m, topic, group, 1), "group consume",
                        GroupAuthorizationException.class, TopicAuthorizationException.class);
                return "produce refused (" + p + "); group consume refused (" + c + ")";
            };
            Compat.scenario("secure." + m + ".refused", () -> {
                try (Admin a = admin()) {
                    a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(20, TimeUnit.SECONDS);
                }
                String d = refuseBoth.run();
                Set<String> listed;
                try (Admin a = Admin.create(conf(m, null, null))) {
                    listed = a.listTopics().names().get(20, TimeUnit.SECONDS);
                }
                if (listed.contains(topic)) throw new AssertionError("metadata lists " + topic + " to " + who);
                return who + ": " + d + "; metadata hides the topic";
            });
            Compat.scenario("secure." + m + ".allowed", () -> {
                try (Admin a = admin()) {
                    a.createAcls(acls(who, topic, group)).all().get(20, TimeUnit.SECONDS);
                }
                produce(m, topic, values);
                List<String> got = consume(m, topic, group, N);
                if (!got.equals(values)) throw new AssertionError("consumed " + got);
                long committed;
                try (Admin a = admin()) {
                    Map<TopicPartition, OffsetAndMetadata> o = a.listConsumerGroupOffsets(group)
                            .partitionsToOffsetAndMetadata().get(20, TimeUnit.SECONDS);
                    OffsetAndMetadata om = o.get(new TopicPartition(topic, 0));
                    committed = om == null ? -1 : om.offset();
                }
                if (committed != N) throw new AssertionError("committed offset " + committed);
                return "Admin.createAcls: 4 ACLs for " + who + "; produced " + N + ", consumed " + N
                        + " in group " + group + ", committed offset " + committed;
            });
            Compat.scenario("secure." + m + ".revoked", () -> {
                List<AclBindingFilter> filters = new ArrayList<>();
                for (AclBinding b : acls(who, topic, group)) filters.add(b.toFilter());
                int n = 0;
                try (Admin a = admin()) {
                    Collection<AclBinding> deleted = a.deleteAcls(filters).all().get(20, TimeUnit.SECONDS);
                    n = deleted.size();
                }
                if (n != 4) throw new AssertionError("deleteAcls deleted " + n + ", want 4");
                return "Admin.deleteAcls deleted " + n + "; " + refuseBoth.run();
            });
        }
    }
}
