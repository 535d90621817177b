// Statistics as Xen Orchestra reads them, through the `xen-api` connector:
//
//   node tests/peers/node/stats.mjs --url http://127.0.0.1:PORT --user root --password PW
//
// A VM is started on the simulator and given a load (host.call_plugin sim
// load); xapi.getResource('/rrd_updates', {query}) with the query XO's
// stats module sends (cf=AVERAGE, host=true, interval=5, json=true,
// start=...) must then show the VM's vCPUs at that load and the host's
// memory, in JSON that a strict parser accepts. Prints one line per check;
// exits 1 on a failed check, 2 on a usage error, 3 on the global timeout.

import { parseArgs } from 'node:util'
import { createClient } from 'xen-api'

const GLOBAL_TIMEOUT_MS = 60e3
const MIB = 1024 * 1024
const NULL_REF = 'OpaqueRef:NULL'

setTimeout(() => {
  console.log(`FAIL global timeout of ${GLOBAL_TIMEOUT_MS / 1e3} s reached`)
  process.exit(3)
}, GLOBAL_TIMEOUT_MS).unref()

class CheckFailed extends Error {}
function check(name, cond, detail) {
  if (!cond) throw new CheckFailed(detail === undefined ? name : `${name}: ${detail}`)
  console.log('PASS ' + name)
}
const show = v => {
  const s = JSON.stringify(v)
  return s !== undefined && s.length > 600 ? s.slice(0, 600) + '…' : s
}

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    user: { type: 'string', default: 'root' },
    password: { type: 'string' },
  },
})
if (!opts.url || opts.password === undefined) {
  console.log('usage: node stats.mjs --url URL --user USER --password PW')
  process.exit(2)
}

async function rrdUpdates(xapi, query) {
  // XO's stats module: getResource with no task, then the body as text.
  const res = await xapi.getResource('/rrd_updates', { query, task: false })
  const text = await res.body.text()
  try {
    return JSON.parse(text) // strict JSON (XO itself uses JSON5, a superset)
  } catch (error) {
    throw new CheckFailed(`rrd_updates is not JSON (${error.message}): ${text.slice(0, 300)}`)
  }
}

async function main() {
  const xapi = createClient({
    url: opts.url.replace(/\/+$/, ''),
    allowUnauthorized: true,
    auth: { user: opts.user, password: opts.password },
    readOnly: false,
    watchEvents: false,
  })
  await xapi.connect()
  check('connected', xapi.status === 'connected', xapi.status)
  const [host] = await xapi.call('host.get_all')
  const hostUuid = await xapi.call('host.get_uuid', host)

  const vm = await xapi.call('VM.create', {
    name_label: 'xenith-peer-node-stats', name_description: 'tests/peers/node/stats.mjs', user_version: 1,
    is_a_template: false, affinity: NULL_REF,
    memory_static_min: 128 * MIB, memory_static_max: 256 * MIB, memory_dynamic_min: 256 * MIB, memory_dynamic_max: 256 * MIB,
    VCPUs_max: 2, VCPUs_at_startup: 2, VCPUs_params: {},
    actions_after_shutdown: 'destroy', actions_after_reboot: 'restart', actions_after_crash: 'destroy',
    PV_bootloader: '', PV_kernel: '', PV_ramdisk: '', PV_args: '', PV_bootloader_args: '', PV_legacy_args: '',
    HVM_boot_policy: 'BIOS order', HVM_boot_params: { order: 'cd' }, platform: {}, PCI_bus: '',
    other_config: {}, recommendations: '', xenstore_data: {}, tags: [], blocked_operations: {}, domain_type: 'hvm',
  })
  const vmUuid = await xapi.call('VM.get_uuid', vm)
  await xapi.call('VM.start', vm, false, false)
  await xapi.call('host.call_plugin', host, 'sim', 'load', { vm: vmUuid, cpu: '0.5', net_rx_kbs: '64' })
  const power = await xapi.call('VM.get_power_state', vm)
  check('VM running with a simulated load of half of each vCPU', power === 'Running', power)

  // What XO asks every 5 s: the last rows since its previous poll.
  const start = Math.floor(Date.now() / 1000) - 60
  const query = { cf: 'AVERAGE', host: 'true', interval: 5, json: 'true', start }
  let upd, cols
  const deadline = Date.now() + 40e3
  for (;;) {
    upd = await rrdUpdates(xapi, query)
    cols = {}
    upd.meta.legend.forEach((l, i) => { cols[l] = i })
    const c0 = cols[`AVERAGE:vm:${vmUuid}:cpu0`]
    // rows are newest first; the newest may still be filling
    if (c0 !== undefined && upd.data.some(r => Math.abs(r.values[c0] - 0.5) < 1e-6)) break
    if (Date.now() > deadline) throw new CheckFailed(`no cpu0 row at 0.5 within 40 s: ${show(upd)}`)
    await new Promise(resolve => setTimeout(resolve, 2000))
  }
  check('rrd_updates: meta.step is 5', upd.meta.step === 5, show(upd.meta))
  check('rrd_updates: columns = legend entries', upd.meta.columns === upd.meta.legend.length, show(upd.meta))
  check('rrd_updates: rows = data rows', upd.meta.rows === upd.data.length, show(upd.meta))
  check('rrd_updates: the VM\'s cpu1 too', cols[`AVERAGE:vm:${vmUuid}:cpu1`] !== undefined, show(upd.meta.legend))
  check('rrd_updates: the VM\'s memory',
    cols[`AVERAGE:vm:${vmUuid}:memory`] !== undefined, show(upd.meta.legend))
  const mem = upd.data[0].values[cols[`AVERAGE:vm:${vmUuid}:memory`]]
  check('rrd_updates: VM memory is 256 MiB', mem === 256 * MIB, mem)
  for (const ds of ['memory_total_kib', 'memory_free_kib', 'cpu_avg', 'loadavg']) {
    check(`rrd_updates: host ${ds}`, cols[`AVERAGE:host:${hostUuid}:${ds}`] !== undefined, show(upd.meta.legend))
  }
  check('rrd_updates: rows newest first, 5 s apart',
    upd.data.every((r, i) => i === 0 || r.t === upd.data[i - 1].t - 5), show(upd.data.map(r => r.t)))

  // The same through the XenAPI messages.
  const cpu0 = await xapi.call('VM.query_data_source', vm, 'cpu0')
  check('VM.query_data_source cpu0 = 0.5', Math.abs(cpu0 - 0.5) < 1e-6, cpu0)
  const sources = await xapi.call('VM.get_data_sources', vm)
  check('VM.get_data_sources lists cpu0 and cpu1',
    ['cpu0', 'cpu1'].every(n => sources.some(s => s.name_label === n && s.units === '(fraction)')), show(sources))

  await xapi.call('VM.hard_shutdown', vm)
  await xapi.call('VM.destroy', vm)
  await xapi.disconnect()
  console.log('PASS stats scenario')
}

main().then(
  () => process.exit(0),
  error => {
    console.log(`FAIL ${error instanceof CheckFailed ? error.message : error?.stack ?? error}`)
    process.exit(1)
  },
)
