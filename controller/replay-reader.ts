// The controller's start-up read of the log in a reader thread: the thread connects as the
// controller, reads the range through ONE consumer (shared/nats/bulk.ts readRange), hashes each
// payload and posts them packed (the payloads in one transferred buffer, bulk-worker.ts pack);
// this thread only decodes and folds. Measured on 2 cores over 1.1M events: the main thread's
// CPU halves (nats.js's parser, the per-message objects and their garbage live in the reader's
// own heap). One consumer, not one per chunk as readParallel makes: creating a filtered
// consumer on a long stream costs the server a scan of its subjects (seconds each on a loaded
// machine). Credit keeps the thread at most CREDIT posts ahead of the fold (memory stays flat
// however slow the fold is, and a paused reader pulls nothing more).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { connect } from 'nats';
import { readRange, type RawMsg } from '../shared/nats/bulk.js';
import { unpackRaw, type Packed } from '../shared/nats/bulk-parallel.js';
import { pack } from '../shared/nats/bulk-worker.js';
import { connectOptions, type Creds } from '../shared/nats/trust.js';

/** Messages per post: a post costs about as much as a few dozen events. */
const POST = 2048;
/** Posts the thread may be ahead of the caller. */
const CREDIT = 4;

interface Job { swarmliteReplay: { creds: Creds; url: string; from: number; to: number } }
type FromThread = Packed | { kind: 'end' } | { kind: 'error'; message: string };

/**
 * Every message of [from, to], in stream order, hashed in a reader thread (as readRange, the
 * same raw messages, each with its hash): the caller decodes each one as it folds it, so a
 * post's events are not all alive at once. Throws the thread's error; ends early on `signal`.
 */
export async function* readThreaded(conn: { creds: Creds; url: string }, o: { from: number; to: number; signal?: AbortSignal }): AsyncGenerator<RawMsg[]> {
  if (o.from > o.to) return;
  // what the thread holds is a few batches: a small heap keeps the controller's RSS down (its
  // default young generation alone may grow to tens of MB)
  const w = new Worker(new URL(import.meta.url), {
    workerData: { swarmliteReplay: { creds: conn.creds, url: conn.url, from: o.from, to: o.to } } satisfies Job,
    resourceLimits: { maxYoungGenerationSizeMb: 16, maxOldGenerationSizeMb: 128 },
  });
  const got: FromThread[] = [];
  let failed: string | undefined;
  let wake: (() => void) | undefined;
  const poke = () => { if (wake) { const f = wake; wake = undefined; f(); } };
  w.on('message', (m: FromThread) => { got.push(m); poke(); });
  w.on('error', (err) => { failed ??= err.message; poke(); });
  w.on('exit', (code) => { failed ??= `the reader thread exited with ${code}`; poke(); });
  const abort = () => { failed ??= 'aborted'; poke(); };
  o.signal?.addEventListener('abort', abort, { once: true });
  try {
    for (;;) {
      const m = got.shift();
      if (!m) {
        if (o.signal?.aborted) return;
        if (failed) throw new Error(failed);
        await new Promise<void>((r) => { wake = r; });
        continue;
      }
      if (m.kind === 'end') return;
      if (m.kind === 'error') throw new Error(m.message);
      w.postMessage(1); // one post taken: the thread may read on
      yield unpackRaw(m);
    }
  } finally {
    o.signal?.removeEventListener('abort', abort);
    w.removeAllListeners('exit');
    void w.terminate();
  }
}

async function run(job: Job['swarmliteReplay']): Promise<void> {
  const port = parentPort!;
  let credit = CREDIT;
  let wake: (() => void) | undefined;
  port.on('message', (n: number) => { credit += n; if (wake) { const f = wake; wake = undefined; f(); } });
  let nc;
  try {
    nc = await connect({ ...connectOptions(job.creds, job.url), name: 'swarmlite-controller-replay', maxReconnectAttempts: 0, timeout: 5000 });
    let acc: RawMsg[] = [];
    const flush = async () => {
      while (credit <= 0) await new Promise<void>((r) => { wake = r; });
      credit -= 1;
      const p = pack(acc, 0, false, true);
      acc = [];
      port.postMessage(p, [p.buf, p.seq.buffer as ArrayBuffer, p.off.buffer as ArrayBuffer]);
    };
    for await (const b of readRange(nc, { from: job.from, to: job.to })) {
      for (const m of b) acc.push(m);
      if (acc.length >= POST) await flush();
    }
    if (acc.length) await flush();
    port.postMessage({ kind: 'end' });
  } catch (err) {
    port.postMessage({ kind: 'error', message: (err as Error).message });
  } finally {
    await nc?.close().catch(() => undefined);
  }
}

const job = isMainThread ? undefined : (workerData as Partial<Job> | null)?.swarmliteReplay;
if (job) void run(job);
