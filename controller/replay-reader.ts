// The controller's start-up read of the log in a reader thread: the thread connects as the
// controller, reads the range through ONE consumer (shared/nats/bulk.ts readRange), hashes each
// payload and posts them packed (the payloads in one transferred buffer, bulk-worker.ts pack).
// Given the keys the caller's fold starts from, it also decodes and checks every signature with
// CheckedFold's own checks (same batches, runs and order) and posts the verdicts with the keys after
// them: the caller only decodes and folds, holding nothing for a check (its young generation then
// holds only the event being folded). nats.js's parser, the per-message objects and their garbage
// live in the reader's own heap. One consumer, not one per chunk as readParallel makes: creating a
// filtered consumer on a long stream costs the server a scan of its subjects (seconds each on a
// loaded machine). Credit keeps the thread at most CREDIT posts ahead of the fold (memory stays flat
// however slow the fold is, and a paused reader pulls nothing more).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { performance as perf } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { connect } from 'nats';
import { readRange, type RawMsg } from '../shared/nats/bulk.js';
import { decodeForChecks, hashBytes } from '../shared/codec.js';
import { unpackRaw, type Packed } from '../shared/nats/bulk-parallel.js';
import { pack } from '../shared/nats/bulk-worker.js';
import { WireConn } from '../shared/nats/wire-conn.js';
import { connectOptions, type Creds } from '../shared/nats/trust.js';
import { CheckedFold } from '../shared/fold.js';
import { KeyRing } from '../shared/signing.js';
import { emptyView } from '../shared/reducer.js';
import type { StoredEvent } from '../shared/events.js';
import { mark, threadCpu, traceOrigin, tracing } from './start-trace.js';

/** Messages per post: a post costs about as much as a few dozen events. */
const POST = 2048;
/** Posts the thread may be ahead of the caller. */
const CREDIT = 4;
/**
 * Posts a thread begun before the caller's view is loaded may read ahead (begin): the caller reads
 * its snapshot meanwhile (~0.5 s for 100,000 containers), and the thread, the slower side of the
 * catch-up, would otherwise wait for it after CREDIT posts. ~16 MB at most, given back as the fold
 * takes them.
 */
const CREDIT_BEGUN = 16;
/** The thread's old generation cap: V8's heap growing factor is at its largest (4) from 2 GB up. */
const OLD_GENERATION_MB = 2048;

/** What the thread's check starts from: the cluster root and the keys the caller's fold holds. */
export interface CheckFrom { root: string; keys: Record<string, string> }
interface Job { swarmliteReplay: { creds: Creds; url: string } }
/** A post with the thread's verdicts: each message's problem (null: folded), and the keys after them. */
type Checked = Packed & { problem?: Verdict[]; keys?: Record<string, string> };
/**
 * A message's verdict: null folded, a string refused for that reason, false its envelope did not
 * decode (the caller decodes it whole and refuses it; any other it decodes with its envelope taken
 * as validated here, codec.ts decodeCheckedEnvelope).
 */
export type Verdict = string | null | false;
type FromThread = Checked | { kind: 'end' } | { kind: 'error'; message: string };

/** Raw messages in stream order; with `problem`, each one's signature verdict (the caller folds, it does not check again) and `keys` the ring after them. */
export interface Posted { msgs: RawMsg[]; problem?: Verdict[]; keys?: Record<string, string> }

/**
 * The thread's checks: CheckedFold itself (the same batches, runs and key registrations as the
 * caller's fold would hold and check), recording each verdict instead of folding.
 */
class Verdicts extends CheckedFold {
  msgs: RawMsg[] = [];
  problem: Verdict[] = [];
  // the raw messages added, in order: the fold applies in the order it was given (a batch in
  // order, a registration after the batch before it), so each verdict is the next one's
  private queue: RawMsg[] = [];
  private at = 0;
  constructor(ring: KeyRing) { super(emptyView(), ring); }
  /** Checks `s`, the envelope of `m` (held for the batch). */
  addRaw(m: RawMsg, s: StoredEvent): void {
    this.queue.push(m);
    this.add(s, true);
  }
  protected override apply(s: StoredEvent, problem: string | undefined): void {
    const m = this.queue[this.at++]!;
    if (this.at === this.queue.length) { this.queue = []; this.at = 0; }
    m.hash = s.hash;
    this.msgs.push(m);
    this.problem.push(problem ?? null);
  }
}

/** The range a started thread reads, posted to it once the caller knows where its view is. */
export interface Range { from: number; to: number; check?: CheckFrom }

/**
 * A reader thread started before its range is known: it loads its modules and connects while the
 * caller reads its snapshot (a restart's other start-up cost, on the other core), then reads the
 * range read() gives it. One read per thread; close() ends one that is not used.
 */
export class ReaderThread {
  private w: Worker;
  private got: FromThread[] = [];
  private failed: string | undefined;
  private wake: (() => void) | undefined;
  private used = false;
  private begun?: Range;
  private ended = false;
  /** Threads not closed yet (pretenuring is off while there is one). */
  private static live = 0;
  /** ms the caller waited for a post (the thread behind), for the start trace. */
  waited = 0;

  private constructor(conn: { creds: Creds; url: string }) {
    // V8's allocation-site pretenuring, off while a thread reads (the flag is the process's, so
    // both threads, and it is set back when the last thread is gone): the thread's per-message
    // objects live exactly one batch, longer than the first small scavenges, so V8 marked their
    // allocation sites long-lived and allocated them in the old generation, which then filled
    // with garbage a batch at a time: a full mark-compact every ~7,000 events (45 in a 300k
    // replay, no scavenge at all in between). Off, the same garbage dies in the young generation
    // (12 mark-compacts). The catch-up's own objects (the view) are few beside them.
    if (ReaderThread.live++ === 0) setFlagsFromString('--no-allocation-site-pretenuring');
    // what the thread holds is a few batches, and all of it dies young: a young generation large
    // enough for that (64 MB) instead of 16, with which every scavenge promoted the batch being
    // checked and the old generation's collections (and their helper threads) took the rest. A/B
    // on a 1.1M-event replay from empty (2026-11-30, load ~9): the whole process 15.5-16.1 s CPU
    // instead of 18.5-18.9 (the thread 7.2-7.4 s instead of 8.0, each GC helper 0.5 instead of 1.0);
    // the thread's heap is given back at the catch-up's end (RSS at ready not higher).
    // The old generation's cap is what V8 grows it by, not only its limit: under 256 MB it lets
    // the heap grow ~1.3x past what the last mark-compact left (2 GB or more: up to 4x), and the
    // thread's old generation is ~10 MB live with what each scavenge promotes on top, so with 128
    // it ran a mark-compact (concurrent marking on the helper threads) every ~15,000 events: 17
    // in a 300k replay, 5 with 2048. What it holds stays bounded by the credit, not by the cap.
    // A/B, 300k events from empty, 2026-11-30, load ~2-4: the process 5.8-6.0 s CPU (medians)
    // instead of 6.1-6.4; peak RSS the same to ~30 MB higher (the old generation's garbage waits longer)
    try {
      this.w = new Worker(new URL(import.meta.url), {
        workerData: { swarmliteReplay: { creds: conn.creds, url: conn.url }, traceOrigin: traceOrigin() } satisfies Job & { traceOrigin: number },
        resourceLimits: { maxYoungGenerationSizeMb: 64, maxOldGenerationSizeMb: OLD_GENERATION_MB },
      });
    } catch (err) {
      // no thread to close: the flag is set back here, or the process would run without it for good
      if (--ReaderThread.live === 0) setFlagsFromString('--allocation-site-pretenuring');
      throw err;
    }
    this.w.on('message', (m: FromThread) => {
      this.got.push(m);
      // the thread has posted all it will (its connections closed first): its heap is torn down
      // now, on another core, while the caller still folds the posts it holds (theirs now: the
      // buffers were transferred, the rest cloned), not after the fold's last event
      if ((m as { kind?: string }).kind === 'end') this.stop();
      this.poke();
    });
    this.w.on('error', (err) => { this.failed ??= err.message; this.poke(); });
    this.w.on('exit', (code) => { this.failed ??= `the reader thread exited with ${code}`; this.poke(); });
  }

  static start(conn: { creds: Creds; url: string }): ReaderThread { return new ReaderThread(conn); }

  /**
   * Gives the thread its range before the caller's view is loaded (where a peek at the snapshot
   * says it stands): it makes its consumer and reads ahead (up to its credit) meanwhile.
   */
  begin(r: Range): void {
    if (this.used || this.begun || r.from > r.to) return;
    this.begun = r;
    this.w.postMessage({ job: r, credit: CREDIT_BEGUN });
  }

  /** Whether the range begun is the one a read from `from` with these keys needs (undefined: none begun). */
  fits(from: number, check: CheckFrom | undefined): boolean | undefined {
    const b = this.begun;
    if (!b) return undefined;
    if (b.from !== from || !b.check !== !check) return false;
    if (!b.check || !check) return true;
    const x = b.check.keys, y = check.keys;
    return b.check.root === check.root && Object.keys(x).length === Object.keys(y).length && Object.keys(x).every((k) => Object.hasOwn(y, k) && y[k] === x[k]);
  }

  private poke(): void { if (this.wake) { const f = this.wake; this.wake = undefined; f(); } }

  /**
   * Every message of [from, to], in stream order, hashed in the thread (as readRange, the same
   * raw messages, each with its hash); with `check`, each with its signature verdict and the keys
   * after the post. The caller decodes each one as it folds it, so a post's events are not all
   * alive at once. Throws the thread's error; ends early on `signal`. The thread ends with it.
   */
  async *read(o: Range & { signal?: AbortSignal }): AsyncGenerator<Posted> {
    if (this.used) throw new Error('a reader thread reads one range');
    this.used = true;
    const abort = () => { this.failed ??= 'aborted'; this.poke(); };
    o.signal?.addEventListener('abort', abort, { once: true });
    let extra = this.begun ? CREDIT_BEGUN - CREDIT : 0;
    try {
      // begun: the range given then (the caller checked it fits; it may end before o.to)
      if (this.begun === undefined) {
        if (o.from > o.to) return;
        this.w.postMessage({ job: { from: o.from, to: o.to, ...(o.check ? { check: o.check } : {}) } satisfies Range });
      }
      for (;;) {
        const m = this.got.shift();
        if (!m) {
          if (o.signal?.aborted) return;
          if (this.failed) throw new Error(this.failed);
          const t0 = performance.now();
          await new Promise<void>((r) => { this.wake = r; });
          this.waited += performance.now() - t0;
          continue;
        }
        if (m.kind === 'end') return;
        if (m.kind === 'error') throw new Error(m.message);
        // one post taken: the thread may read on (a begun thread's extra credit is not given back:
        // once the fold runs it is CREDIT posts ahead again)
        if (extra > 0) extra -= 1;
        else this.w.postMessage(1);
        yield { msgs: unpackRaw(m), ...(m.problem ? { problem: m.problem, keys: m.keys } : {}) };
      }
    } finally {
      o.signal?.removeEventListener('abort', abort);
      this.close();
    }
  }

  // (declared before `closed`, whose initializer sets it: a field declared after it would be reset)
  private gone!: () => void;
  /** Resolves once the thread is gone (its heap given back): after close(), or a read's end. */
  readonly closed: Promise<void> = new Promise((r) => (this.gone = r));

  /** Ends the thread (and its connection). */
  close(): void {
    if (!this.ended) { this.ended = true; if (--ReaderThread.live === 0) setFlagsFromString('--allocation-site-pretenuring'); }
    this.used = true;
    this.stop();
  }

  private stopping = false;
  /** Terminates the thread once (close(), or its 'end' received): what it posted stays the caller's. */
  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.w.removeAllListeners('exit');
    this.w.terminate().then(() => this.gone(), () => this.gone());
  }
}

/** ReaderThread.start(conn).read(o): a thread started for this one range. */
export function readThreaded(conn: { creds: Creds; url: string }, o: Range & { signal?: AbortSignal }): AsyncGenerator<Posted> {
  return ReaderThread.start(conn).read(o);
}

/**
 * `m` with its envelope decoded and validated (its data not read, but a key registration's; its
 * id and entity validated but not made: codec.ts decodeForChecks) and its hash; undefined if that does not decode.
 */
function envelopeOf(m: RawMsg): StoredEvent | undefined {
  let event;
  try { event = decodeForChecks(m.data); } catch { return undefined; }
  return { seq: m.seq, hash: hashBytes(m.data), event, sig: m.sig, bytes: m.data, subject: m.subject };
}

async function run(conn: Job['swarmliteReplay']): Promise<void> {
  const port = parentPort!;
  let credit = CREDIT;
  let wake: (() => void) | undefined;
  let gotJob!: (r: Range) => void;
  const ranged = new Promise<Range>((r) => (gotJob = r));
  port.on('message', (m: number | { job: Range; credit?: number }) => {
    if (typeof m !== 'number') { if (m.credit) credit = m.credit; gotJob(m.job); return; }
    credit += m;
    if (wake) { const f = wake; wake = undefined; f(); }
  });
  let nc;
  let wire: WireConn | undefined;
  try {
    // connected before the range comes: the caller reads its snapshot meanwhile. The deliveries
    // come over a connection of our own (wire-conn.ts: frames parsed in place, no nats.js object
    // per message; nats.js's parser and message objects were most of this thread's CPU beside
    // the decode); nats.js only makes (and deletes) the consumer
    nc = await connect({ ...connectOptions(conn.creds, conn.url), name: 'swarmlite-controller-replay', maxReconnectAttempts: 0, timeout: 5000 });
    mark('connected');
    wire = await WireConn.open(conn.creds, conn.url, { name: 'swarmlite-controller-replay' });
    mark('wire connected');
    const job = await ranged;
    mark(`job #${job.from}..#${job.to}`);
    let acc: RawMsg[] = [];
    // with the keys: decoded and checked here, posted once checked (a post ends where the check's
    // batch did, so the keys sent with it are the ring after exactly its events)
    const check = job.check ? new Verdicts(new KeyRing(job.check.root, job.check.keys)) : undefined;
    let problem: Verdict[] = [];
    // for the start trace: the thread's idle time, and how long a post waited for the caller's credit (the fold behind)
    let creditWait = 0;
    const elu = perf.eventLoopUtilization();
    const flush = async () => {
      const t0 = performance.now();
      while (credit <= 0) await new Promise<void>((r) => { wake = r; });
      creditWait += performance.now() - t0;
      credit -= 1;
      const p: Checked = pack(acc, 0, false, !check);
      if (check) {
        for (let i = 0; i < acc.length; i++) p.hash[i] = acc[i]!.hash ?? null;
        p.problem = problem; p.keys = check.checks()!.keys;
        // checked here, the signatures are nothing the fold reads: not copied across (an 88-byte string an event)
        p.sig = [];
        problem = [];
      }
      acc = [];
      port.postMessage(p, [p.buf, p.seq.buffer as ArrayBuffer, p.off.buffer as ArrayBuffer]);
    };
    const take = () => {
      for (const m of check!.msgs) acc.push(m);
      for (const x of check!.problem) problem.push(x);
      check!.msgs = []; check!.problem = [];
    };
    let first = true;
    // unfiltered: the stream holds only event subjects, and a filtered consumer costs the server a
    // count of what is pending through the rest of the stream (~0.4 s from the start of 1.1M events)
    for await (const b of readRange(nc, { from: job.from, to: job.to, wire, unfiltered: true })) {
      if (first) { first = false; mark('first delivery'); }
      for (const m of b) {
        if (!check) { acc.push(m); continue; }
        // what the check reads of an event is its envelope (and a registration's data): the rest is
        // stepped over unread (the fold decodes and validates every event whole, and refuses one
        // whose data does not validate whatever the verdict here)
        const stored = envelopeOf(m);
        if (stored) check.addRaw(m, stored);
        else { check.flush(); take(); acc.push(m); problem.push(false); }
        take();
      }
      if (acc.length >= POST) await flush();
    }
    if (check) { check.flush(); take(); }
    if (acc.length) await flush();
    if (tracing) mark(`read to the end (${threadCpu()?.toFixed(2)} s CPU; idle ${perf.eventLoopUtilization(elu).idle.toFixed(0)} ms; posts waited ${creditWait.toFixed(0)} ms for the fold's credit)`);
    // closed before 'end' (the consumer's deletion sent with nc's flush): the caller terminates
    // the thread as soon as 'end' comes, while it still folds the last posts
    wire.close(); wire = undefined;
    const c = nc; nc = undefined;
    await c.close().catch(() => undefined);
    port.postMessage({ kind: 'end' });
  } catch (err) {
    port.postMessage({ kind: 'error', message: (err as Error).message });
  } finally {
    wire?.close();
    await nc?.close().catch(() => undefined);
  }
}

const job = isMainThread ? undefined : (workerData as Partial<Job> | null)?.swarmliteReplay;
if (job) void run(job);
