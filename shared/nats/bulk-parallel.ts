// readRange over worker threads: a range of the log cut into parts, each read by its own
// connection and consumer in its own thread, which also decodes and hashes (the per-message
// work that needs nothing from the messages before it). The parts come back in stream
// order, so whoever checks the log (the Auditor) sees one sequence, exactly as from one
// reader: nothing about chains, keys or gaps has to be reconciled at a part's boundary.
// Each worker keeps at most CREDIT batches ahead of the caller.
//
//   for await (const items of readParallel({ creds, url }, { from: 1, to: last }, 2)) ...
//
// A worker connects with the same identity (connectOptions): `creds` is plain data.
import { Worker } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import type { AnyEvent } from '../events.js';
import { DecodeError } from '../codec.js';
import type { Creds } from './trust.js';
import type { ReadItem } from './log.js';
import { decodeItem, type RangeOptions, type RawMsg } from './bulk.js';

/**
 * The range is read in chunks of this many positions, dealt to the threads in turn; a thread
 * reads at most two chunks ahead of the caller (memory: a few chunks of events at most).
 */
export const CHUNK = 32_768;

/** How a worker connects (plain data: it crosses threads). */
export interface WorkerJob {
  creds: Creds | null; url?: string; filter?: string; batch?: number;
  /** decode and hash in the thread (default), or hand the raw messages over (the caller decodes) */
  decode?: boolean;
}
/** One chunk to read: the caller's number for it, its range. */
export interface ChunkJob { chunk: number; from: number; to: number }

/** One batch as a worker posts it: columns, the payloads in one transferred buffer. */
export interface Packed {
  kind: 'batch'; chunk: number; n: number; seq: Float64Array; subject: string[]; sig: (string | null)[]; buf: ArrayBuffer; off: Uint32Array;
  hash: (string | null)[]; event: (AnyEvent | null)[]; error: (string | null)[];
  partial: ({ id?: string; type?: string; entity?: string } | null)[];
}
export type FromWorker = (Packed | { kind: 'end' } | { kind: 'error'; message: string }) & { chunk: number };

/** A batch packed without decoding: the raw messages again (views over the one buffer, no copy). */
export function unpackRaw(p: Packed): RawMsg[] {
  const out = new Array<RawMsg>(p.n);
  for (let i = 0; i < p.n; i++) {
    out[i] = { seq: p.seq[i]!, subject: p.subject[i]!, data: new Uint8Array(p.buf, p.off[i]!, p.off[i + 1]! - p.off[i]!), sig: p.sig[i] ?? undefined, hash: p.hash[i] ?? undefined };
  }
  return out;
}

/** The packed batch as ReadItems again (views over the one buffer, no copy). */
export function unpack(p: Packed): ReadItem[] {
  const items = new Array<ReadItem>(p.n);
  for (let i = 0; i < p.n; i++) {
    const ev = p.event[i];
    if (ev) {
      const bytes = new Uint8Array(p.buf, p.off[i]!, p.off[i + 1]! - p.off[i]!);
      items[i] = { ok: true, stored: { seq: p.seq[i]!, hash: p.hash[i]!, event: ev, sig: p.sig[i] ?? undefined, bytes, subject: p.subject[i]! } };
    } else {
      items[i] = { ok: false, seq: p.seq[i]!, subject: p.subject[i]!, error: new DecodeError(p.error[i] ?? 'undecodable', p.partial[i] ?? undefined) };
    }
  }
  return items;
}

/**
 * The worker's script: beside this module when run from dist/ (bulk-worker.js); in tsctl's
 * one-file bundle (dist/tsctl.cjs) the worker's own bundle beside it (tsctl-bulk.cjs).
 */
export function workerScript(): string | URL {
  return typeof __filename === 'string' && __filename.endsWith('.cjs') ? join(dirname(__filename), 'tsctl-bulk.cjs') : new URL('./bulk-worker.js', import.meta.url);
}

/** Cuts [from, to] into ranges of at most `size` positions. */
export function split(from: number, to: number, size = CHUNK): [number, number][] {
  const out: [number, number][] = [];
  for (let a = from; a <= to; a += size) out.push([a, Math.min(to, a + size - 1)]);
  return out;
}

/**
 * Every message of [from, to] decoded and hashed, in stream order, read by `threads` workers
 * (chunk k by thread k mod threads). Throws a worker's error.
 */
export async function* readParallel(conn: { creds: Creds | null; url?: string }, o: RangeOptions & { decodeHere?: boolean }, threads = 2, script = workerScript(), size = CHUNK): AsyncGenerator<ReadItem[]> {
  const chunks = split(Math.max(1, o.from ?? 1), o.to, size);
  if (chunks.length === 0) return;
  const job: WorkerJob = { creds: conn.creds, url: conn.url, filter: o.filter, batch: o.batch, decode: !o.decodeHere };
  // per chunk: what its thread posted for it so far
  const got = chunks.map(() => [] as FromWorker[]);
  let wake: (() => void) | undefined;
  const poke = () => { if (wake) { const f = wake; wake = undefined; f(); } };
  let failed: string | undefined;
  const workers = Array.from({ length: Math.min(threads, chunks.length) }, () => {
    const w = new Worker(script, { workerData: { swarmliteBulk: job } });
    w.on('message', (m: FromWorker) => { got[m.chunk]!.push(m); poke(); });
    w.on('error', (err) => { failed ??= err.message; poke(); });
    w.on('exit', (code) => { if (code !== 0) failed ??= `a reader thread exited with ${code}`; poke(); });
    return w;
  });
  const give = (k: number) => { if (k < chunks.length) workers[k % workers.length]!.postMessage({ chunk: k, from: chunks[k]![0], to: chunks[k]![1] } satisfies ChunkJob); };
  for (let k = 0; k < 2 * workers.length; k++) give(k);
  const abort = () => { failed ??= 'aborted'; poke(); };
  o.signal?.addEventListener('abort', abort, { once: true });
  try {
    for (let k = 0; k < chunks.length; k++) {
      const q = got[k]!;
      for (;;) {
        const m = q.shift();
        if (!m) {
          if (o.signal?.aborted) return;
          if (failed) throw new Error(failed);
          await new Promise<void>((r) => { wake = r; });
          continue;
        }
        if (m.kind === 'end') break;
        if (m.kind === 'error') throw new Error(m.message);
        yield o.decodeHere ? unpackRaw(m).map(decodeItem) : unpack(m);
      }
      give(k + 2 * workers.length);
    }
  } finally {
    o.signal?.removeEventListener('abort', abort);
    for (const w of workers) void w.terminate();
  }
}
