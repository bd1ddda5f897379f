// A stock js-libp2p peer for datanet's interop tests, driven over JSON lines.
//
// Invariants:
// - Only stock js-libp2p modules (versions pinned in package-lock.json); the
//   datanet-specific parts are the kad protocol id, a *structural* validator
//   and a highest-sequence selector for the `dn` namespace, and gossipsub's
//   StrictNoSign policy with sha256(data) message ids (datanet's choices).
// - The validator never checks signatures: forged records pass here on
//   purpose, so that the datanet side is what refuses them.
// - Listens on 127.0.0.1 only. One JSON object per line on stdin (a command
//   with an "id"), one JSON object per line on stdout (its answer, same "id");
//   the first line printed is {"ready": true, "peer": ..., "addrs": [...]}.
//   Bytes travel as hex. Logs go to stderr.

import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { selectors, validators } from './dnrecord.mjs'

const KAD_PROTOCOL = process.env.DATANET_KAD_PROTOCOL ?? '/datanet/kad/1.0.0'

// --- the node ----------------------------------------------------------------

const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'))
const cidOf = (multihashHex) => CID.createV1(0x55, Digest.decode(unhex(multihashHex)))

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: KAD_PROTOCOL,
      clientMode: false,
      peerInfoMapper: passthroughMapper,
      validators,
      selectors
    }),
    pubsub: gossipsub({
      globalSignaturePolicy: 'StrictNoSign',
      msgIdFn: (msg) => createHash('sha256').update(msg.data).digest(),
      allowPublishToZeroTopicPeers: true,
      emitSelf: false
    })
  }
})

const received = [] // gossip messages: {topic, data, from}
node.services.pubsub.addEventListener('gossipsub:message', (evt) => {
  const { msg, propagationSource } = evt.detail
  received.push({ topic: msg.topic, data: hex(msg.data), from: propagationSource.toString() })
})

async function collect (events, wanted) {
  const out = []
  for await (const event of events) {
    if (wanted(event)) out.push(event)
  }
  return out
}

const commands = {
  async dial ({ addr }) {
    const started = Date.now()
    const conn = await node.dial(multiaddr(addr))
    return { peer: conn.remotePeer.toString(), ms: Date.now() - started }
  },
  async connections () {
    return { peers: node.getConnections().filter((c) => c.status === 'open').map((c) => c.remotePeer.toString()) }
  },
  async protocols ({ peer }) {
    const found = (await node.peerStore.all()).find((p) => p.id.toString() === peer)
    return { protocols: found === undefined ? [] : found.protocols }
  },
  async routing () {
    // The peers in the kad routing table.
    return { peers: [...node.services.dht.routingTable.kb.toIterable()].map((p) => p.peerId.toString()) }
  },
  async put ({ key, value }) {
    const events = await collect(node.services.dht.put(unhex(key), unhex(value)), (e) => e.name === 'PEER_RESPONSE' || e.name === 'QUERY_ERROR')
    return {
      acked: events.filter((e) => e.name === 'PEER_RESPONSE' && e.record != null).map((e) => e.from.toString()),
      errors: events.filter((e) => e.name === 'QUERY_ERROR').map((e) => `${e.from}: ${e.error?.message}`)
    }
  },
  async get ({ key }) {
    // Every value a remote peer answered with, and the DHT's own pick (maybe a local copy).
    const events = await collect(node.services.dht.get(unhex(key)), (e) => e.name === 'VALUE' || (e.name === 'PEER_RESPONSE' && e.record != null))
    const best = events.find((e) => e.name === 'VALUE')
    return {
      values: events.filter((e) => e.name === 'PEER_RESPONSE').map((e) => ({ from: e.from.toString(), value: hex(e.record.value) })),
      best: best === undefined ? null : hex(best.value)
    }
  },
  async provide ({ multihash }) {
    await collect(node.services.dht.provide(cidOf(multihash)), () => false)
    return {}
  },
  async findprovs ({ multihash }) {
    const events = await collect(node.services.dht.findProviders(cidOf(multihash)), (e) => e.name === 'PROVIDER')
    return { providers: [...new Set(events.flatMap((e) => e.providers.map((p) => p.id.toString())))] }
  },
  async subscribe ({ topic }) {
    node.services.pubsub.subscribe(topic)
    return {}
  },
  async subscribers ({ topic }) {
    return { peers: node.services.pubsub.getSubscribers(topic).map((p) => p.toString()) }
  },
  async publish ({ topic, data }) {
    const result = await node.services.pubsub.publish(topic, unhex(data))
    return { recipients: result.recipients.map((p) => p.toString()) }
  },
  async received ({ topic }) {
    return { messages: received.filter((m) => m.topic === topic) }
  },
  async score ({ peer }) {
    return { score: node.services.pubsub.getScore(peer) }
  },
  async stop () {
    await node.stop()
    setImmediate(() => process.exit(0))
    return {}
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  let request
  try {
    request = JSON.parse(line)
  } catch {
    process.stdout.write(JSON.stringify({ id: null, ok: false, error: 'bad json' }) + '\n')
    return
  }
  const handler = commands[request.cmd]
  const answer = handler === undefined
    ? Promise.reject(new Error(`unknown command ${request.cmd}`))
    : handler(request)
  answer.then(
    (result) => process.stdout.write(JSON.stringify({ id: request.id, ok: true, ...result }) + '\n'),
    (err) => process.stdout.write(JSON.stringify({ id: request.id, ok: false, error: String(err?.message ?? err) }) + '\n')
  )
})
lines.on('close', () => { node.stop().finally(() => process.exit(0)) })

process.stdout.write(JSON.stringify({
  ready: true,
  peer: node.peerId.toString(),
  addrs: node.getMultiaddrs().map((a) => a.toString())
}) + '\n')
