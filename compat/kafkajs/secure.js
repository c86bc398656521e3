// The secured run (compat/run.sh --secure) driven by kafkajs: SASL_SSL with PLAIN (alice) and
// SCRAM-SHA-512 (carol), SSL with a client certificate (mTLS). For each, the principal is
// refused before its ACLs exist, works after the admin (super user, SCRAM-SHA-512) created
// them with admin.createAcls, and is refused again after admin.deleteAcls; a wrong password
// is refused. Scenarios and environment: compat/python/secure.py.
'use strict'

const fs = require('fs')
const path = require('path')
const {
  Kafka, logLevel, AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes,
} = require('kafkajs')
const { report, check, sleep, scenario, withTimeout } = require('./harness')

const CERTS = process.env.COMPAT_CERTS
const SSL_BOOTSTRAP = process.env.COMPAT_SSL_BOOTSTRAP
const MTLS_PRINCIPAL = process.env.COMPAT_MTLS_PRINCIPAL
const USERS = { admin: 'admin-secret', alice: 'alice-secret', carol: 'carol-secret' }
const METHODS = { plain: ['plain', 'alice'], scram512: ['scram-sha-512', 'carol'], mtls: [null, null] }
const N = 10

const squash = (s) => String(s).toLowerCase().replace(/[^a-z]/g, '')
function errText (e) {
  const parts = []
  for (let c = e; c && parts.length < 5; c = c.cause || c.originalError) {
    parts.push(`${c.name}: ${c.message}${c.type ? ` (${c.type})` : ''}`)
  }
  return parts.join(' <- ') || String(e)
}

// fn must fail with an error naming one of `wants` ("topic authorization", "group authorization").
async function refused (fn, wants, what) {
  const want = wants.join(' or ')
  let got
  try {
    got = await fn()
  } catch (e) {
    const text = errText(e)
    check(wants.some(w => squash(text).includes(squash(w))), `${what}: expected ${want} failed, got ${text}`)
    return text.slice(0, 300)
  }
  throw new Error(`${what}: expected ${want} failed, but it succeeded (${JSON.stringify(got)})`)
}

function client (method, user, password, retries = 3) {
  const ca = [fs.readFileSync(path.join(CERTS, 'ca.pem'))]
  const common = { clientId: 'brook-compat-kafkajs', logLevel: logLevel.NOTHING, retry: { retries, initialRetryTime: 200 } }
  if (method === 'mtls') {
    return new Kafka({
      ...common,
      brokers: [SSL_BOOTSTRAP],
      ssl: { ca, cert: fs.readFileSync(path.join(CERTS, 'client.crt')), key: fs.readFileSync(path.join(CERTS, 'client.key')) },
    })
  }
  const [mechanism, u] = METHODS[method]
  user = user || u
  return new Kafka({
    ...common,
    brokers: [process.argv[2]],
    ssl: { ca },
    sasl: { mechanism, username: user, password: password || USERS[user] },
  })
}

const principal = (m) => m === 'mtls' ? MTLS_PRINCIPAL : `User:${METHODS[m][1]}`

function acls (who, topic, group) {
  const acl = (resourceType, resourceName, operation) => ({
    resourceType, resourceName, resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: who, host: '*', operation, permissionType: AclPermissionTypes.ALLOW,
  })
  return [
    acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.WRITE),
    acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.DESCRIBE),
    acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.READ),
    acl(AclResourceTypes.GROUP, group, AclOperationTypes.READ),
  ]
}

async function withAdmin (kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try { return await fn(admin) } finally { await admin.disconnect() }
}

async function produce (method, topic, values) {
  const producer = client(method).producer({ allowAutoTopicCreation: false })
  await producer.connect()
  try {
    return await producer.send({ topic, acks: -1, messages: values.map(value => ({ value })) })
  } finally {
    await producer.disconnect()
  }
}

// A group member reading `n` records from the start, committing; a crash (e.g. group
// authorization failed) rejects.
async function consume (method, topic, groupId, n) {
  const consumer = client(method).consumer({
    groupId, maxWaitTimeInMs: 200, heartbeatInterval: 1000, sessionTimeout: 10000,
    retry: { retries: 2, initialRetryTime: 200, restartOnFailure: async () => false },
  })
  const got = []
  let resolveDone, rejectDone
  const done = new Promise((resolve, reject) => { resolveDone = resolve; rejectDone = reject })
  consumer.on(consumer.events.CRASH, ({ payload }) => rejectDone(payload.error))
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        got.push(message.value.toString())
        await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
        if (got.length >= n) resolveDone()
      },
    })
    await withTimeout(done, 20000, `consume ${n} from ${topic}`)
    return got
  } finally {
    await consumer.disconnect().catch(() => {})
  }
}

async function secureMain () {
  const RUN = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`
  const admin = client('scram512', 'admin')

  report('secure.scram_user', 'n/a', 'kafkajs has no AlterUserScramCredentials API; carol made with brook serve --add-scram')
  await scenario('secure.bad_password', async () => {
    const err = await refused(() => withAdmin(client('plain', 'alice', 'wrong-password', 0), a => a.listTopics()),
      ['authentication'], 'connect')
    return err
  })

  for (const m of Object.keys(METHODS)) {
    const topic = `kjs-sec-${m}-${RUN}`
    const group = `kjs-secg-${m}-${RUN}`
    const who = principal(m)
    const values = Array.from({ length: N }, (_, i) => `${m}-${i}`)
    const refuse = async (stage) => {
      const p = await refused(() => produce(m, topic, [`${stage}-x`]), ['topic authorization'], 'produce')
      // kafkajs looks the subscribed topic up before joining: its refusal may come first.
      const c = await refused(() => consume(m, topic, group, 1), ['group authorization', 'topic authorization'], 'group consume')
      return [p, c]
    }
    await scenario(`secure.${m}.refused`, async () => {
      await withAdmin(admin, a => a.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true }))
      const [p, c] = await refuse('before')
      const listed = await withAdmin(client(m), a => a.listTopics())
      check(!listed.includes(topic), `metadata lists ${topic} to ${who}`)
      return `${who}: produce refused (${p}); group consume refused (${c}); metadata hides the topic`
    })
    await scenario(`secure.${m}.allowed`, async () => {
      await withAdmin(admin, a => a.createAcls({ acl: acls(who, topic, group) }))
      await produce(m, topic, values)
      const got = await consume(m, topic, group, N)
      check(JSON.stringify(got) === JSON.stringify(values), `consumed ${got}`)
      const offsets = await withAdmin(admin, a => a.fetchOffsets({ groupId: group, topics: [topic] }))
      const committed = offsets[0].partitions[0].offset
      check(committed === String(N), `committed offset ${committed}`)
      return `admin.createAcls: 4 ACLs for ${who}; produced ${N}, consumed ${N} in group ${group}, committed offset ${committed}`
    })
    await scenario(`secure.${m}.revoked`, async () => {
      const res = await withAdmin(admin, a => a.deleteAcls({ filters: acls(who, topic, group) }))
      const n = res.filterResponses.reduce((s, r) => s + r.matchingAcls.length, 0)
      check(n === 4, `deleteAcls matched ${n}: ${JSON.stringify(res)}`)
      await sleep(100)
      const [p, c] = await refuse('after')
      return `admin.deleteAcls deleted ${n}; produce refused (${p}); group consume refused (${c})`
    })
  }
}

module.exports = { secureMain }
