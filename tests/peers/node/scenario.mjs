// Peer-client scenario: Xenith driven by Xen Orchestra's `xen-api` connector.
//
//   node tests/peers/node/scenario.mjs --url http://127.0.0.1:PORT --user root --password PW [--events]
//
// (or env XENITH_URL / XENITH_USER / XENITH_PASSWORD; XENITH_NODE_EVENTS=1 = --events).
// Prints one line per check; exits 1 on the first failed check, 2 on a usage or
// set-up error, 3 when the global 60 s timeout fires.
//
// What xen-api 4.7.6 does on the wire (read from node_modules/xen-api):
// - transport 'auto': JSON-RPC first, POST <url>/jsonrpc with Content-Type and
//   Accept application/json, body {"id":0,"jsonrpc":"2.0","method":M,"params":[...]}.
//   The answer is taken as JSON-RPC only if its Content-Type is exactly
//   "application/json" (no "; charset=..."); anything else raises
//   UnsupportedTransport and the client switches for good to XML-RPC at
//   POST <url>/xmlrpc (not / nor /RPC2), which in turn accepts only Content-Type
//   exactly "text/xml" or "application/xml".
// - JSON-RPC answers are parsed by json-rpc-protocol: a 2.0 success must carry
//   `result` and NO `error` key (even `"error": null` counts as an error), `id`
//   must be a number or string; an error must be {code: <integer>, message:
//   <string>, data: [...]}; xen-api turns it into XapiError{code: message,
//   params: data}.
// - connect(): session.login_with_password [user, password] (two params),
//   pool.get_all_records [session], system.listMethods [] (no session); the
//   types it will watch are the classes that have <class>.get_all_records.
// - Unless `watchEvents: false` is given to the constructor, it also starts (in
//   the background; connect() does not wait for it) an event watcher:
//   event.inject [session, 'pool', poolRef] for a token, then every
//   <type>.get_all_records, then event.from [session, types, token, 60.1] in a
//   loop.  On MESSAGE_METHOD_UNKNOWN from event.inject it falls back to
//   get_all_records + event.register + event.next; on other errors it logs and
//   retries after 60 s.  The main scenario passes `watchEvents: false` so that
//   it does not depend on the event machinery; --events runs an extra client
//   with the watcher and waits for `objectsFetched` (the initial full fetch).
// - xapi.call(method, ...args) prepends the session ref; `<class>.get_*` calls
//   with at most one string argument are retried on ECONNRESET.

import { randomUUID } from 'node:crypto'
import diagnosticsChannel from 'node:diagnostics_channel'
import { parseArgs } from 'node:util'
import { createClient } from 'xen-api'

const GLOBAL_TIMEOUT_MS = 60e3
const NULL_REF = 'OpaqueRef:NULL'
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const MIB = 1024 * 1024
const GIB = 1024 * MIB

const timer = setTimeout(() => {
  console.log(`FAIL [${currentStep}] global timeout of ${GLOBAL_TIMEOUT_MS / 1e3} s reached`)
  process.exit(3)
}, GLOBAL_TIMEOUT_MS)

let currentStep = 'start'
class CheckFailed extends Error {}

function step(name) {
  currentStep = name
  console.log('---- ' + name)
}

function check(name, cond, detail) {
  if (!cond) {
    throw new CheckFailed(detail === undefined ? name : `${name}: ${detail}`)
  }
  console.log('PASS ' + name)
}

const show = v => {
  const s = JSON.stringify(v)
  return s !== undefined && s.length > 400 ? s.slice(0, 400) + '…' : s
}
const isRef = v => typeof v === 'string' && v.startsWith('OpaqueRef:') && v !== NULL_REF
// XenAPI ints: JSON numbers from xapi's JSON-RPC; tolerate decimal strings too.
const intOf = v => (typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN)

async function expectError(name, promise, code, params) {
  let result
  try {
    result = await promise
  } catch (error) {
    if (error?.code !== code) {
      throw new CheckFailed(`${name}: expected error ${code}, got ${error?.code ?? ''} ${error?.stack ?? error}`)
    }
    if (params !== undefined && show(error.params) !== show(params)) {
      throw new CheckFailed(`${name}: expected ${code} params ${show(params)}, got ${show(error.params)}`)
    }
    console.log(`PASS ${name} (${error.code} ${show(error.params)})`)
    return error
  }
  throw new CheckFailed(`${name}: expected error ${code}, but the call succeeded with ${show(result)}`)
}

// ---------------------------------------------------------------------------
// HTTP request log (every undici request, including xen-api's own copy of undici)

const httpLog = []
diagnosticsChannel.channel('undici:request:headers').subscribe(({ request, response }) => {
  let contentType
  const h = response.headers // raw: [name, value, name, value, ...] as Buffers
  for (let i = 0; i + 1 < h.length; i += 2) {
    if (String(h[i]).toLowerCase() === 'content-type') contentType = String(h[i + 1])
  }
  let rpc
  try {
    rpc = JSON.parse(String(request.body)).method // JSON-RPC method name (never the params: passwords)
  } catch {
    rpc = undefined // XML-RPC body or none
  }
  httpLog.push({ rpc, method: request.method, path: request.path, status: response.statusCode, contentType })
})

// ---------------------------------------------------------------------------

function usage(msg) {
  console.log(`usage error: ${msg}\nusage: node scenario.mjs --url URL --user USER --password PW [--events]`)
  process.exit(2)
}

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.XENITH_URL },
    user: { type: 'string', default: process.env.XENITH_USER ?? 'root' },
    password: { type: 'string', default: process.env.XENITH_PASSWORD },
    events: { type: 'boolean', default: process.env.XENITH_NODE_EVENTS === '1' },
  },
})
if (!opts.url) usage('--url is required')
if (opts.password === undefined) usage('--password is required')
const baseUrl = opts.url.replace(/\/+$/, '')

function newClient(extra = {}) {
  return createClient({
    url: baseUrl,
    allowUnauthorized: true,
    auth: { user: opts.user, password: opts.password },
    readOnly: false,
    // see the header: the main flow must not depend on event.from/event.inject
    watchEvents: false,
    callTimeout: 20e3,
    ...extra,
  })
}

// raw JSON-RPC call, to check the wire format the connector relies on
async function rawJsonRpc(method, params) {
  const res = await fetch(baseUrl + '/jsonrpc', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ id: 0, jsonrpc: '2.0', method, params }),
  })
  const text = await res.text()
  let body
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  return { status: res.status, contentType: res.headers.get('content-type'), text, body }
}

async function scenario() {
  // ------------------------------------------------------------------ connect
  step('connect')
  const xapi = newClient()
  const logStart = httpLog.length
  await xapi.connect()
  check('connect() -> status connected', xapi.status === 'connected', xapi.status)
  check('session id is an OpaqueRef', isRef(xapi.sessionId), show(xapi.sessionId))
  const pool = xapi.pool
  check('connector cached the pool record', pool !== null && isRef(pool.$ref), show(pool))
  const connectLog = httpLog.slice(logStart)
  console.log('info: connect() sent ' + connectLog.map(r => `${r.method} ${r.path} ${r.rpc ?? '?'}`).join(', '))
  check(
    'connect used JSON-RPC: every request was POST /jsonrpc',
    connectLog.length >= 3 && connectLog.every(r => r.method === 'POST' && r.path === '/jsonrpc'),
    show(connectLog)
  )
  check(
    'JSON-RPC answers carry Content-Type exactly application/json',
    connectLog.every(r => r.status === 200 && r.contentType === 'application/json'),
    `${show(connectLog)} (xen-api falls back to XML-RPC at /xmlrpc on anything else)`
  )

  // ------------------------------------------------------------------ wire format
  step('JSON-RPC wire format')
  {
    const bad = await rawJsonRpc('pool.get_all', ['OpaqueRef:not-a-session'])
    check('raw: HTTP 200 + application/json', bad.status === 200 && bad.contentType === 'application/json',
      `${bad.status} ${bad.contentType}`)
    const e = bad.body?.error
    check(
      'raw: error is {code: integer, message: "SESSION_INVALID", data: [ref]}',
      bad.body?.jsonrpc === '2.0' && bad.body?.id === 0 && !('result' in bad.body) &&
        Number.isInteger(e?.code) && e?.message === 'SESSION_INVALID' && Array.isArray(e?.data) &&
        e.data[0] === 'OpaqueRef:not-a-session',
      bad.text
    )
    const good = await rawJsonRpc('pool.get_all', [xapi.sessionId])
    check(
      'raw: success is {jsonrpc: "2.0", id: 0, result} with no error key',
      good.body?.jsonrpc === '2.0' && good.body?.id === 0 && Array.isArray(good.body?.result) &&
        !('error' in good.body),
      good.text
    )
    const methods = await rawJsonRpc('system.listMethods', [])
    check(
      'system.listMethods (no session) lists <class>.get_all_records',
      Array.isArray(methods.body?.result) && methods.body.result.includes('VM.get_all_records') &&
        methods.body.result.includes('pool.get_all_records'),
      methods.text.slice(0, 300)
    )
  }

  // ------------------------------------------------------------------ inventory
  step('inventory')
  const pools = await xapi.call('pool.get_all_records')
  const poolRefs = Object.keys(pools)
  check('pool.get_all_records has exactly one pool', poolRefs.length === 1, show(poolRefs))
  check('... and it is the connector\'s pool', poolRefs[0] === pool.$ref)
  const poolRec = pools[poolRefs[0]]
  check('pool.uuid is a UUID', UUID_RE.test(poolRec.uuid ?? ''), show(poolRec.uuid))
  const hosts = await xapi.call('host.get_all_records')
  const hostRefs = Object.keys(hosts)
  check('exactly one host', hostRefs.length === 1, show(hostRefs))
  const host = hostRefs[0]
  check('pool.master is the host', poolRec.master === host, `${poolRec.master} vs ${host}`)
  check('host.name_label non-empty', typeof hosts[host].name_label === 'string' && hosts[host].name_label !== '')
  check('host.API_version_major is an int', Number.isInteger(intOf(hosts[host].API_version_major)),
    show(hosts[host].API_version_major))
  const srs = await xapi.call('SR.get_all_records')
  check('an SR with a PBD', Object.values(srs).some(sr => sr.PBDs?.length > 0), show(srs))
  const networks = await xapi.call('network.get_all_records')
  check('a network with a PIF', Object.values(networks).some(n => n.PIFs?.length > 0), show(networks))
  const vms = await xapi.call('VM.get_all_records')
  const dom0 = Object.entries(vms).filter(([, vm]) => vm.is_control_domain === true)
  check('exactly one control-domain VM', dom0.length === 1,
    show(Object.fromEntries(Object.entries(vms).map(([r, v]) => [r, [v.name_label, v.is_control_domain]]))))
  check('control domain resident_on the host', dom0[0][1].resident_on === host, show(dom0[0][1].resident_on))
  // the connector's read helpers
  const hostRecord = await xapi.getRecord('host', host)
  check('xapi.getRecord(host) wraps the record', hostRecord.$ref === host && hostRecord.uuid === hosts[host].uuid)
  check('xapi.getField(host, name_label)', (await xapi.getField('host', host, 'name_label')) === hosts[host].name_label)

  // ------------------------------------------------------------------ VM create
  step('VM.create')
  const tag = Math.random().toString(36).slice(2, 10)
  const name = `xenith-peer-node-${tag}`
  // the record shape XO's @xen-orchestra/xapi VM create() sends (ints as JSON numbers)
  const vmRecord = {
    name_label: name,
    name_description: 'created by tests/peers/node/scenario.mjs',
    user_version: 1,
    is_a_template: false,
    affinity: NULL_REF,
    memory_static_min: 256 * MIB,
    memory_static_max: GIB,
    memory_dynamic_min: GIB,
    memory_dynamic_max: GIB,
    VCPUs_max: 2,
    VCPUs_at_startup: 2,
    VCPUs_params: {},
    actions_after_shutdown: 'destroy',
    actions_after_reboot: 'restart',
    actions_after_crash: 'restart',
    PV_bootloader: '',
    PV_kernel: '',
    PV_ramdisk: '',
    PV_args: '',
    PV_bootloader_args: '',
    PV_legacy_args: '',
    HVM_boot_policy: 'BIOS order',
    HVM_boot_params: { order: 'cdn' },
    platform: { acpi: '1', apic: 'true', pae: 'true', nx: 'true', viridian: 'false' },
    PCI_bus: '',
    other_config: { 'xenith-test': tag },
    recommendations: '',
    xenstore_data: {},
    tags: ['peer-node'],
    blocked_operations: {},
    domain_type: 'hvm',
    has_vendor_device: false,
    order: 0,
    start_delay: 0,
    shutdown_delay: 0,
    hardware_platform_version: 0,
  }
  const vmRef = await xapi.call('VM.create', vmRecord)
  check('VM.create returns a ref', isRef(vmRef), show(vmRef))
  let rec = await xapi.call('VM.get_record', vmRef)
  const vmUuid = rec.uuid
  check('VM.uuid is a UUID', UUID_RE.test(vmUuid ?? ''), show(vmUuid))
  check('VM.name_label', rec.name_label === name, show(rec.name_label))
  check('VM.power_state Halted', rec.power_state === 'Halted', show(rec.power_state))
  check('VM.memory_static_max', intOf(rec.memory_static_max) === GIB, show(rec.memory_static_max))
  check('VM.VCPUs_max', intOf(rec.VCPUs_max) === 2, show(rec.VCPUs_max))
  check('VM.domain_type', rec.domain_type === 'hvm', show(rec.domain_type))
  check('VM.tags', show(rec.tags) === '["peer-node"]', show(rec.tags))
  check('VM.other_config', rec.other_config?.['xenith-test'] === tag, show(rec.other_config))
  check('VM.is_control_domain false', rec.is_control_domain === false)
  check('VM.get_by_uuid', (await xapi.call('VM.get_by_uuid', vmUuid)) === vmRef)
  check('VM.get_by_name_label', show(await xapi.call('VM.get_by_name_label', name)) === show([vmRef]))
  check('VM in VM.get_all', (await xapi.call('VM.get_all')).includes(vmRef))

  // ------------------------------------------------------------------ VM set
  step('VM setters')
  await xapi.call('VM.set_name_label', vmRef, name + '-renamed')
  check('VM.set_name_label', (await xapi.call('VM.get_name_label', vmRef)) === name + '-renamed')
  await xapi.call('VM.set_name_description', vmRef, 'described by node')
  check('VM.set_name_description', (await xapi.call('VM.get_name_description', vmRef)) === 'described by node')
  // XO's setFieldEntry: remove_from_<map> (no error if absent), then add_to_<map>
  await xapi.setFieldEntry('VM', vmRef, 'other_config', 'xo-key', 'xo-value')
  check('setFieldEntry (remove_from + add_to_other_config)',
    (await xapi.call('VM.get_other_config', vmRef))['xo-key'] === 'xo-value')
  await expectError('VM.add_to_other_config duplicate -> MAP_DUPLICATE_KEY',
    xapi.call('VM.add_to_other_config', vmRef, 'xo-key', 'again'), 'MAP_DUPLICATE_KEY')
  await xapi.setFieldEntry('VM', vmRef, 'other_config', 'xo-key', null)
  let oc = await xapi.call('VM.get_other_config', vmRef)
  check('setFieldEntry(null) -> remove_from_other_config', !('xo-key' in oc) && oc['xenith-test'] === tag, show(oc))
  await xapi.call('VM.add_to_other_config', vmRef, 'k2', 'v2')
  await xapi.call('VM.remove_from_other_config', vmRef, 'k2')
  oc = await xapi.call('VM.get_other_config', vmRef)
  check('add_to/remove_from_other_config', !('k2' in oc), show(oc))
  await xapi.call('VM.add_tags', vmRef, 'second')
  check('VM.add_tags', (await xapi.call('VM.get_tags', vmRef)).includes('second'))
  rec = await xapi.call('VM.get_record', vmRef)
  check('record reflects the setters',
    rec.name_label === name + '-renamed' && rec.name_description === 'described by node' &&
      rec.tags.includes('second') && rec.other_config['xenith-test'] === tag,
    show({ name_label: rec.name_label, name_description: rec.name_description, tags: rec.tags,
      other_config: rec.other_config }))

  // ------------------------------------------------------------------ errors
  step('error codes')
  const bogus = 'OpaqueRef:' + randomUUID()
  await expectError('VM.get_record(bad ref) -> HANDLE_INVALID [VM, ref]',
    xapi.call('VM.get_record', bogus), 'HANDLE_INVALID', ['VM', bogus])
  await expectError('VM.set_name_label(bad ref) -> HANDLE_INVALID [VM, ref]',
    xapi.call('VM.set_name_label', bogus, 'x'), 'HANDLE_INVALID', ['VM', bogus])
  await expectError('VM.get_by_uuid(unknown) -> UUID_INVALID [VM, uuid]',
    xapi.call('VM.get_by_uuid', '00000000-0000-0000-0000-000000000000'), 'UUID_INVALID',
    ['VM', '00000000-0000-0000-0000-000000000000'])
  await expectError('VM.no_such_method -> MESSAGE_METHOD_UNKNOWN',
    xapi.call('VM.no_such_method', vmRef), 'MESSAGE_METHOD_UNKNOWN', ['VM.no_such_method'])
  await expectError('VM.set_name_label missing value -> MESSAGE_PARAMETER_COUNT_MISMATCH',
    xapi.call('VM.set_name_label', vmRef), 'MESSAGE_PARAMETER_COUNT_MISMATCH')

  // ------------------------------------------------------------------ destroy
  step('VM.destroy')
  await xapi.call('VM.destroy', vmRef)
  check('VM gone from VM.get_all', !(await xapi.call('VM.get_all')).includes(vmRef))
  await expectError('stale VM ref -> HANDLE_INVALID [VM, ref]',
    xapi.call('VM.get_record', vmRef), 'HANDLE_INVALID', ['VM', vmRef])
  await expectError('destroyed VM uuid -> UUID_INVALID',
    xapi.call('VM.get_by_uuid', vmUuid), 'UUID_INVALID', ['VM', vmUuid])

  // ------------------------------------------------------------------ explicit setters
  // explicit (non-generated) messages with constraints, on a second VM
  step('VM.set_memory_static_max / set_VCPUs_at_startup')
  const vm2 = await xapi.call('VM.create', { ...vmRecord, name_label: name + '-mem', other_config: {} })
  await xapi.call('VM.set_memory_static_max', vm2, 2 * GIB)
  check('VM.set_memory_static_max', intOf(await xapi.call('VM.get_memory_static_max', vm2)) === 2 * GIB)
  await xapi.setField('VM', vm2, 'VCPUs_at_startup', 1)
  check('xapi.setField(VCPUs_at_startup) -> VM.set_VCPUs_at_startup',
    intOf(await xapi.call('VM.get_VCPUs_at_startup', vm2)) === 1)
  await xapi.call('VM.destroy', vm2)

  // ------------------------------------------------------------------ sessions
  step('sessions')
  const wrong = newClient({ auth: { user: opts.user, password: opts.password + '-wrong' } })
  await expectError('wrong password -> SESSION_AUTHENTICATION_FAILED', wrong.connect(),
    'SESSION_AUTHENTICATION_FAILED')
  check('failed connect leaves the client disconnected', wrong.status === 'disconnected', wrong.status)

  // xen-api re-opens the session once on SESSION_INVALID: log the session out
  // behind its back (raw JSON-RPC), then call again through the connector.
  const oldSession = xapi.sessionId
  const out = await rawJsonRpc('session.logout', [oldSession])
  check('raw session.logout', out.body !== undefined && 'result' in out.body, out.text)
  const stillPools = await xapi.call('pool.get_all')
  check('connector re-logs in after SESSION_INVALID', show(stillPools) === show([pool.$ref]) &&
    xapi.sessionId !== oldSession, `${show(stillPools)} session ${xapi.sessionId}`)

  check('everything went through /jsonrpc (no XML-RPC fallback)',
    httpLog.every(r => r.path === '/jsonrpc'),
    show(httpLog.filter(r => r.path !== '/jsonrpc')))
  await xapi.disconnect()
  check('disconnect()', xapi.status === 'disconnected')

  // ------------------------------------------------------------------ XML-RPC transport
  // xen-api's fallback transport (used when /jsonrpc is missing or its answer's
  // Content-Type is not exactly application/json): XML-RPC POSTed to /xmlrpc.
  // xapi answers XML-RPC there too.
  step('XML-RPC transport (xen-api fallback, POST /xmlrpc)')
  const xr = newClient({ transport: 'xml-rpc' })
  const xrStart = httpLog.length
  await xr.connect()
  // The previous client's disconnect() may log its session out concurrently;
  // that request is not part of this connect.
  const xrLog = httpLog.slice(xrStart).filter(r => r.rpc !== 'session.logout')
  check('xml-rpc transport: connect() went to POST /xmlrpc with Content-Type text/xml',
    xrLog.length >= 3 && xrLog.every(r => r.path === '/xmlrpc' && r.status === 200 &&
      (r.contentType === 'text/xml' || r.contentType === 'application/xml')), show(xrLog))
  const xrVms = await xr.call('VM.get_all_records')
  check('xml-rpc transport: VM.get_all_records has the control domain',
    Object.values(xrVms).some(vm => vm.is_control_domain === true))
  await expectError('xml-rpc transport: HANDLE_INVALID [VM, ref]', xr.call('VM.get_record', bogus),
    'HANDLE_INVALID', ['VM', bogus])
  await xr.disconnect()
}

async function eventsScenario() {
  step('event watcher (connect with watchEvents on)')
  const xapi = newClient({ watchEvents: undefined, eventPollDelay: 5e3 })
  const errors = []
  xapi.on('eventFetchingError', e => errors.push(e))
  await xapi.connect()
  const fetched = await Promise.race([
    xapi.objectsFetched.then(() => true),
    new Promise(resolve => setTimeout(resolve, 20e3, false)),
  ])
  check('objectsFetched resolves (event.inject + every get_all_records)', fetched,
    `not within 20 s; last calls: ${httpLog.slice(-6).map(r => r.rpc).join(', ')}`)
  const dom0 = xapi.objects.all && Object.values(xapi.objects.all).find(o => o.$type === 'VM' && o.is_control_domain)
  check('object cache holds the control domain', dom0 !== undefined)
  check('object cache holds the pool', xapi.pool !== null && xapi.getObject(xapi.pool.$ref) !== undefined)
  // a change must come back through event.from
  const label = 'xenith-events-' + Math.random().toString(36).slice(2, 8)
  await xapi.call('VM.set_name_description', dom0.$ref, label)
  const deadline = Date.now() + 15e3
  while (Date.now() < deadline && xapi.getObject(dom0.$ref).name_description !== label) {
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  check('event.from delivered the change', xapi.getObject(dom0.$ref).name_description === label,
    `errors: ${errors.map(String).join('; ')}`)
  check('no event fetching errors', errors.length === 0, errors.map(String).join('; '))
  await xapi.disconnect()
}

try {
  await scenario()
  if (opts.events) await eventsScenario()
} catch (error) {
  if (error instanceof CheckFailed) {
    console.log(`FAIL [${currentStep}] ${error.message}`)
  } else {
    console.log(`FAIL [${currentStep}] unexpected error: ${error?.code ?? ''} ${error?.stack ?? error}`)
    if (error?.call !== undefined) console.log(`  during call ${show(error.call)}`)
  }
  console.log('last requests: ' + httpLog.slice(-8).map(r => `${r.rpc ?? '?'} -> ${r.path} ${r.status} ${r.contentType}`).join('; '))
  process.exit(1)
}
clearTimeout(timer)
console.log(`OK: all node checks passed${opts.events ? ' (with events)' : ''}`)
process.exit(0)
