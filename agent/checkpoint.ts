// The agent's own memory (lowdb): per container, the last stream sequence applied and
// what it last reported. Redelivered or replayed events at or below lastSeq are no-ops,
// and a tombstone keeps a removed container from coming back on a full replay.
import { JSONFilePreset } from 'lowdb/node';
import type { Low } from 'lowdb';
import type { ContainerSpec } from '../shared/events.js';

export interface ContainerRecord {
  lastSeq: number;
  requestId: string;         // the ContainerRequested event id, the cause of what follows
  spec?: ContainerSpec;      // dropped on removal
  reported: 'running' | 'exited' | 'failed' | 'removed';
  pid?: number;
}

export interface CheckpointData { containers: Record<string, ContainerRecord>; seen?: Record<string, number> }

export class Checkpoint {
  private dirty = false;
  private writing?: Promise<void>;

  private constructor(private db: Low<CheckpointData>) {}

  static async open(file: string): Promise<Checkpoint> {
    return new Checkpoint(await JSONFilePreset<CheckpointData>(file, { containers: {} }));
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

  /** Coalesces bursts of changes into one write; resolves when the change is on disk. */
  private async save(): Promise<void> {
    this.dirty = true;
    while (this.dirty) {
      if (this.writing) { await this.writing; continue; }
      this.dirty = false;
      this.writing = this.db.write().finally(() => { this.writing = undefined; });
      await this.writing;
    }
  }
}
