// Several stock js-libp2p nodes in one Node.js process, driven over JSON lines:
// the js-libp2p counterpart of `python -m datanet.testing.localnet_worker`, for
// benchmarks/bench_peer.py. It speaks the same line protocol as that worker, so
// the same Python driver (bench_net.Net) runs the same workload on both.
//
//   node peernet.mjs --key HEX [--key HEX ...] [--bootstraps N | --bootstrap ADDR ...]
//                    [--join-concurrency J] [--quorum Q]
//
// One node per --key (a 32-byte Ed25519 seed in hex, so a node can carry the
// same peer id as a datanet node). With --bootstraps N the first N nodes of this
// process are the bootstrap peers; else every --bootstrap multiaddr (with /p2p/).
//
// Each node: TCP on 127.0.0.1, Noise, Yamux, identify, ping, kad-dht in server mode
// (clientMode false) with the pass-through peerInfoMapper (loopback addresses
// are kept) and a structural validator/selector for the `dn` namespace (the
// interop peer's); the connection monitor is off. Versions: the lock file of
// tests/interop/js, installed by datanet.testing.jspeer.install_js_peer.
//
// Protocol (one JSON object per line, UTF-8), as localnet_worker's:
// - out, once: {"event": "ready", "pid", "ms": join time, "nodes": [{"index",
//   "peer_id", "org": null, "addrs"}]} (or {"event": "error", "error"} and exit 1);
// - in: {"op", "id", "node", ...}; out: {"id", "ok": true, "ms", ...} or
//   {"id", "ok": false, "error": {"code", "type", "message"}}. Commands run
//   concurrently; "ms" is performance.now() around the operation in this process.
// - ops: ping; status (routing table size); bootstrap (look ourselves up again);
//   publish (key, raw: base64; a DHT put: local store, closest-peer walk, PUT to
//   the k closest; answers replicas = peers that echoed the record and ack_ms,
//   the time each echo arrived); held (does the node's datastore hold key);
//   resolve (key: a DHT get, the full query; answers raw = the DHT's pick,
//   first_ms and first_raw = the first value a remote peer sent, values = how
//   many peers sent one); usage (pid, cpu_seconds, rss_mb); gc_freeze (no-op:
//   no counterpart); quit.
//
// Invariants:
// - Listens and dials on 127.0.0.1 only; stdout carries protocol lines only
//   (logs go to stderr); an input line longer than MAX_LINE is refused.
// - Only stock js-libp2p modules; nothing here changes how a node routes.

import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { selectors, validators } from './dnrecord.mjs'

const MAX_LINE = 4 * 1024 * 1024
const JOIN_TIMEOUT_MS = 120_000

// --- arguments -----------------------------------------------------------------

function parseArgs (argv) {
  const out = { keys: [], bootstrap: [], bootstraps: 0, joinConcurrency: 4, quorum: 4 }
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]]
    if (value === undefined) throw new Error(`${flag} needs a value`)
    if (flag === '--key') out.keys.push(value)
    else if (flag === '--bootstrap') out.bootstrap.push(value)
    else if (flag === '--bootstraps') out.bootstraps = Number(value)
    else if (flag === '--join-concurrency') out.joinConcurrency = Math.max(1, Number(value))
    else if (flag === '--quorum') out.quorum = Math.max(1, Number(value))
    else throw new Error(`unknown option ${flag}`)
  }
  if (out.keys.length === 0) throw new Error('at least one --key')
  if (out.keys.some((k) => !/^[0-9a-f]{64}$/.test(k))) throw new Error('a --key is 64 hex digits')
  if (out.bootstraps > out.keys.length) throw new Error('--bootstraps exceeds the node count')
  return out
}


// --- nodes -------------------------------------------------------------------------

const b64 = (bytes) => Buffer.from(bytes).toString('base64')
const unb64 = (text, name) => {
  if (typeof text !== 'string') throw new InvalidInput(`${name} must be base64 text`)
  return new Uint8Array(Buffer.from(text, 'base64'))
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class InvalidInput extends Error {
  code = 'invalid_input'
}

async function openNode (seedHex) {
  const privateKey = await generateKeyPairFromSeed('Ed25519', new Uint8Array(Buffer.from(seedHex, 'hex')))
  return createLibp2p({
    privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    // every peer dials from 127.0.0.1: js's per-address inbound rate limit (5/s) and
    // pending-connection cap (10) would reset a network's joins, so they are lifted
    // (datanet's gater holds only peers not yet admitted to its per-address limit)
    connectionManager: { inboundConnectionThreshold: 1_000_000, maxIncomingPendingConnections: 1_000 },
    services: {
      identify: identify(),
      ping: ping(), // kad-dht requires it (it pings old routing table contacts)
      dht: kadDHT({ clientMode: false, peerInfoMapper: passthroughMapper, validators, selectors })
    }
  })
}

async function drain (events) {
  for await (const _ of events) { /* the walk itself is the point */ }
}

// Look the node itself up: what a node does to join, and the `bootstrap` op.
async function selfLookup (node) {
  await drain(node.services.dht.getClosestPeers(node.peerId.toMultihash().bytes))
  return node.services.dht.routingTable.size
}

async function join (node, addrs) {
  const self = node.peerId.toString()
  const others = addrs.filter((a) => !a.endsWith(`/p2p/${self}`))
  if (others.length === 0) return // the first bootstrap node: nobody to join yet
  for (let attempt = 1; ; attempt++) { // a loaded machine may refuse a dial: retry a while
    const dialed = await Promise.allSettled(others.map((a) => node.dial(multiaddr(a))))
    if (dialed.some((r) => r.status === 'fulfilled')) break
    if (attempt === 10) throw new Error(`no bootstrap peer answered: ${dialed[0].reason?.message}`)
    await sleep(1000 * attempt)
  }
  const deadline = performance.now() + JOIN_TIMEOUT_MS
  while (node.services.dht.routingTable.size === 0) { // identify adds them to the table
    if (performance.now() > deadline) throw new Error('empty routing table after dialing')
    await sleep(20)
  }
  await selfLookup(node)
}

const started = performance.now()
let args, nodes
try {
  args = parseArgs(process.argv.slice(2))
  nodes = []
  for (const key of args.keys) nodes.push(await openNode(key))
  const fullAddr = (n) => n.getMultiaddrs().map((a) => a.toString()).find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
  const bootstraps = args.bootstraps > 0 ? nodes.slice(0, args.bootstraps).map(fullAddr) : args.bootstrap
  // the first node alone (the others may bootstrap from it), then J at a time
  await join(nodes[0], bootstraps)
  let next = 1
  const worker = async () => { while (next < nodes.length) await join(nodes[next++], bootstraps) }
  await Promise.all(Array.from({ length: args.joinConcurrency }, worker))
} catch (err) {
  process.stdout.write(JSON.stringify({ event: 'error', error: String(err?.message ?? err) }) + '\n')
  process.exit(1)
}

// --- commands ----------------------------------------------------------------------

function nodeOf (cmd) {
  const index = cmd.node ?? 0
  if (!Number.isInteger(index) || index < 0 || index >= nodes.length) {
    throw new InvalidInput(`node must be 0..${nodes.length - 1}`)
  }
  return nodes[index]
}

async function held (node, key) {
  try {
    await node.services.dht.contentFetching.getLocal(key)
    return true
  } catch {
    return false
  }
}

const commands = {
  async ping () { return { nodes: nodes.length } },
  async status (cmd) {
    return { routing: { routing_table_size: nodeOf(cmd).services.dht.routingTable.size } }
  },
  async bootstrap (cmd) { return { routing_table_size: await selfLookup(nodeOf(cmd)) } },
  async held (cmd) { return { held: await held(nodeOf(cmd), unb64(cmd.key, 'key')) } },
  async publish (cmd) {
    const node = nodeOf(cmd)
    const [key, value] = [unb64(cmd.key, 'key'), unb64(cmd.raw, 'raw')]
    const at = performance.now()
    const ackMs = []
    for await (const event of node.services.dht.put(key, value)) {
      if (event.name === 'PEER_RESPONSE' && event.record != null &&
          Buffer.compare(Buffer.from(event.record.value), Buffer.from(value)) === 0) {
        ackMs.push(Math.round((performance.now() - at) * 1000) / 1000)
      }
    }
    return { replicas: ackMs.length, ack_ms: ackMs }
  },
  async resolve (cmd) {
    const node = nodeOf(cmd)
    const key = unb64(cmd.key, 'key')
    const heldBefore = await held(node, key)
    const self = node.peerId.toString()
    const at = performance.now()
    let first = null
    let firstMs = null
    let best = null
    let values = 0
    // get() walks the whole query, sends corrections, then yields its pick (VALUE)
    for await (const event of node.services.dht.get(key)) {
      if (event.name === 'PEER_RESPONSE' && event.record != null && event.from.toString() !== self) {
        values += 1
        if (first === null) {
          firstMs = Math.round((performance.now() - at) * 1000) / 1000
          first = event.record.value
        }
      } else if (event.name === 'VALUE') {
        best = event.value
      }
    }
    if (best === null) {
      const err = new Error('no value found')
      err.code = 'not_found'
      throw err
    }
    return { raw: b64(best), first_ms: firstMs, first_raw: first === null ? null : b64(first), values, held_before: heldBefore }
  },
  async usage () {
    const cpu = process.cpuUsage()
    return { pid: process.pid, cpu_seconds: (cpu.user + cpu.system) / 1e6, rss_mb: process.memoryUsage().rss / 2 ** 20 }
  },
  async gc_freeze () { return {} },
  async quit () {
    setImmediate(() => { Promise.allSettled(nodes.map((n) => n.stop())).finally(() => process.exit(0)) })
    return {}
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
const reply = (msg) => process.stdout.write(JSON.stringify(msg) + '\n')
lines.on('line', (line) => {
  if (line.length > MAX_LINE) {
    reply({ id: null, ok: false, error: { code: 'invalid_input', type: 'InvalidInput', message: 'line too long' } })
    return
  }
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch {
    reply({ id: null, ok: false, error: { code: 'invalid_input', type: 'InvalidInput', message: 'malformed JSON' } })
    return
  }
  const handler = commands[cmd?.op]
  const at = performance.now()
  const answer = handler === undefined
    ? Promise.reject(new InvalidInput(`unknown op ${String(cmd?.op).slice(0, 40)}`))
    : handler(cmd)
  answer.then(
    (result) => reply({ id: cmd.id, ok: true, ...result, ms: Math.round((performance.now() - at) * 1000) / 1000 }),
    (err) => reply({
      id: cmd.id,
      ok: false,
      ms: Math.round((performance.now() - at) * 1000) / 1000,
      error: { code: err?.code ?? 'js_error', type: err?.name ?? 'Error', message: String(err?.message ?? err).slice(0, 2000) }
    })
  )
})
lines.on('close', () => { Promise.allSettled(nodes.map((n) => n.stop())).finally(() => process.exit(0)) })

reply({
  event: 'ready',
  pid: process.pid,
  ms: Math.round((performance.now() - started) * 1000) / 1000,
  nodes: nodes.map((n, index) => ({
    index,
    peer_id: n.peerId.toString(),
    org: null,
    addrs: n.getMultiaddrs().map((a) => a.toString())
  }))
})
