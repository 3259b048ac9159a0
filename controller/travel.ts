// The controller's uploads of snapshots for view --at (shared/nats/snapshots.ts): full snapshots
// and the deltas chained after them, stored in order, one at a time, and the store thinned after
// each full. A delta is stored only after its full was (a chain with a missing base is useless).
// While an upload runs, only the newest full waits: a catch-up makes them faster than they upload,
// and a waiting full replaced drops the deltas queued after it (they follow it, not a stored one).
import type { NatsConnection } from 'nats';
import type { Signer } from '../shared/signing.js';
import { dropSnapshots, listSnapshots, putSnapshot, snapshotName, thinPlan, type StoredSnapshot } from '../shared/nats/snapshots.js';
import type { DeltaInfo, SnapshotInfo } from './view.js';

type Item = { full: SnapshotInfo } | { delta: DeltaInfo };

/** Side deltas (made when the fold goes idle, DeltaInfo.idle) kept per link of the chain. */
export const IDLE_KEPT = 4;

export class TravelStore {
  private queue: Item[] = [];
  private running = false;
  /** Fulls stored or queued: deltas after one of these are worth storing. */
  private bases = new Set<number>();
  /** The fulls stored (names only), so a window already covered by one needs no other. */
  private stored = new Set<number>();

  private constructor(private nc: NatsConnection, private signer: Signer, private reg: { key: string; rootSig: string }, private log: (l: string) => void) {}

  static async open(nc: NatsConnection, signer: Signer, reg: { key: string; rootSig: string }, log: (l: string) => void): Promise<TravelStore> {
    const t = new TravelStore(nc, signer, reg, log);
    // a stored full can start a chain of deltas (ViewKeeper.chainFrom: a restart from that very view)
    for (const s of await listSnapshots(nc).catch(() => [] as StoredSnapshot[])) if (s.base === undefined) { t.stored.add(s.seq); t.bases.add(s.seq); }
    return t;
  }

  /** Whether a full is being stored or waits (a catch-up then makes its next full later; deltas, small, do not hold fulls back). */
  busy(): boolean { return this.fullUploading || this.queue.some((i) => 'full' in i); }
  private fullUploading = false;

  /** Whether the full at `seq` is stored. */
  has(seq: number): boolean { return this.stored.has(seq); }

  /** Whether a stored full lies in (from, to]. */
  covered(from: number, to: number): boolean {
    for (const q of this.stored) if (q > from && q <= to) return true;
    return false;
  }

  full(s: SnapshotInfo): void {
    // the waiting full (not yet begun) and the deltas after it give way to this newer one
    const w = this.queue.findIndex((i) => 'full' in i);
    if (w >= 0) { for (const i of this.queue.splice(w)) if ('full' in i) this.bases.delete(i.full.seq); }
    this.bases.add(s.seq);
    this.push({ full: s });
  }

  delta(d: DeltaInfo): void {
    if (!this.bases.has(d.base)) return;
    // a newer side delta makes a waiting one of the same link needless (it covers the same points, and more)
    if (d.idle) this.queue = this.queue.filter((q) => !('delta' in q && q.delta.idle && q.delta.base === d.base && q.delta.prev === d.prev));
    this.push({ delta: d });
  }

  /** The side deltas stored since the chain's last link, oldest first (names). */
  private idles: string[] = [];

  private push(i: Item): void {
    this.queue.push(i);
    if (!this.running) void this.pump();
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      for (let i = this.queue.shift(); i; i = this.queue.shift()) {
        const s = 'full' in i ? i.full : i.delta;
        if ('full' in i) this.fullUploading = true;
        try {
          await putSnapshot(this.nc, s, this.signer, this.reg);
          if ('delta' in i && i.delta.idle) await this.keptIdle(i.delta);
          else {
            await this.dropIdles(this.idles.length);
            if ('full' in i) { this.stored.add(s.seq); await this.thin(); }
          }
        } catch (err) {
          this.log(`storing ${'full' in i ? 'snapshot' : 'delta'} #${s.seq}: ${(err as Error).message}`);
          // a side delta is no link: the chain goes on without it
          if ('delta' in i && i.delta.idle) continue;
          // the chain after a full or delta that is not stored is broken: its later deltas are not worth storing
          if ('full' in i) this.bases.delete(s.seq);
          else { const base = i.delta.base; this.queue = this.queue.filter((q) => !('delta' in q && q.delta.base === base)); this.bases.delete(base); }
        } finally { this.fullUploading = false; }
      }
    } finally { this.running = false; }
  }

  /**
   * Side deltas are kept until the chain's next link (a full or a delta) is stored, and at most
   * the IDLE_KEPT newest: a point between them and that link folds from the one before (a few
   * events more, as if there were none), and a trickle of events with pauses between makes no
   * unbounded number of objects. Known only to this process: what a restart left is dropped
   * with its full by thinning.
   */
  private async keptIdle(d: DeltaInfo): Promise<void> {
    this.idles.push(snapshotName(d));
    await this.dropIdles(this.idles.length - IDLE_KEPT);
  }

  private async dropIdles(n: number): Promise<void> {
    if (n <= 0) return;
    await dropSnapshots(this.nc, this.idles.splice(0, n)).catch((err: Error) => this.log(`dropping side deltas: ${err.message}`));
  }

  /** Drops what thinPlan says (old fulls beyond the kept ones, the deltas of all but the newest fulls). */
  private async thin(): Promise<void> {
    try {
      const drop = thinPlan(await listSnapshots(this.nc));
      await dropSnapshots(this.nc, drop);
    } catch (err) { this.log(`thinning the stored snapshots: ${(err as Error).message}`); }
  }
}
