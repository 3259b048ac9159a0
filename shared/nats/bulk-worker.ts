// The thread of one part of readParallel (bulk-parallel.ts): connects as the caller's
// identity (nats.js for the consumer, wire-conn.ts for the deliveries), reads its range (bulk.ts readRange), decodes and hashes each message and posts
// the batches packed, at most CREDIT ahead of what the caller took.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { connect } from 'nats';
import { decodeEvent, hashBytes, DecodeError } from '../codec.js';
import type { AnyEvent } from '../events.js';
import { readRange, type RawMsg } from './bulk.js';
import type { ChunkJob, FromWorker, Packed, WorkerJob } from './bulk-parallel.js';
import { connectOptions } from './trust.js';
import { WireConn } from './wire-conn.js';

/** Decodes and hashes one raw batch into the packed form (payloads copied into one buffer, then transferred); `hash` without `decode`: hashed only. */
export function pack(b: RawMsg[], chunk = 0, decode = true, hash = false): Packed {
  const n = b.length;
  let size = 0;
  for (const m of b) size += m.data.length;
  const buf = new Uint8Array(size);
  const off = new Uint32Array(n + 1);
  // not decoded: no event, error or partial to carry (unpackRaw reads none), and not a null per message copied across
  const p: Packed = { kind: 'batch', chunk, n, seq: new Float64Array(n), subject: new Array(n), sig: new Array(n), buf: buf.buffer, off, hash: new Array(n), event: decode ? new Array(n) : [], error: decode ? new Array(n) : [], partial: decode ? new Array(n) : [] };
  let at = 0;
  for (let i = 0; i < n; i++) {
    const m = b[i]!;
    p.seq[i] = m.seq;
    p.subject[i] = m.subject;
    p.sig[i] = m.sig ?? null;
    off[i] = at;
    buf.set(m.data, at);
    at += m.data.length;
    let e: AnyEvent | null = null;
    if (!decode) { p.hash[i] = hash ? hashBytes(m.data) : null; continue; }
    try { e = decodeEvent(m.data); p.error[i] = null; p.partial[i] = null; } catch (err) {
      p.error[i] = (err as Error).message;
      p.partial[i] = err instanceof DecodeError ? err.partial ?? null : null;
    }
    p.event[i] = e;
    p.hash[i] = e ? hashBytes(m.data) : null;
  }
  off[n] = at;
  return p;
}

const POST = 2048;

/** Reads the chunks the caller gives, one after the other, on one connection. */
async function run(job: WorkerJob): Promise<void> {
  const port = parentPort!;
  const todo: ChunkJob[] = [];
  let wake: (() => void) | undefined;
  port.on('message', (c: ChunkJob) => { todo.push(c); if (wake) { const w = wake; wake = undefined; w(); } });
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  const where = job.url ?? job.creds?.url ?? 'nats://127.0.0.1:4222';
  let nc;
  let wire: WireConn | undefined;
  let chunk = -1;
  try {
    nc = await connect({ ...(job.creds ? connectOptions(job.creds, where) : { servers: where }), name: 'bulk-reader', maxReconnectAttempts: 0, timeout: 5000 });
    // the deliveries over a connection of our own (wire-conn.ts: no nats.js object per message)
    wire = await WireConn.open(job.creds, where, { name: 'bulk-reader' });
    for (;;) {
      const c = todo.shift();
      if (!c) { await new Promise<void>((r) => { wake = r; }); continue; }
      chunk = c.chunk;
      // posts of POST messages or more: each post costs about as much as a few dozen events
      let acc: RawMsg[] = [];
      const flush = () => {
        const p = pack(acc, c.chunk, job.decode !== false);
        acc = [];
        post(p, [p.buf, p.seq.buffer as ArrayBuffer, p.off.buffer as ArrayBuffer]);
      };
      for await (const b of readRange(nc, { from: c.from, to: c.to, filter: job.filter, batch: job.batch, wire })) {
        for (const m of b) acc.push(m);
        if (acc.length >= POST) flush();
      }
      if (acc.length) flush();
      post({ kind: 'end', chunk: c.chunk });
    }
  } catch (err) {
    post({ kind: 'error', chunk: Math.max(0, chunk), message: (err as Error).message });
    wire?.close();
    await nc?.close().catch(() => undefined);
  }
}

const job = (workerData as { swarmliteBulk?: WorkerJob } | null)?.swarmliteBulk;
if (!isMainThread && job) void run(job);
