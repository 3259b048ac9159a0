// The agent's own memory (lowdb): per container, the last stream sequence applied and
// what it last reported. Redelivered or replayed events at or below lastSeq are no-ops,
// and a tombstone keeps a removed container from coming back on a full replay.
import { LowSync } from 'lowdb';
import type { ContainerSpec } from '../../shared/events.js';
import { jsonAdapter } from '../json-file.js';

export interface ContainerRecord {
  lastSeq: number;
  requestId: string;         // the ContainerRequested event id, the cause of what follows
  spec?: ContainerSpec;      // dropped on removal
  reported: 'running' | 'exited' | 'failed' | 'removed';
  pid?: number;
}

export interface CheckpointData { containers: Record<string, ContainerRecord>; seen?: Record<string, number> }

// Synchronous writes (tmp file + rename): a write is ~0.2 ms here and sits on the start
// path between the container running and ContainerStarted being appended; the async
// writer's extra turns of the event loop cost more than the write.
export class Checkpoint {
  private constructor(private db: LowSync<CheckpointData>) {}

  static async open(file: string): Promise<Checkpoint> {
    const db = new LowSync<CheckpointData>(jsonAdapter(file), { containers: {} });
    db.read();
    return new Checkpoint(db);
  }

  get(id: string): ContainerRecord | undefined { return this.db.data.containers[id]; }

  all(): [string, ContainerRecord][] { return Object.entries(this.db.data.containers); }

  /** Last stream sequence applied for an entity that is not a container (networks). */
  seen(entity: string): number { return this.db.data.seen?.[entity] ?? 0; }

  markSeen(entity: string, seq: number): Promise<void> {
    (this.db.data.seen ??= {})[entity] = seq;
    return this.save();
  }

  set(id: string, rec: ContainerRecord): Promise<void> {
    this.db.data.containers[id] = rec;
    return this.save();
  }

  update(id: string, patch: Partial<ContainerRecord>): Promise<void> {
    const rec = this.db.data.containers[id];
    if (!rec) return Promise.resolve();
    Object.assign(rec, patch);
    if (patch.reported === 'removed') delete rec.spec;
    return this.save();
  }

  /** Resolves once the change is in the file. */
  private async save(): Promise<void> {
    this.db.write();
  }
}
