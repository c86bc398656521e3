// What both kafkajs drivers (compat.js, secure.js) report with: one RESULT line per
// scenario on stdout, each scenario bounded in time.

const SCENARIO_TIMEOUT_MS = 45000

function report (scenario, status, detail) {
  console.log('RESULT ' + JSON.stringify({ scenario, status, detail: String(detail || '').slice(0, 2000) }))
}

function check (cond, msg) { if (!cond) throw new Error('check failed: ' + msg) }
const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

function withTimeout (promise, ms, what) {
  let t
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms) }),
  ])
}

async function scenario (name, fn) {
  const started = Date.now()
  try {
    const detail = await withTimeout(fn(), SCENARIO_TIMEOUT_MS, name)
    report(name, 'pass', `${detail || 'ok'} (${Date.now() - started} ms)`)
  } catch (e) {
    report(name, 'fail', (e && (e.stack || e.message)) || String(e))
  }
}

module.exports = { report, check, sleep, withTimeout, scenario }
