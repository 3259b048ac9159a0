// Files of client transfers in flight (tsctl export/commit/cp out: Archives; cp in: CopiesIn),
// each under one private dir of the node's state. A crash leaves half-made or half-read files
// nobody can finish, so the dir starts empty; a transfer's file goes when it ends, or after a
// minute without a request (a client that went away).
import { mkdirSync, rmSync } from 'node:fs';

export interface TransferFile { file: string; used: number }

const IDLE_MS = 60_000;

export class TransferFiles<T extends TransferFile> {
  private open = new Map<string, T>();

  constructor(readonly dir: string, idleMs = IDLE_MS) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    setInterval(() => {
      for (const [k, t] of this.open) if (Date.now() - t.used > idleMs) this.drop(k);
    }, idleMs / 4).unref();
  }

  get size(): number { return this.open.size; }
  get(transfer: string): T | undefined { return this.open.get(transfer); }
  set(transfer: string, t: T): void { this.open.set(transfer, t); }
  /** Forgets the transfer and hands its file to the caller (who removes it when done). */
  take(transfer: string): T | undefined { const t = this.open.get(transfer); this.open.delete(transfer); return t; }
  /** Forgets the transfer and removes its file. */
  drop(transfer: string): void { const t = this.take(transfer); if (t) rmSync(t.file, { force: true }); }
}
