// The agent's own memory: per container, the last stream sequence applied and what it last
// reported. Redelivered or replayed events at or below lastSeq are no-ops, and a tombstone
// keeps a removed container from coming back while the stream still holds its events.
//
// Kept as an append-only journal (journal.ts): each change is one small record setting one
// whole value (a container's record, its promised events, a position), compacted into a
// snapshot in the background once the journal outgrows the state. A write costs the size of
// the change, not of the history (the whole-file JSON rewrite it replaces cost 8 ms at 10k
// containers ever run, 124 ms at 100k).
import type { HealthStatus } from '../../shared/health.js';
import type { ContainerSpec } from '../../shared/events.js';
import { readTextIfAny } from '../json-file.js';
import { unlinkSync } from 'node:fs';
import { Journal, JournalError } from './journal.js';
import type { StateEvent } from './outcome.js';

export interface ContainerRecord {
  lastSeq: number;
  requestId: string;         // the ContainerRequested event id, the cause of what follows
  spec?: ContainerSpec;      // dropped on removal
  /** who ran it (ContainerRequested's authenticated user): the only one whose stdin it reads (agent/attach.ts) */
  owner?: string;
  /** 'created': prepared by tsctl create, never started */
  reported: 'created' | 'running' | 'exited' | 'failed' | 'removed';
  pid?: number;
  /** when the current (or last) run began, ms: a run of 10 s resets the restart back-off */
  runningAt?: number;
  /** the restart policy's state (shared/restart-policy.ts), here so it outlives the agent: */
  /** starts the policy made since the last start a user asked for */
  restartCount?: number;
  /** the last back-off waited, ms */
  backoffMs?: number;
  /** when the policy starts the exited container again, ms since epoch; absent: it does not */
  restartAt?: number;
  /** a user stopped or killed it: no policy starts it again (always: until the agent restarts) */
  stopped?: boolean;
  /** the health status last reported for the run that began at `runningAt` (agent/health.ts resumes from it) */
  health?: { status: HealthStatus; failingStreak: number; runningAt: number };
}

/** A state event promised by a recorded change: its id is chosen before the append. */
export type PendingEvent = StateEvent & { id: string };

/** The JSON checkpoint the agent kept before the journal (read once, to migrate). */
export interface CheckpointData {
  containers: Record<string, ContainerRecord>;
  seen?: Record<string, number>;
  pending?: Record<string, PendingEvent[]>;
}

/** One journal record: sets (or, without a value, deletes) one whole value. */
export type Op =
  | { c: string; r?: ContainerRecord }     // a container's record
  | { p: string; e?: PendingEvent[] }      // the events promised for an entity, not yet known to be in the log
  | { s: string; v?: number };             // a position seen under a key

const REPORTED = new Set(['created', 'running', 'exited', 'failed', 'removed']);
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Checks a record read back from the file (the agent's own, but a file can be damaged). */
export function checkOp(x: unknown): Op {
  if (!isObj(x)) throw new Error('not an object');
  const keys = Object.keys(x);
  const key = typeof x.c === 'string' ? 'c' : typeof x.p === 'string' ? 'p' : typeof x.s === 'string' ? 's' : undefined;
  if (!key) throw new Error('no c, p or s key');
  if (keys.length > 2) throw new Error(`unexpected keys ${keys.join(',')}`);
  const v = key === 'c' ? x.r : key === 'p' ? x.e : x.v;
  if (keys.length === 2 && v === undefined) throw new Error(`unexpected keys ${keys.join(',')}`);
  if (v === undefined) return x as Op;
  if (key === 'c') {
    if (!isObj(v) || typeof v.lastSeq !== 'number' || typeof v.requestId !== 'string' || !REPORTED.has(v.reported as string)) throw new Error('a container record without lastSeq, requestId or reported');
  } else if (key === 'p') {
    if (!Array.isArray(v) || !v.every((e) => isObj(e) && typeof e.id === 'string' && typeof e.type === 'string' && typeof e.entity === 'string' && isObj(e.data))) throw new Error('promised events that are not events');
  } else if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error('a position that is not an integer');
  return x as Op;
}

// A container's record is written synchronously: it sits on the start path between the
// container running and ContainerStarted being appended, and is now one write(2) of a few
// hundred bytes. Positions of refused messages are written in 20 ms batches and their messages
// acked once the batch is in the file (whenSaved). What is only housekeeping (a promise kept,
// a pruned tombstone or position) waits for the next write, at most a second: losing it in a
// crash costs a re-check at the next start, never a wrong answer.
const BATCH_MS = 20;
const LAZY_MS = 1000;

export interface CheckpointOptions {
  /** The JSON file an older agent kept; migrated into the journal, then deleted. */
  legacy?: string;
  minCompactBytes?: number;
  /** See JournalOptions.compactBytes; SWARMLITE_CHECKPOINT_COMPACT_BYTES sets it. */
  compactBytes?: number;
  warn?(msg: string): void;
}

export class Checkpoint {
  private containers = new Map<string, ContainerRecord>();
  private seenAt = new Map<string, number>();
  private promised = new Map<string, PendingEvent[]>();
  /** Ids of tombstones, so pruning does not scan the live ones. */
  private removed = new Set<string>();
  private queue: Op[] = [];
  private urgent = false;
  private timer?: NodeJS.Timeout;
  private lazy?: NodeJS.Timeout;
  private waiting: (() => void)[] = [];
  private journal!: Journal<Op>;

  private constructor() {}

  /** Opens (or makes) the journal folder `dir`. Throws JournalError on a damaged file. */
  static async open(dir: string, o: CheckpointOptions = {}): Promise<Checkpoint> {
    const cp = new Checkpoint();
    const env = Number(process.env.SWARMLITE_CHECKPOINT_COMPACT_BYTES);
    const compactBytes = o.compactBytes ?? (Number.isSafeInteger(env) && env > 0 ? env : undefined);
    // The older agent's JSON file is the base the journal's records apply over until the
    // journal's first snapshot (a migration a crash interrupted is simply done again).
    const legacy = o.legacy ?? `${dir}.json`;
    const text = readTextIfAny(legacy);
    const migrate = text !== undefined && !Journal.hasSnapshot(dir);
    if (migrate) {
      let old: CheckpointData;
      try { old = JSON.parse(text) as CheckpointData; } catch (err) { throw new JournalError(legacy, 0, `not JSON (${(err as Error).message})`, legacy); }
      try {
        for (const [id, r] of Object.entries(old.containers ?? {})) cp.apply(checkOp({ c: id, r }));
        for (const [id, e] of Object.entries(old.pending ?? {})) cp.apply(checkOp({ p: id, e }));
        for (const [k, v] of Object.entries(old.seen ?? {})) cp.apply(checkOp({ s: k, v }));
      } catch (err) { throw new JournalError(legacy, 0, `not a checkpoint (${(err as Error).message})`, legacy); }
    }
    cp.journal = Journal.open<Op>({
      dir, check: checkOp, apply: (op) => cp.apply(op), dump: () => cp.dump(), minCompactBytes: o.minCompactBytes, compactBytes, warn: o.warn,
    });
    if (migrate) await cp.journal.compact();
    if (text !== undefined) unlinkSync(legacy);
    return cp;
  }

  get(id: string): ContainerRecord | undefined { return this.containers.get(id); }

  all(): [string, ContainerRecord][] { return [...this.containers]; }

  /** Last stream sequence applied (networks) or refused (`rejected:<token>`) under a key. */
  seen(key: string): number { return this.seenAt.get(key) ?? 0; }

  /** Remembers a position; written with the next batch (or the next record write). */
  markSeen(key: string, seq: number): void {
    this.seenAt.set(key, seq);
    this.queue.push({ s: key, v: seq });
    this.urgent = true;
    this.timer ??= setTimeout(() => this.flush(), BATCH_MS);
  }

  /** Forgets refused positions at or below `floor`: the consumer never delivers those again. */
  pruneRejected(floor: number): number {
    let n = 0;
    for (const [k, v] of this.seenAt) {
      if (k.startsWith('rejected:') && v <= floor) { this.seenAt.delete(k); this.later({ s: k }); n++; }
    }
    return n;
  }

  /**
   * Forgets tombstones whose events the stream no longer holds (all at or below lastSeq are
   * below `firstSeq`): nothing can deliver them again, not even a consumer made afresh that
   * replays the whole stream. A tombstone with events still promised stays.
   */
  pruneRemoved(firstSeq: number): number {
    let n = 0;
    for (const id of this.removed) {
      const r = this.containers.get(id);
      if (r && r.lastSeq < firstSeq && !this.promised.has(id)) {
        this.containers.delete(id);
        this.removed.delete(id);
        this.later({ c: id });
        n++;
      }
    }
    return n;
  }

  /**
   * Writes a container's record together with the events that change promises, in one
   * write: after a crash, recovery appends what the log does not have yet (exactly once).
   */
  set(id: string, rec: ContainerRecord, promised: PendingEvent[] = []): void {
    this.setRecord(id, rec);
    this.write([{ c: id, r: rec }, ...this.promise(id, promised)]);
  }

  update(id: string, patch: Partial<ContainerRecord>, promised: PendingEvent[] = []): void {
    const rec = this.get(id);
    const ops: Op[] = [];
    if (rec) {
      Object.assign(rec, patch);
      if (patch.reported === 'removed') delete rec.spec;
      this.setRecord(id, rec);
      ops.push({ c: id, r: rec });
    }
    this.write([...ops, ...this.promise(id, promised)]);
  }

  /**
   * The promised events (`ids`, or all of the entity's) are in the log: forget them. No write
   * of its own: it goes with the next one. Lost in a crash, the next start reads the entity's
   * subject, finds them there and appends nothing.
   */
  kept(id: string, ids?: readonly string[]): void {
    const p = this.promised.get(id);
    if (!p) return;
    const rest = ids ? p.filter((e) => !ids.includes(e.id)) : [];
    if (rest.length) this.promised.set(id, rest); else this.promised.delete(id);
    this.later(rest.length ? { p: id, e: rest } : { p: id });
  }

  pending(): [string, PendingEvent[]][] { return [...this.promised]; }

  /** Resolves once every position marked so far is in the file (housekeeping does not wait). */
  whenSaved(): Promise<void> {
    if (!this.urgent) return Promise.resolve();
    return new Promise((r) => this.waiting.push(r));
  }

  /** Writes what is queued now (at shutdown, after recovery). */
  flush(): void { this.write([]); }

  /** Flushes and closes the file (tests, shutdown). */
  close(): void { this.flush(); this.journal.close(); }

  /** Waits for a compaction in progress or starts one (tests, the bench). */
  compact(): Promise<void> { this.flush(); return this.journal.compact(); }

  /** Sizes of the files behind the state (tests, the bench). */
  get files(): { snapshot: number; journal: number; gen: number } { return this.journal.bytes; }

  // A promise adds to what the entity already has pending: an append that failed earlier
  // (server gone) stays promised until it is in the log, instead of being overwritten.
  private promise(id: string, events: PendingEvent[]): Op[] {
    if (!events.length) return [];
    const all = [...(this.promised.get(id) ?? []), ...events];
    this.promised.set(id, all);
    return [{ p: id, e: all }];
  }

  private setRecord(id: string, rec: ContainerRecord): void {
    this.containers.set(id, rec);
    if (rec.reported === 'removed') this.removed.add(id); else this.removed.delete(id);
  }

  private apply(op: Op): void {
    if ('c' in op) {
      if (op.r) this.setRecord(op.c, op.r);
      else { this.containers.delete(op.c); this.removed.delete(op.c); }
    } else if ('p' in op) {
      if (op.e?.length) this.promised.set(op.p, op.e); else this.promised.delete(op.p);
    } else if (op.v !== undefined) this.seenAt.set(op.s, op.v);
    else this.seenAt.delete(op.s);
  }

  private *dump(): Iterable<Op> {
    for (const [c, r] of this.containers) yield { c, r };
    for (const [p, e] of this.promised) yield { p, e };
    for (const [s, v] of this.seenAt) yield { s, v };
  }

  private later(op: Op): void {
    this.queue.push(op);
    if (!this.lazy) { this.lazy = setTimeout(() => this.flush(), LAZY_MS); this.lazy.unref(); }
  }

  /** Queued records first, then `ops`, in one append. */
  private write(ops: Op[]): void {
    const all = this.queue.length ? [...this.queue.splice(0), ...ops] : ops;
    clearTimeout(this.timer); this.timer = undefined;
    clearTimeout(this.lazy); this.lazy = undefined;
    try {
      this.journal.append(all);
    } catch (err) {
      this.queue.unshift(...all.slice(0, all.length - ops.length)); // still to write
      throw err;
    }
    this.urgent = false;
    for (const w of this.waiting.splice(0)) w();
  }
}
