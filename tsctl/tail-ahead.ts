// view --at's read of the events after its snapshot, started as soon as the plan names where
// that snapshot's chain ends, so the server sends them while the snapshot object is fetched,
// verified and decoded (most of the wait). Raw messages (shared/nats/bulk.ts: no JsMsg per
// event), bounded at the point asked when it is a position; at most AHEAD events are held
// before the fold takes them (a point given as a time may lie far after the snapshot).
import type { NatsConnection } from 'nats';
import { readRange, type RawMsg } from '../shared/nats/bulk.js';

const AHEAD = 65_536;

export class TailAhead {
  private held: RawMsg[][] = [];
  private n = 0;
  private ended = false;
  private failure: unknown;
  private wake?: () => void;
  private room?: () => void;
  private ac = new AbortController();

  /** Reads `from`..`to` (inclusive; to the stream's end if that comes first). */
  constructor(nc: NatsConnection, readonly from: number, to: number) {
    void this.run(nc, to);
  }

  private async run(nc: NatsConnection, to: number): Promise<void> {
    try {
      for await (const b of readRange(nc, { from: this.from, to, signal: this.ac.signal })) {
        this.held.push(b); this.n += b.length; this.poke();
        while (this.n >= AHEAD && !this.ac.signal.aborted) await new Promise<void>((r) => { this.room = r; });
        if (this.ac.signal.aborted) break;
      }
    } catch (err) { this.failure = err; } finally { this.ended = true; this.poke(); }
  }

  private poke(): void { const w = this.wake; this.wake = undefined; w?.(); }

  /** The batches in stream order, as they come; throws what the read threw. */
  async *batches(): AsyncGenerator<RawMsg[]> {
    try {
      for (;;) {
        const b = this.held.shift();
        if (b) {
          this.n -= b.length;
          if (this.n < AHEAD) { const r = this.room; this.room = undefined; r?.(); }
          yield b;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.ended) return;
        await new Promise<void>((r) => { this.wake = r; });
      }
    } finally { this.stop(); }
  }

  /** Ends the read (its consumer is deleted); what is held is dropped. */
  stop(): void {
    this.ac.abort();
    this.held = []; this.n = 0;
    const r = this.room; this.room = undefined; r?.();
  }
}
