// The agent's own memory (lowdb): per container, the last stream sequence applied and
// what it last reported. Redelivered or replayed events at or below lastSeq are no-ops,
// and a tombstone keeps a removed container from coming back on a full replay.
import { LowSync } from 'lowdb';
import type { ContainerSpec } from '../../shared/events.js';
import { jsonAdapter } from '../json-file.js';
import type { StateEvent } from './outcome.js';

export interface ContainerRecord {
  lastSeq: number;
  requestId: string;         // the ContainerRequested event id, the cause of what follows
  spec?: ContainerSpec;      // dropped on removal
  reported: 'running' | 'exited' | 'failed' | 'removed';
  pid?: number;
}

/** A state event promised by a recorded change: its id is chosen before the append. */
export type PendingEvent = StateEvent & { id: string };

export interface CheckpointData {
  containers: Record<string, ContainerRecord>;
  seen?: Record<string, number>;
  /** Per entity: events a written change promised and that may not be in the log yet. */
  pending?: Record<string, PendingEvent[]>;
}

// A container's record is written synchronously (tmp file + rename): a write is ~0.2 ms here
// and sits on the start path between the container running and ContainerStarted being
// appended; the async writer's extra turns of the event loop cost more than the write.
// Positions of refused messages are many and cheap to lose (a lost one only makes a
// redelivered message be refused again): they are written in batches, and their messages
// are acked once the batch is in the file (whenSaved).
const BATCH_MS = 20;

export class Checkpoint {
  private dirty = false;
  private timer?: NodeJS.Timeout;
  private waiting: (() => void)[] = [];

  private constructor(private db: LowSync<CheckpointData>) {}

  static async open(file: string): Promise<Checkpoint> {
    const db = new LowSync<CheckpointData>(jsonAdapter(file), { containers: {} });
    db.read();
    return new Checkpoint(db);
  }

  get(id: string): ContainerRecord | undefined { return Object.hasOwn(this.db.data.containers, id) ? this.db.data.containers[id] : undefined; }

  all(): [string, ContainerRecord][] { return Object.entries(this.db.data.containers); }

  /** Last stream sequence applied (networks) or refused (`rejected:<token>`) under a key. */
  seen(key: string): number { return this.db.data.seen?.[key] ?? 0; }

  /** Remembers a position; written with the next batch (or the next record write). */
  markSeen(key: string, seq: number): void {
    (this.db.data.seen ??= {})[key] = seq;
    this.later();
  }

  /** Forgets refused positions at or below `floor`: the consumer never delivers those again. */
  pruneRejected(floor: number): number {
    const seen = this.db.data.seen ?? {};
    let n = 0;
    for (const [k, v] of Object.entries(seen)) if (k.startsWith('rejected:') && v <= floor) { delete seen[k]; n++; }
    if (n) this.later();
    return n;
  }

  /**
   * Writes a container's record together with the events that change promises, in one
   * write: after a crash, recovery appends what the log does not have yet (exactly once).
   */
  set(id: string, rec: ContainerRecord, promised: PendingEvent[] = []): void {
    this.db.data.containers[id] = rec;
    this.promise(id, promised);
    this.saveNow();
  }

  update(id: string, patch: Partial<ContainerRecord>, promised: PendingEvent[] = []): void {
    const rec = this.get(id);
    if (rec) {
      Object.assign(rec, patch);
      if (patch.reported === 'removed') delete rec.spec;
    }
    this.promise(id, promised);
    this.saveNow();
  }

  /** The promised events are in the log: forget them with the next write (no write of its own). */
  kept(id: string): void {
    const p = this.db.data.pending;
    if (p && Object.hasOwn(p, id)) { delete p[id]; this.later(); }
  }

  pending(): [string, PendingEvent[]][] { return Object.entries(this.db.data.pending ?? {}); }

  private promise(id: string, events: PendingEvent[]): void {
    if (events.length) (this.db.data.pending ??= {})[id] = events;
  }

  /** Resolves once every change made so far is in the file. */
  whenSaved(): Promise<void> {
    if (!this.dirty) return Promise.resolve();
    return new Promise((r) => this.waiting.push(r));
  }

  /** Writes what is pending now (at shutdown). */
  flush(): void { if (this.dirty) this.saveNow(); }

  private later(): void {
    this.dirty = true;
    this.timer ??= setTimeout(() => this.saveNow(), BATCH_MS);
  }

  private saveNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.db.write();
    this.dirty = false;
    for (const w of this.waiting.splice(0)) w();
  }
}
