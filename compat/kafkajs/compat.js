#!/usr/bin/env node
// Brook compatibility scenarios driven by kafkajs (pinned in package.json).
//
//   node compat.js 127.0.0.1:9092
//
// Prints one line per scenario: `RESULT {"scenario":..,"status":"pass|fail|n/a","detail":..}`.
// compat/run.sh collects those lines; anything else on stdout/stderr is the log.
'use strict'
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const { Kafka, logLevel, CompressionTypes, CompressionCodecs, ConfigResourceTypes } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
const { report, check, sleep, scenario } = require('./harness')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec

const bootstrap = process.argv[2] || '127.0.0.1:9092'
const RUN = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`

const kafka = new Kafka({
  clientId: 'brook-compat-kafkajs',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  retry: { retries: 5, initialRetryTime: 200 },
})

const topicName = (s) => `kjs-${s}-${RUN}`

async function createTopic (admin, topic, numPartitions = 1, configEntries = []) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1, configEntries }],
    waitForLeaders: true,
  })
  check(created === true, `createTopics(${topic}) returned ${created}`)
}

async function produce (messages, topic, opts = {}) {
  const producer = kafka.producer(opts.producer || { allowAutoTopicCreation: false })
  await producer.connect()
  try {
    return await producer.send({ topic, messages, acks: -1, compression: opts.compression })
  } finally {
    await producer.disconnect()
  }
}

// Runs a consumer in `groupId` until `want` messages arrived (or `until` returns true).
// `seekTo`: {partition, offset} applied right after run(). `onJoined`: called once the
// first fetch after the group join has completed (so "latest" is resolved).
async function consume (topic, { groupId, fromBeginning = true, want, autoCommit = true, seekTo, onFetched, keepRunning = false, readUncommitted = false }) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, heartbeatInterval: 1000, sessionTimeout: 10000, readUncommitted })
  const got = []
  let resolveDone
  const done = new Promise(resolve => { resolveDone = resolve })
  let fetchedOnce = false
  consumer.on(consumer.events.FETCH, () => {
    if (!fetchedOnce && onFetched) {
      fetchedOnce = true
      onFetched().catch(e => console.error('onFetched failed', e))
    }
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning })
  await consumer.run({
    autoCommit,
    eachMessage: async ({ partition, message }) => {
      got.push({ partition, ...message })
      if (got.length >= want) resolveDone()
    },
  })
  if (seekTo) consumer.seek({ topic, partition: seekTo.partition, offset: String(seekTo.offset) })
  await done
  if (!keepRunning) await consumer.disconnect()
  return { got, consumer }
}

function hdr (message, name) {
  const v = message.headers && message.headers[name]
  if (v === undefined || v === null) return v
  return Buffer.isBuffer(v) ? v.toString() : String(v)
}

async function main () {
  const admin = kafka.admin()
  await admin.connect()

  // ---- admin ----
  const adminTopic = topicName('admin')
  await scenario('admin.create', async () => {
    await createTopic(admin, adminTopic, 3, [{ name: 'retention.ms', value: '3600000' }])
    return `created ${adminTopic} with 3 partitions, retention.ms=3600000`
  })
  await scenario('admin.list', async () => {
    const topics = await admin.listTopics()
    check(topics.includes(adminTopic), `listTopics lacks ${adminTopic}: ${topics}`)
    return `${topics.length} topics`
  })
  await scenario('admin.describe', async () => {
    const md = await admin.fetchTopicMetadata({ topics: [adminTopic] })
    const t = md.topics.find(x => x.name === adminTopic)
    check(t && t.partitions.length === 3, `metadata partitions: ${JSON.stringify(t)}`)
    const cfg = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: adminTopic, configNames: ['retention.ms'] }],
      includeSynonyms: false,
    })
    const entry = cfg.resources[0].configEntries.find(e => e.configName === 'retention.ms')
    check(entry && entry.configValue === '3600000', `retention.ms: ${JSON.stringify(entry)}`)
    return 'metadata 3 partitions, describeConfigs retention.ms=3600000'
  })
  await scenario('admin.add_partitions', async () => {
    await admin.createPartitions({ topicPartitions: [{ topic: adminTopic, count: 5 }] })
    for (let i = 0; i < 20; i++) {
      const md = await admin.fetchTopicMetadata({ topics: [adminTopic] })
      if (md.topics[0].partitions.length === 5) return '3 -> 5 partitions'
      await sleep(200)
    }
    throw new Error('partition count did not become 5')
  })
  await scenario('admin.delete', async () => {
    await admin.deleteTopics({ topics: [adminTopic], timeout: 5000 })
    for (let i = 0; i < 20; i++) {
      const topics = await admin.listTopics()
      if (!topics.includes(adminTopic)) return 'deleted, gone from listTopics'
      await sleep(200)
    }
    throw new Error('topic still listed after delete')
  })

  // ---- produce ----
  await scenario('produce.keys_headers', async () => {
    const topic = topicName('keys')
    await createTopic(admin, topic, 3)
    const msgs = []
    for (let i = 0; i < 30; i++) {
      msgs.push({ key: `key-${i}`, value: `value-${i}`, headers: { 'h-index': String(i), 'h-const': 'brook' } })
    }
    await produce(msgs, topic)
    const { got } = await consume(topic, { groupId: `kjs-keys-${RUN}`, want: 30 })
    check(got.length === 30, `got ${got.length}`)
    const byKey = new Map()
    for (const m of got) byKey.set(m.key.toString(), m)
    for (let i = 0; i < 30; i++) {
      const m = byKey.get(`key-${i}`)
      check(m, `key-${i} missing`)
      check(m.value.toString() === `value-${i}`, `value for key-${i}: ${m.value}`)
      check(hdr(m, 'h-index') === String(i) && hdr(m, 'h-const') === 'brook', `headers for key-${i}: ${JSON.stringify(m.headers)}`)
    }
    // the same key always lands on the same partition
    const partitions = new Set(got.map(m => m.partition))
    return `30 keyed records with 2 headers each over ${partitions.size} partitions`
  })

  const codecs = [['gzip', CompressionTypes.GZIP], ['snappy', CompressionTypes.Snappy], ['lz4', CompressionTypes.LZ4]]
  for (const [name, type] of codecs) {
    await scenario(`produce.${name}`, async () => {
      const topic = topicName(name)
      await createTopic(admin, topic, 1)
      const msgs = []
      for (let i = 0; i < 50; i++) msgs.push({ key: `k${i}`, value: `${name} record ${i} `.repeat(20) })
      await produce(msgs, topic, { compression: type })
      const { got } = await consume(topic, { groupId: `kjs-${name}-${RUN}`, want: 50 })
      for (let i = 0; i < 50; i++) {
        check(got[i].value.toString() === msgs[i].value, `record ${i} differs`)
        check(got[i].offset === String(i), `record ${i} at offset ${got[i].offset}`)
      }
      return `50 records, ${name}-compressed batch, read back intact`
    })
  }
  report('produce.zstd', 'n/a', 'kafkajs has no built-in zstd codec; the plugin @kafkajs/zstd (native cppzst) does not build on Node 20')

  await scenario('produce.idempotent', async () => {
    const topic = topicName('idem')
    await createTopic(admin, topic, 1)
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 2000 } })
    await producer.connect()
    try {
      for (let b = 0; b < 5; b++) {
        const msgs = []
        for (let i = 0; i < 20; i++) msgs.push({ value: `idem-${b * 20 + i}` })
        await producer.send({ topic, messages: msgs, acks: -1 })
      }
    } finally {
      await producer.disconnect()
    }
    const { got } = await consume(topic, { groupId: `kjs-idem-${RUN}`, want: 100 })
    await sleep(300)
    check(got.length === 100, `got ${got.length}`)
    got.forEach((m, i) => check(m.value.toString() === `idem-${i}` && m.offset === String(i), `record ${i}: ${m.offset} ${m.value}`))
    return '100 records in 5 idempotent sends (acks=all), exactly once, in order'
  })

  // ---- consume ----
  const consumeTopic = topicName('consume')
  await scenario('consume.earliest', async () => {
    await createTopic(admin, consumeTopic, 1)
    const msgs = []
    for (let i = 0; i < 10; i++) msgs.push({ value: `old-${i}` })
    await produce(msgs, consumeTopic)
    const { got } = await consume(consumeTopic, { groupId: `kjs-earliest-${RUN}`, fromBeginning: true, want: 10 })
    check(got[0].offset === '0' && got[0].value.toString() === 'old-0', `first: ${got[0].offset}`)
    return 'new group with fromBeginning read offsets 0..9'
  })
  await scenario('consume.latest', async () => {
    const fresh = []
    for (let i = 0; i < 5; i++) fresh.push({ value: `new-${i}` })
    const { got } = await consume(consumeTopic, {
      groupId: `kjs-latest-${RUN}`,
      fromBeginning: false,
      want: 5,
      onFetched: async () => { await produce(fresh, consumeTopic) },
    })
    check(got[0].value.toString() === 'new-0' && got[0].offset === '10', `first: ${got[0].offset} ${got[0].value}`)
    return 'new group without fromBeginning skipped the 10 old records, read the 5 new ones from offset 10'
  })
  await scenario('consume.timestamp', async () => {
    const topic = topicName('ts')
    await createTopic(admin, topic, 1)
    const t0 = Date.now() - 600000
    const t1 = Date.now() - 300000
    const msgs = []
    for (let i = 0; i < 10; i++) msgs.push({ value: `ts-${i}`, timestamp: String(i < 6 ? t0 + i : t1 + i) })
    await produce(msgs, topic)
    const offsets = await admin.fetchTopicOffsetsByTimestamp(topic, t1)
    check(offsets.length === 1 && offsets[0].offset === '6', `fetchTopicOffsetsByTimestamp: ${JSON.stringify(offsets)}`)
    const { got } = await consume(topic, { groupId: `kjs-ts-${RUN}`, fromBeginning: true, want: 4, seekTo: { partition: 0, offset: offsets[0].offset } })
    check(got[0].offset === '6' && got[0].value.toString() === 'ts-6', `first: ${got[0].offset} ${got[0].value}`)
    check(got[0].timestamp === String(t1 + 6), `timestamp kept: ${got[0].timestamp} vs ${t1 + 6}`)
    return 'fetchTopicOffsetsByTimestamp -> 6, seek, read ts-6..ts-9 with their CreateTime'
  })

  // ---- groups ----
  await scenario('group.commit_resume', async () => {
    const topic = topicName('group')
    const groupId = `kjs-group-${RUN}`
    await createTopic(admin, topic, 1)
    const msgs = []
    for (let i = 0; i < 10; i++) msgs.push({ value: `g-${i}` })
    await produce(msgs, topic)
    // first consumer: manual commit of offset 6 (records 0..5 processed), then close
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
    let resolveSix
    const six = new Promise(resolve => { resolveSix = resolve })
    let seen = 0
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async () => { seen++; if (seen === 6) resolveSix() },
    })
    await six
    await consumer.commitOffsets([{ topic, partition: 0, offset: '6' }])
    await consumer.disconnect()
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
    check(committed[0].partitions[0].offset === '6', `fetchOffsets: ${JSON.stringify(committed)}`)
    // a new consumer in the same group resumes from 6
    const { got } = await consume(topic, { groupId, fromBeginning: true, want: 4 })
    check(got[0].offset === '6' && got[0].value.toString() === 'g-6', `resumed at ${got[0].offset}`)
    return 'committed 6, closed, new member resumed at offset 6'
  })
  await scenario('group.describe_lag', async () => {
    const topic = topicName('lag')
    const groupId = `kjs-lag-${RUN}`
    await createTopic(admin, topic, 1)
    const msgs = []
    for (let i = 0; i < 10; i++) msgs.push({ value: `l-${i}` })
    await produce(msgs, topic)
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
    let resolveFour
    const four = new Promise(resolve => { resolveFour = resolve })
    let seen = 0
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({ autoCommit: false, eachMessage: async () => { seen++; if (seen === 4) resolveFour() } })
    await four
    await consumer.commitOffsets([{ topic, partition: 0, offset: '4' }])
    try {
      const { groups } = await admin.describeGroups([groupId])
      const g = groups[0]
      check(g.state === 'Stable' && g.members.length === 1 && g.protocolType === 'consumer', `describeGroups: ${JSON.stringify(g)}`)
      const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
      const end = await admin.fetchTopicOffsets(topic)
      const lag = Number(end[0].high) - Number(committed[0].partitions[0].offset)
      check(lag === 6, `lag ${lag} (end ${end[0].high}, committed ${committed[0].partitions[0].offset})`)
      return `group Stable with 1 member (${g.protocol}), committed 4, end 10, lag 6`
    } finally {
      await consumer.disconnect()
    }
  })

  // ---- transactions ----
  const txnProducer = async (name) => {
    const producer = kafka.producer({ transactionalId: `kjs-${name}-${RUN}`, idempotent: true, maxInFlightRequests: 1, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 2000 } })
    await producer.connect()
    return producer
  }
  const seq = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)
  const range = (from, to) => Array.from({ length: to - from }, (_, i) => String(from + i))
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

  // Committed transaction of 10, aborted one of 5 (transaction.send resolves with the
  // broker's ack, so they are on the broker before the abort), committed one of 7; with the
  // control markers the log is c1 0..9, commit 10, ab 11..15, abort 16, c2 17..23, commit 24.
  await scenario('txn.commit_abort', async () => {
    const topic = topicName('txn')
    await createTopic(admin, topic, 1)
    const producer = await txnProducer('txn')
    let abortedAt, lsoOpen
    try {
      const t1 = await producer.transaction()
      await t1.send({ topic, messages: seq('c1', 10).map(value => ({ value })), acks: -1 })
      await t1.commit()
      const t2 = await producer.transaction()
      const md = await t2.send({ topic, messages: seq('ab', 5).map(value => ({ value })), acks: -1 })
      abortedAt = md[0].baseOffset
      lsoOpen = (await admin.fetchTopicOffsets(topic))[0].high // ListOffsets, READ_COMMITTED
      await t2.abort()
      const t3 = await producer.transaction()
      await t3.send({ topic, messages: seq('c2', 7).map(value => ({ value })), acks: -1 })
      await t3.commit()
    } finally {
      await producer.disconnect()
    }
    check(abortedAt === '11', `aborted batch acked at base offset ${abortedAt}, want 11`)
    check(lsoOpen === '11', `read_committed end offset (LSO) while the 2nd transaction was open: ${lsoOpen}, want 11`)
    const rc = (await consume(topic, { groupId: `kjs-txn-rc-${RUN}`, want: 17 })).got
    check(same(rc.map(m => m.value.toString()), [...seq('c1', 10), ...seq('c2', 7)]), `read_committed values ${rc.map(m => m.value.toString())}`)
    check(same(rc.map(m => m.offset), [...range(0, 10), ...range(17, 24)]), `read_committed offsets ${rc.map(m => m.offset)}`)
    const ru = (await consume(topic, { groupId: `kjs-txn-ru-${RUN}`, want: 22, readUncommitted: true })).got
    check(same(ru.map(m => m.value.toString()), [...seq('c1', 10), ...seq('ab', 5), ...seq('c2', 7)]), `read_uncommitted values ${ru.map(m => m.value.toString())}`)
    const lso = (await admin.fetchTopicOffsets(topic))[0].high
    check(lso === '25', `read_committed end offset after the last commit ${lso}, want 25`)
    return 'commit 10, abort 5 (acked at 11..15), commit 7: readUncommitted:false read the 17 committed (offsets 0..9, 17..23), ' +
      'readUncommitted:true all 22; LSO 11 while the abort was open, 25 after'
  })

  // Consume-transform-produce: a read_committed group member (autoCommit off) reads 10 records;
  // transaction 1 produces the first 6 transformed with sendOffsets(6) and commits; transaction
  // 2 the other 4 with sendOffsets(10) and aborts (the group stays at 6); the member seeks back
  // to 6 and transaction 3 redoes the 4 with sendOffsets(10) and commits.
  await scenario('txn.offsets', async () => {
    const input = topicName('txn-in')
    const output = topicName('txn-out')
    const groupId = `kjs-txn-${RUN}`
    await createTopic(admin, input, 1)
    await createTopic(admin, output, 1)
    await produce(seq('in', 10).map(value => ({ value })), input)
    const queue = []
    let waiter = null
    const take = (n) => new Promise(resolve => {
      const tryTake = () => { if (queue.length >= n) { waiter = null; resolve(queue.splice(0, n)) } }
      waiter = tryTake
      tryTake()
    })
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, readUncommitted: false })
    const producer = await txnProducer('txo')
    const offsetsFor = (offset) => ({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset }] }] })
    const transform = (ms) => ms.map(m => ({ value: m.value.toString().toUpperCase() }))
    // kafkajs's OffsetFetch has no require_stable (KIP-447): right after EndTxn, before the
    // marker reached __consumer_offsets, it may still answer the previous offset.
    const groupOffset = async (want) => {
      let off
      for (let i = 0; i < 50; i++) {
        off = (await admin.fetchOffsets({ groupId, topics: [input] }))[0].partitions[0].offset
        if (off === want) break
        await sleep(100)
      }
      return off
    }
    let afterAbort, final
    try {
      await consumer.connect()
      await consumer.subscribe({ topics: [input], fromBeginning: true })
      await consumer.run({ autoCommit: false, eachMessage: async ({ message }) => { queue.push(message); if (waiter) waiter() } })
      const got = await take(10)
      check(same(got.map(m => m.offset), range(0, 10)), `input offsets ${got.map(m => m.offset)}`)
      const t1 = await producer.transaction()
      await t1.send({ topic: output, messages: transform(got.slice(0, 6)), acks: -1 })
      await t1.sendOffsets(offsetsFor('6'))
      await t1.commit()
      const t2 = await producer.transaction()
      await t2.send({ topic: output, messages: transform(got.slice(6)), acks: -1 })
      await t2.sendOffsets(offsetsFor('10'))
      await t2.abort()
      afterAbort = (await admin.fetchOffsets({ groupId, topics: [input] }))[0].partitions[0].offset
      check(afterAbort === '6', `group offset after the aborted transaction ${afterAbort}, want 6`)
      consumer.seek({ topic: input, partition: 0, offset: afterAbort })
      const again = await take(4)
      check(same(again.map(m => m.offset), range(6, 10)), `re-read offsets ${again.map(m => m.offset)}`)
      const t3 = await producer.transaction()
      await t3.send({ topic: output, messages: transform(again), acks: -1 })
      await t3.sendOffsets(offsetsFor('10'))
      await t3.commit()
      final = await groupOffset('10')
      check(final === '10', `group offset after the last commit ${final}, want 10`)
    } finally {
      await producer.disconnect()
      await consumer.disconnect()
    }
    const want = seq('IN', 10)
    const rc = (await consume(output, { groupId: `kjs-txn-out-rc-${RUN}`, want: 10 })).got
    check(same(rc.map(m => m.value.toString()), want), `output read_committed ${rc.map(m => m.value.toString())}`)
    const ru = (await consume(output, { groupId: `kjs-txn-out-ru-${RUN}`, want: 14, readUncommitted: true })).got
    check(same(ru.map(m => m.value.toString()), [...want, ...want.slice(6)]), `output read_uncommitted ${ru.map(m => m.value.toString())}`)
    return 'read_committed member: txn 1 (6 + sendOffsets 6) committed, txn 2 (4 + sendOffsets 10) aborted -> fetchOffsets 6, seek, ' +
      'txn 3 (4 + sendOffsets 10) committed; output read_committed IN-0..IN-9 once, readUncommitted 14; group offset 10'
  })

  await admin.disconnect()
}

(process.env.COMPAT_SECURE ? require('./secure').secureMain() : main())
  .then(() => process.exit(0)).catch(e => { console.error('fatal', e); process.exit(1) })
