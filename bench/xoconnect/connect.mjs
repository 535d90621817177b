// Times Xen Orchestra's connector (npm xen-api 4.7.6, from
// tests/peers/node/node_modules) against a running xenithd: from
// createClient(...).connect() until objectsFetched resolves, i.e. until the
// event watcher's initial <type>.get_all_records of every class is in the
// object cache. Prints one JSON line; exits 1 if xen-api swallowed a
// failed call (warnings) or, with --expect N, if the cache holds fewer than
// N VMs, N VM_metrics, 2N VBDs, 2N VDIs or N VIFs (problems).
//
//   node bench/xoconnect/connect.mjs --url http://127.0.0.1:PORT --password PW [--expect N]
import { parseArgs } from 'node:util'
import { createClient } from '../../tests/peers/node/node_modules/xen-api/index.mjs'

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    user: { type: 'string', default: 'root' },
    password: { type: 'string' },
    timeout: { type: 'string', default: '60' },
    expect: { type: 'string', default: '0' },
  },
})
if (!opts.url || opts.password === undefined) {
  console.error('usage: connect.mjs --url URL --password PW')
  process.exit(2)
}
const timer = setTimeout(() => {
  console.error(`timeout after ${opts.timeout} s`)
  process.exit(3)
}, Number(opts.timeout) * 1e3)

// xen-api logs (and swallows) a failed get_all_records with console.warn:
// count them, a cache filled without them is incomplete.
const warnings = []
console.warn = (...args) => warnings.push(args.map(String).join(' '))

const cpu0 = process.cpuUsage()
const t0 = performance.now()
const xapi = createClient({
  url: opts.url,
  allowUnauthorized: true,
  auth: { user: opts.user, password: opts.password },
  readOnly: true,
  watchEvents: true, // XO's default
})
await xapi.connect()
const tConnected = performance.now()
await xapi.objectsFetched
const tFetched = performance.now()
const cpu = process.cpuUsage(cpu0)

const byType = {}
for (const obj of Object.values(xapi.objects.all)) {
  byType[obj.$type] = (byType[obj.$type] ?? 0) + 1
}
const rss = process.memoryUsage().rss
const n = Number(opts.expect)
const problems = []
for (const [type, want] of [['VM', n], ['VM_metrics', n], ['VBD', 2 * n], ['VDI', 2 * n], ['VIF', n]]) {
  if ((byType[type] ?? 0) < want) problems.push(`${type}: ${byType[type] ?? 0} < ${want}`)
}
console.log(
  JSON.stringify({
    connect_ms: Math.round(tConnected - t0),
    fetched_ms: Math.round(tFetched - t0),
    objects: xapi.objects.size,
    types_watched: xapi._types?.length,
    VM: byType.VM ?? 0,
    VBD: byType.VBD ?? 0,
    VDI: byType.VDI ?? 0,
    VIF: byType.VIF ?? 0,
    VM_metrics: byType.VM_metrics ?? 0,
    node_cpu_ms: Math.round((cpu.user + cpu.system) / 1e3),
    node_rss_mib: Math.round(rss / 2 ** 20),
    warnings,
    problems,
  })
)
clearTimeout(timer)
await xapi.disconnect().catch(() => {})
process.exit(warnings.length === 0 && problems.length === 0 ? 0 : 1)
