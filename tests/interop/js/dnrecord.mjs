// The `dn` DHT record namespace as a stock js-libp2p node sees it: a structural
// validator and a highest-sequence selector (shared by peer.mjs, the interop
// peer, and benchmarks/js/peernet.mjs, the peer benchmark's nodes).
//
// Invariants:
// - Structure only, never signatures: forged records pass here on purpose, so
//   that the datanet side is what refuses them.
// - A record over MAX_RECORD bytes, or not shaped like
//   [1, tag, body, signer(32), signature(64), chain] with a map body holding a
//   non-negative integer "seq", is invalid.

export const TAGS = new Set(['dn/descriptor/v1', 'dn/deprecation/v1'])
export const MAX_RECORD = 16 * 1024 + 4096

// --- a minimal MessagePack reader: enough to see a record's structure -------

export function unpack (buf) {
  let pos = 0
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const need = (n) => { if (pos + n > buf.length) throw new Error('truncated'); const at = pos; pos += n; return at }
  const str = (n) => new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(need(n), pos))
  const bin = (n) => buf.slice(need(n), pos)
  const arr = (n) => { const out = []; for (let i = 0; i < n; i++) out.push(read()); return out }
  const map = (n) => { const out = new Map(); for (let i = 0; i < n; i++) { const k = read(); out.set(k, read()) } return out }
  function read () {
    const b = buf[need(1)]
    if (b <= 0x7f) return b
    if (b >= 0xe0) return b - 0x100
    if ((b & 0xf0) === 0x80) return map(b & 0x0f)
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f)
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f)
    switch (b) {
      case 0xc0: return null
      case 0xc2: return false
      case 0xc3: return true
      case 0xc4: return bin(view.getUint8(need(1)))
      case 0xc5: return bin(view.getUint16(need(2)))
      case 0xc6: return bin(view.getUint32(need(4)))
      case 0xca: return view.getFloat32(need(4))
      case 0xcb: return view.getFloat64(need(8))
      case 0xcc: return view.getUint8(need(1))
      case 0xcd: return view.getUint16(need(2))
      case 0xce: return view.getUint32(need(4))
      case 0xcf: return Number(view.getBigUint64(need(8)))
      case 0xd0: return view.getInt8(need(1))
      case 0xd1: return view.getInt16(need(2))
      case 0xd2: return view.getInt32(need(4))
      case 0xd3: return Number(view.getBigInt64(need(8)))
      case 0xd9: return str(view.getUint8(need(1)))
      case 0xda: return str(view.getUint16(need(2)))
      case 0xdb: return str(view.getUint32(need(4)))
      case 0xdc: return arr(view.getUint16(need(2)))
      case 0xdd: return arr(view.getUint32(need(4)))
      case 0xde: return map(view.getUint16(need(2)))
      case 0xdf: return map(view.getUint32(need(4)))
      default: throw new Error(`unsupported MessagePack byte 0x${b.toString(16)}`)
    }
  }
  const out = read()
  if (pos !== buf.length) throw new Error('trailing bytes')
  return out
}

// The sequence number of a `/dn/` record; throws unless it is shaped like one:
// [1, tag, body, signer(32), signature(64), chain] with a map body holding "seq".
export function dnSequence (value) {
  if (value.length > MAX_RECORD) throw new Error('record too large')
  const env = unpack(value)
  if (!Array.isArray(env) || env.length !== 6 || env[0] !== 1) throw new Error('not an envelope')
  if (!TAGS.has(env[1])) throw new Error(`not a dataset record: ${env[1]}`)
  if (!(env[2] instanceof Uint8Array) || !(env[3] instanceof Uint8Array) || env[3].length !== 32 ||
      !(env[4] instanceof Uint8Array) || env[4].length !== 64 || !Array.isArray(env[5])) {
    throw new Error('malformed envelope')
  }
  const body = unpack(env[2])
  const seq = body instanceof Map ? body.get('seq') : undefined
  if (!Number.isInteger(seq) || seq < 0) throw new Error('no sequence')
  return seq
}

export const validators = { dn: async (key, value) => { dnSequence(value) } }
export const selectors = {
  dn: (key, records) => {
    let best = 0
    let bestSeq = -1
    records.forEach((r, i) => {
      let seq = -1
      try { seq = dnSequence(r) } catch {}
      if (seq > bestSeq) { best = i; bestSeq = seq } // strict: the earliest wins ties
    })
    return best
  }
}
