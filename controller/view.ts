// The controller's cluster view: a binary snapshot (shared/snapshot.ts) plus a journal of
// what changed after it, then the tail of the stream folded on top, so a restart replays only
// what is new. Writing costs what changed: a delta frame of the containers touched since the
// last one (every DELTA_EVERY events or DELTA_IDLE_MS of quiet), appended to the journal; a
// full snapshot only once the journal outgrows the last one, made a chunk at a time between
// folds and written to a temp file then renamed. The file work runs on libuv's threads, one
// write at a time, never on the request path.
import { ProblemLog } from './problem-log.js';
import { mkdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { open, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { deferredIndexOf, emptyView, indexOf, type ChangeTracker, type ClusterView } from '../shared/reducer.js';
import { KeyRing } from '../shared/signing.js';
import { CheckedFold } from '../shared/fold.js';
import { applyJournal, encodeDelta, peekSnapshot, readSnapshot, SnapshotError, SnapshotWriter } from '../shared/snapshot.js';
import { readLog } from '../shared/nats/log.js';
import { decodeCheckedItem, decodeItem, readRange } from '../shared/nats/bulk.js';
import { ReaderThread, type Posted } from './replay-reader.js';
import { mark, threadCpu, tracing } from './start-trace.js';

/** A catch-up this long reads in a thread (replay-reader.ts); a shorter one in this thread. */
export const THREAD_FROM_EVENTS = 50_000;
import type { Creds } from '../shared/nats/trust.js';
import type { StoredEvent } from '../shared/events.js';

const DELTA_EVERY = 20_000; // events
const DELTA_IDLE_MS = 1000;
/** A full snapshot once the journal is this much larger than the last one (and at least MIN_JOURNAL). */
const MIN_JOURNAL = 8 * 1024 * 1024;
/** A full snapshot at least every so many events (the controller keeps them for view --at). */
export const TRAVEL_EVERY = 50_000;
/** Held events during a catch-up are folded at the latest after this long (the stream's end may be a gap). */
const HOLD_MS = 50;
/** A catch-up read that delivers nothing for this long is given up (the following read goes on). */
const CATCH_UP_QUIET_MS = 5000;
/**
 * Its first batch may take longer: the reader thread starts, connects and makes its consumer, which
 * a just-started server answers slowly over a long stream. Given up after 5 s on a loaded machine,
 * the whole replay went through the slow following read (3x the CPU).
 */
const CATCH_UP_FIRST_MS = 30_000;

/** A full snapshot: the view at `seq`; `ts` the latest event time folded into it. */
export interface SnapshotInfo { seq: number; ts: number; bytes: Uint8Array }
/** A delta for view --at: one journal frame taking the view from `prev` to `seq`, in the chain after the full at `base`. */
export interface DeltaInfo extends SnapshotInfo { base: number; prev: number; /** a side delta made when idle (ViewKeeper.travelIdle): no later link follows it */ idle?: boolean }
/** Deltas for view --at come this many times per full snapshot (every TRAVEL_EVERY / 5 = 10,000 events by default). */
export const DELTAS_PER_FULL = 5;
/**
 * While catching up, a full snapshot every this many `every` windows (deltas every fifth of one all
 * the same). 8, not 4: a full encodes the whole view and uploads it, and the catch-up of a long log
 * made one every 200,000 events (six in 1.2M, ~1 s of this thread's CPU with their uploads, on a
 * machine whose two cores the reader thread and nats-server keep busy). A/B, 1.2M events from empty,
 * five alternating runs each (2026-12-02): ready in 9.40-10.06 s against 9.88-10.57, view --at
 * between two fulls 0.54-0.98 s (11-27 deltas), where it was 0.55-0.70 with 7-8.
 */
const CATCH_UP_FULLS = 8;

/** What tells one version of a file from another (a snapshot is replaced by a rename: a new inode). */
const stampOf = (f: string): string => { const s = statSync(f, { bigint: true }); return `${s.ino}:${s.size}:${s.mtimeNs}`; };

export class ViewKeeper {
  private waiters: { seq: number; resolve: () => void }[] = [];
  private watchers = new Set<() => void>();
  private abort = new AbortController();
  private done?: Promise<void>;
  private fold: CheckedFold;
  private tracker: ChangeTracker = { containers: new Set(), nodes: new Set() };
  private sinceDelta = 0;
  private idle?: NodeJS.Timeout;
  private holdTimer?: NodeJS.Timeout;
  private files: Promise<unknown> = Promise.resolve(); // one file operation at a time, in order
  private journal?: FileHandle;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private compaction?: Promise<void>;
  decodeErrors = 0;
  /** Events the start-up catch-up passed, and why it stopped early (the following read then went on). */
  readonly replay = { events: 0, problem: undefined as string | undefined, /** read by a thread begun before the view was loaded */ began: false };
  /** What loading found: the snapshot's sequence, the journal frames applied, or why the files were not used. */
  readonly loaded: { snapshot: number; deltas: number; problem?: string };

  /** The start of the following consumer's name (the controller's host: tests find where it is led). */
  followAs?: string;
  /** Called with every full snapshot made (the controller keeps some for view --at). */
  onSnapshot?: (s: SnapshotInfo) => void;
  /** Called with a delta after the last full snapshot every `every / DELTAS_PER_FULL` events (from the first full this keeper made). */
  onDelta?: (d: DeltaInfo) => void;
  /** Whether a snapshot made now would only wait for the store (an upload runs): a catch-up then makes it later, when the store is free. */
  busy?: () => boolean;
  /**
   * How a reader thread connects (the controller's identity and servers): set, the catch-up reads
   * and hashes in a worker thread while this one decodes and folds (replay-reader.ts).
   */
  reader?: { creds: Creds; url: string };
  /**
   * A reader thread started (ReaderThread.start with `reader`) before open(): it loads and connects
   * while the snapshot is read. The catch-up uses it, or closes it when the catch-up is short.
   */
  thread?: ReaderThread;
  /** Gives the C heap's free pages back to the system (native/malloc.ts): after a long catch-up. */
  trim?: () => Promise<unknown>;
  /** The shortest catch-up that is read in the thread (tests set 0 to use it for any). */
  threadFrom = THREAD_FROM_EVENTS;
  /** Whether a stored snapshot lies in (from, to]: then passing `every` events makes none (a replay over a log the controller snapshotted before). */
  covered?: (from: number, to: number) => boolean;

  /** Lines about events not folded: attacker-driven, so printable and rate-limited. */
  private readonly problems = new ProblemLog();

  private constructor(private dir: string, private v: ClusterView, private base: number, loaded: ViewKeeper['loaded'], root: string | undefined, private every: number) {
    this.loaded = loaded;
    // the keys live in the view, so a snapshot carries what the replay after it needs
    const ring = root ? new KeyRing(root, (v.keys ??= {})) : undefined;
    this.fold = new CheckedFold(v, ring, (s, problem) => this.problems.say(`controller: not folding #${s.seq} ${s.event.type} from ${s.event.src}: ${problem}`));
    // the index's maps wait for the end of the catch-up (start() completes them before it resolves):
    // they are built once from the containers then, not kept through every event of the replay
    deferredIndexOf(v).trackers.add(this.tracker);
  }

  /** `root`: the cluster root's key; with it, an event not signed by its source's registered key is not folded (counted in view.forged). */
  static async open(dir: string, root?: string, every = TRAVEL_EVERY): Promise<ViewKeeper> {
    mkdirSync(dir, { recursive: true });
    const snap = join(dir, 'snapshot.bin'), jour = join(dir, 'journal.bin');
    let view = emptyView(), base = 0, deltas = 0, problem: string | undefined, size = 0;
    const peeked = ViewKeeper.peeked;
    ViewKeeper.peeked = undefined;
    try {
      if (existsSync(snap)) {
        const buf = peeked?.dir === dir && peeked.stamp === stampOf(snap) ? peeked.bytes : readFileSync(snap);
        view = readSnapshot(buf); base = view.seq; size = buf.length;
      }
      if (existsSync(jour)) deltas = applyJournal(view, readFileSync(jour), base);
    } catch (err) {
      // a snapshot that does not read is only a cache of the log: fold it all again
      if (!(err instanceof SnapshotError)) throw err;
      problem = err.message; view = emptyView(); base = 0; deltas = 0;
      console.error(`controller: ignoring the view's snapshot (${problem}): folding the whole log`);
    }
    const k = new ViewKeeper(dir, view, base, { snapshot: base, deltas, ...(problem ? { problem } : {}) }, root, every);
    k.snapshotBytes = size;
    return k;
  }

  get view(): ClusterView { return this.v; }

  /**
   * Where the view in `dir` stands (its snapshot and journal peeked at, not read): a reader thread
   * can begin from there while open() reads it. Undefined when there is no snapshot.
   */
  static peek(dir: string): { seq: number; keys: Record<string, string> } | undefined {
    const snap = join(dir, 'snapshot.bin'), jour = join(dir, 'journal.bin');
    if (!existsSync(snap)) return undefined;
    const stamp = stampOf(snap);
    const bytes = readFileSync(snap);
    // kept for open(), which reads the same file right after (a 15 MB snapshot: ~30 ms a read)
    ViewKeeper.peeked = { dir, stamp, bytes };
    return peekSnapshot(bytes, existsSync(jour) ? readFileSync(jour) : undefined);
  }

  /** The snapshot peek() read, taken by the next open() of its dir if the file is still the one read. */
  private static peeked?: { dir: string; stamp: string; bytes: Buffer };

  /** Replays up to the stream's end, then keeps following in the background. */
  async start(nc: NatsConnection, onEvent?: (v: ClusterView) => void): Promise<void> {
    // a journal that follows the snapshot in force (frames of an older one are skipped when read)
    this.journal = await open(join(this.dir, 'journal.bin'), 'a');
    this.journalBytes = (await this.journal.stat()).size;
    const jsm = await nc.jetstreamManager();
    const last = (await jsm.streams.info('EVENTS')).state.last_seq;
    let caughtUp!: () => void;
    const ready = new Promise<void>((r) => (caughtUp = r));
    const moved = () => {
      onEvent?.(this.v);
      this.wake();
      if (this.v.seq >= last) { indexOf(this.v).complete(); caughtUp(); }
    };
    if (this.v.seq >= last) { indexOf(this.v).complete(); caughtUp(); }
    if (this.v.seq >= last || !this.reader || last - this.v.seq < this.threadFrom) this.dropThread();
    this.done = (async () => {
      // while catching up, what waits on the view hears of it, but the keeper is ready only once
      // the catch-up is over (its thread gone, the heap trimmed), not at its last batch
      if (this.v.seq < last) await this.catchUp(nc, moved, last, () => { onEvent?.(this.v); this.wake(); });
      for await (const item of readLog(nc, { fromSeq: this.v.seq + 1, follow: true, home: true, ...(this.followAs ? { name: this.followAs } : {}), signal: this.abort.signal })) {
        if (item.ok) {
          // catching up: events are held and their signatures checked a run at a time
          const hold = item.stored.seq < last;
          this.fold.add(item.stored, hold);
          if (hold) this.holdFor(moved);
        } else {
          this.fold.flush();
          this.undecodable(item);
        }
        moved();
        this.afterFold();
      }
    })();
    this.done.catch((err) => console.error(`controller: following the log: ${(err as Error).message}`));
    await ready;
  }

  /**
   * The replay up to the stream's end at start: whole batches as the consumer's callback took
   * them (no promise per event), every event held for the run-at-a-time signature check, no
   * journal while it runs (a full snapshot at its end replaces it). A read that stalls for
   * CATCH_UP_QUIET_MS or fails is left to the following read, which resumes after the view.
   */
  private async catchUp(nc: NatsConnection, moved: () => void, last: number, progress: () => void): Promise<void> {
    const stop = new AbortController();
    const abort = () => stop.abort();
    this.abort.signal.addEventListener('abort', abort, { once: true });
    let quiet: NodeJS.Timeout | undefined;
    const arm = (ms = CATCH_UP_QUIET_MS) => { clearTimeout(quiet); quiet = setTimeout(abort, ms); };
    this.catching = true;
    let thread: ReaderThread | undefined;
    try {
      arm(CATCH_UP_FIRST_MS);
      // the bulk reader (shared/nats/bulk.ts): raw messages, no JsMsg per event, up to the end seen
      // at start; in a reader thread when the keeper knows how to connect one (replay-reader.ts)
      const range = { from: this.v.seq + 1, to: last, signal: stop.signal };
      // a thread costs its start, a connection and a consumer (seconds on a loaded host): only a
      // long catch-up pays for it, and a restart over a short tail answers at once without it
      const threaded = this.reader && last - this.v.seq >= this.threadFrom;
      // threaded, the thread also checks the signatures (this fold's own checks, run there over the
      // same events: shared/fold.ts) and this thread only decodes and folds by its verdicts
      const plain = async function* (): AsyncGenerator<Posted> { for await (const msgs of readRange(nc, range)) yield { msgs }; };
      // a thread begun on a peek at the snapshot is used if its range starts where the view does with its keys
      const check = this.fold.checks();
      if (this.thread?.fits(range.from, check) === false) this.dropThread();
      this.replay.began = threaded === true && this.thread?.fits(range.from, check) === true;
      thread = threaded ? this.thread ?? ReaderThread.start(this.reader!) : undefined;
      this.thread = undefined;
      mark(`catch-up from #${range.from} to #${last} (${threaded ? (this.replay.began ? 'thread begun before' : 'thread') : 'this thread'})`);
      let posts = 0;
      for await (const post of thread ? thread.read({ ...range, check }) : plain()) {
        if (posts++ === 0) mark('first batch');
        arm();
        const raw = post.msgs, problem = post.problem;
        this.replay.events += raw.length;
        // decoded one at a time as folded, not a batch ahead: the young generation then holds
        // only the fold's held run, and each scavenge copies that much less
        for (let i = 0; i < raw.length; i++) {
          // checked by the thread, the envelope was validated there (over these bytes): only the data is
          const item = problem && problem[i] !== false ? decodeCheckedItem(raw[i]!) : decodeItem(raw[i]!);
          raw[i] = undefined!;
          if (item.ok) { if (problem) this.fold.put(item.stored, problem[i] || undefined); else this.fold.add(item.stored, true); }
          else { this.fold.flush(); this.undecodable(item); }
        }
        if (post.keys) this.fold.keysAre(post.keys);
        this.afterFold(raw.length);
        progress();
      }
    } catch (err) {
      this.replay.problem = (err as Error).message;
      console.error(`controller: catching up: ${(err as Error).message}; following from #${this.v.seq + 1}`);
    } finally {
      clearTimeout(quiet);
      this.abort.signal.removeEventListener('abort', abort);
      this.catching = false;
      this.fold.flush();
    }
    if (tracing) mark(`catch-up folded ${this.replay.events} events (this thread ${threadCpu()?.toFixed(2)} s CPU from its start${thread ? `; waited ${thread.waited.toFixed(0)} ms for the reader` : ''})`);
    // what a long catch-up freed is mostly C heap (the thread's heap, its posts' buffers): given
    // back before the view answers, not kept in the controller's RSS from then on
    if (this.trim && (thread || this.replay.events >= this.threadFrom)) {
      // the index's maps (~0.3 s for 100,000 containers) are built while the thread's heap is torn
      // down on the other core, not after: the same maps moved() would build, only sooner
      if (this.v.seq >= last) { indexOf(this.v).complete(); mark('index built (the thread going)'); }
      // (a thread slow to go is not waited for long: the trim then gets the rest later, or not)
      await Promise.race([thread?.closed, new Promise((r) => setTimeout(r, 500))]);
      await this.trim();
      mark('memory trimmed');
    }
    moved();
    mark('index built');
    this.afterFold(0);
    mark('catch-up end written');
  }

  /**
   * One archived event (retention, shared/nats/archive.ts), folded as the stream's would be:
   * before start(), when the stream no longer holds what comes after this view's snapshot.
   */
  foldArchived(s: StoredEvent): void {
    if (s.seq <= this.v.seq) return;
    this.fold.add(s);
  }

  /** Writes a full snapshot now (before a purge: a restart must not need what was purged). */
  flush(): Promise<void> { return this.snapshotNow(); }

  /**
   * Resolves once the view includes stream position `seq` (an append the caller made). 10 s:
   * when a nats-server dies the view's consumer is made again elsewhere (a few seconds), and
   * a request that waited is better than one that failed; tsctl waits 15 s for any reply.
   */
  waitFor(seq: number, timeoutMs = 10000): Promise<void> {
    if (this.v.seq >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`view did not reach seq ${seq} in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ seq, resolve: () => { clearTimeout(t); resolve(); } });
    });
  }

  /** Resolves when `cond` holds after some fold (or now); rejects after `timeoutMs`. */
  until(cond: () => boolean, timeoutMs = 10000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.watchers.delete(check); reject(new Error(`no answer from the nodes within ${timeoutMs} ms`)); }, timeoutMs);
      const check = () => { if (cond()) { clearTimeout(t); this.watchers.delete(check); resolve(); } };
      this.watchers.add(check);
    });
  }

  /** An event that does not decode (junk bytes, data that does not validate): its position passed, said in one line. */
  private undecodable(item: { seq: number; subject: string; error: Error }): void {
    this.decodeErrors += 1;
    this.v.seq = Math.max(this.v.seq, item.seq);
    this.problems.say(`controller: not folding #${item.seq} on ${item.subject.slice(0, 120)}: ${item.error.message.slice(0, 200)}`);
  }

  private dropThread(): void { this.thread?.close(); this.thread = undefined; }

  /** Stops following; what changed since the last delta is written before it resolves. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.dropThread();
    clearTimeout(this.idle); clearTimeout(this.holdTimer);
    this.fold.flush();
    this.delta();
    // a full snapshot being made writes after it is done: the journal must still be open then
    await this.compaction?.catch(() => undefined);
    await this.files;
    await this.journal?.close().catch(() => undefined);
  }

  /** Writes everything now: a full snapshot (the journal starts again after it). For tests and benchmarks. */
  async snapshotNow(): Promise<void> {
    this.fold.flush();
    await this.full(true);
  }

  private wake(): void {
    for (const w of [...this.watchers]) w();
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.seq <= this.v.seq);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.seq > this.v.seq);
    for (const w of ready) w.resolve();
  }

  private holdFor(moved: () => void): void {
    if (this.holdTimer) return;
    this.holdTimer = setTimeout(() => { this.holdTimer = undefined; this.fold.flush(); moved(); }, HOLD_MS);
    this.holdTimer.unref();
  }

  /** `n` events were just passed; while catching up (n of a batch, 0 at its end) the journal waits for the end. */
  private afterFold(n = 1): void {
    if (this.abort.signal.aborted) return; // stopped: the journal is (being) closed
    if (this.catching) {
      // only the snapshots for view --at while catching up: a delta per DELTA_EVERY would write most of the view again and again
      this.travelDelta();
      this.travel();
      return;
    }
    if (n === 0) {
      // the catch-up's end: what it changed goes out as one delta, or as a full snapshot if that is most of the view
      if (this.compaction) return;
      if (this.tracker.containers.size > indexOf(this.v).size / 2 && this.v.seq > this.base) void this.full(false);
      else this.delta();
      this.travelIdle();
      return;
    }
    this.sinceDelta += n;
    if (this.sinceDelta >= DELTA_EVERY) this.delta();
    else if (!this.idle) {
      this.idle = setTimeout(() => { this.idle = undefined; this.fold.flush(); this.delta(); this.travelIdle(); }, DELTA_IDLE_MS);
      this.idle.unref();
    }
    this.travelDelta();
    if (this.compaction) return;
    if (this.journalBytes > Math.max(MIN_JOURNAL, this.snapshotBytes)) { void this.full(false); return; }
    this.travel();
  }

  /** A full snapshot (kept for view --at) once `every` events passed since the last, unless one is stored for that window. */
  private travel(): void {
    if (this.compaction) return;
    // catching up, snapshots come faster than they upload: one made while the store is busy would be replaced unstored
    if (this.catching && this.busy?.()) return;
    // catching up, a full only every CATCH_UP_FULLS windows: the deltas (a fifth of a window apart)
    // keep view --at's fold short, and a full of a large view costs the replay far more than a delta
    // (the first full comes after one window all the same: it is small, and the deltas start from it)
    const every = this.catching && this.base > 0 ? this.every * CATCH_UP_FULLS : this.every;
    if (this.v.seq - this.base >= every && this.v.seq - this.travelChecked >= every) {
      this.travelChecked = this.v.seq;
      // catching up, at once: a stepwise full yields between chunks while the catch-up's batches
      // keep folding, so it would not finish before the catch-up ends and view --at would get no
      // full (and so no deltas) in the middle of the log
      if (!this.covered?.(this.v.seq - every, this.v.seq)) void this.full(this.catching);
    }
  }

  /** Appends what changed since the last delta to the journal (encoded now, written in turn). */
  private delta(): void {
    this.sinceDelta = 0;
    if (this.tracker.containers.size === 0 && this.tracker.nodes.size === 0 && this.v.seq === this.deltaSeq) return;
    this.deltaSeq = this.v.seq;
    const bytes = encodeDelta(this.v, this.tracker, this.base);
    this.journalBytes += bytes.length;
    this.file(async () => { await this.journal!.write(bytes); });
  }
  private deltaSeq = -1;
  // the chain of deltas for view --at: what changed since its last link, after the full at travelBase
  private travelTracker?: ChangeTracker;
  private travelBase = 0;
  private travelPrev = 0;

  /**
   * Starts the chain of deltas at the view as loaded, when that is a stored full (`seq`, its
   * snapshot file with no journal after it): a restart's catch-up then makes deltas from its
   * first events, not only after its first full (which a catch-up makes late).
   */
  chainFrom(seq: number): void {
    if (!this.onDelta || this.travelTracker || this.v.seq !== seq || this.loaded.deltas > 0) return;
    indexOf(this.v).trackers.add(this.travelTracker = { containers: new Set(), nodes: new Set() });
    this.travelBase = this.travelPrev = seq;
  }

  /** A delta for view --at once enough events passed since the chain's last link (cheap: only what changed). */
  private travelDelta(): void {
    if (!this.travelTracker || !this.onDelta) return;
    if (this.v.seq - this.travelPrev < Math.max(1, Math.floor(this.every / DELTAS_PER_FULL))) return;
    const prev = this.travelPrev;
    this.travelPrev = this.v.seq;
    const bytes = encodeDelta(this.v, this.travelTracker, this.travelBase);
    this.onDelta({ seq: this.v.seq, ts: this.v.maxTs ?? 0, bytes, base: this.travelBase, prev });
  }

  private travelIdleSeq = -1;

  /**
   * A side delta for view --at when the fold goes idle (and at a catch-up's end): what changed
   * since the chain's last link, following that link like the next regular delta will (which
   * still carries the same changes: the chain's tracker is copied, not cleared). view --at of
   * the log's end (the commonest point asked) then folds almost nothing after it, instead of up
   * to a link's worth of events (10,000 by default). travelPlan picks it only for a point before
   * the next regular link; the store keeps few of them per link (controller/travel.ts).
   */
  private travelIdle(): void {
    if (!this.travelTracker || !this.onDelta) return;
    // a full being made: after it (its own position is the chain's new start; a later one still gets its side delta)
    if (this.compaction) { void this.compaction.then(() => this.travelIdle(), () => undefined); return; }
    if (this.v.seq === this.travelPrev || this.v.seq === this.travelIdleSeq) return;
    this.travelIdleSeq = this.v.seq;
    const t = this.travelTracker;
    const bytes = encodeDelta(this.v, { containers: new Set(t.containers), nodes: new Set(t.nodes) }, this.travelBase);
    this.onDelta({ seq: this.v.seq, ts: this.v.maxTs ?? 0, bytes, base: this.travelBase, prev: this.travelPrev, idle: true });
  }

  private catching = false;
  private travelChecked = 0;

  /** A full snapshot, made a chunk at a time between folds (all at once when `now`), then renamed in; the journal starts again. */
  private async full(now: boolean): Promise<void> {
    if (this.compaction) { await this.compaction; if (!now) return; }
    const p = this.compact(now);
    this.compaction = p;
    try { await p; } finally { this.compaction = undefined; }
  }

  private async compact(now: boolean): Promise<void> {
    {
      const w = new SnapshotWriter(this.v);
      if (!now) while (!w.step()) await new Promise<void>((r) => setImmediate(r));
      const snap = w.finish();
      // deltas from here on follow this snapshot (the file queue keeps them after the rename)
      this.base = snap.seq;
      this.deltaSeq = snap.seq;
      this.tracker.containers.clear(); this.tracker.nodes.clear();
      this.snapshotBytes = snap.bytes.length;
      this.journalBytes = 0;
      // the deltas for view --at start again from this full (finish() ran in this same turn: nothing folded since)
      if (this.onDelta) {
        if (!this.travelTracker) indexOf(this.v).trackers.add(this.travelTracker = { containers: new Set(), nodes: new Set() });
        this.travelTracker.containers.clear(); this.travelTracker.nodes.clear();
        this.travelBase = this.travelPrev = snap.seq;
      }
      this.onSnapshot?.({ ...snap, ts: this.v.maxTs ?? 0 });
      await this.file(async () => {
        const tmp = join(this.dir, 'snapshot.bin.tmp');
        await writeFile(tmp, snap.bytes);
        await rename(tmp, join(this.dir, 'snapshot.bin'));
        await this.journal!.truncate(0);
      });
    }
  }

  private file(f: () => Promise<void>): Promise<void> {
    const p = this.files.then(f).catch((err) => console.error(`controller: writing the view: ${(err as Error).message}`));
    this.files = p;
    return p;
  }
}
