// The controller's cluster view: a lowdb snapshot (view + the stream sequence it covers)
// plus the tail of the stream folded on top, so a restart replays only what is new.
import { JSONFilePreset } from 'lowdb/node';
import type { Low } from 'lowdb';
import type { NatsConnection } from 'nats';
import { emptyView, reduce, refuse, type ClusterView } from '../shared/reducer.js';
import { KeyRing } from '../shared/signing.js';
import { readLog } from '../shared/nats/log.js';
import type { StoredEvent } from '../shared/events.js';

const SNAPSHOT_EVERY = 500; // events
const SNAPSHOT_IDLE_MS = 2000;

export class ViewKeeper {
  private waiters: { seq: number; resolve: () => void }[] = [];
  private watchers = new Set<() => void>();
  private sinceSnapshot = 0;
  private timer?: NodeJS.Timeout;
  private abort = new AbortController();
  private done?: Promise<void>;
  decodeErrors = 0;

  private ring?: KeyRing;

  private constructor(private db: Low<{ seq: number; view: ClusterView }>, root?: string) {
    // the keys live in the view, so a snapshot carries what the replay after it needs
    if (root) this.ring = new KeyRing(root, (db.data.view.keys ??= {}));
  }

  /** `root`: the cluster root's key; with it, an event not signed by its source's registered key is not folded (counted in view.forged). */
  static async open(file: string, root?: string): Promise<ViewKeeper> {
    const db = await JSONFilePreset(file, { seq: 0, view: emptyView() });
    return new ViewKeeper(db, root);
  }

  get view(): ClusterView { return this.db.data.view; }

  /** Replays up to the stream's end, then keeps following in the background. */
  async start(nc: NatsConnection, onEvent?: (v: ClusterView) => void): Promise<void> {
    const jsm = await nc.jetstreamManager();
    const last = (await jsm.streams.info('EVENTS')).state.last_seq;
    let caughtUp!: () => void;
    const ready = new Promise<void>((r) => (caughtUp = r));
    if (this.view.seq >= last) caughtUp();
    this.done = (async () => {
      for await (const item of readLog(nc, { fromSeq: this.view.seq + 1, follow: true, signal: this.abort.signal })) {
        const problem = item.ok && this.ring ? this.ring.check(item.stored.event, item.stored.bytes!, item.stored.sig) : undefined;
        if (problem && item.ok) {
          refuse(this.view, item.stored, problem);
          console.error(`controller: not folding #${item.stored.seq} ${item.stored.event.type} from ${item.stored.event.src}: ${problem}`);
        } else if (item.ok) reduce(this.view, item.stored);
        else { this.decodeErrors += 1; this.view.seq = Math.max(this.view.seq, item.seq); }
        this.db.data.seq = this.view.seq;
        onEvent?.(this.view);
        this.wake();
        if (this.view.seq >= last) caughtUp();
        if (++this.sinceSnapshot >= SNAPSHOT_EVERY) await this.snapshot();
        else this.scheduleSnapshot();
      }
    })();
    this.done.catch(() => undefined);
    await ready;
  }

  /**
   * One archived event (retention, shared/nats/archive.ts), folded as the stream's would be:
   * before start(), when the stream no longer holds what comes after this view's snapshot.
   */
  foldArchived(s: StoredEvent): void {
    if (s.seq <= this.view.seq) return;
    const problem = this.ring?.check(s.event, s.bytes!, s.sig);
    if (problem) refuse(this.view, s, problem); else reduce(this.view, s);
    this.db.data.seq = this.view.seq;
  }

  /** Writes the snapshot now (before a purge: a restart must not need what was purged). */
  flush(): Promise<void> { return this.snapshot(); }

  /** Resolves once the view includes stream position `seq` (an append the caller made). */
  waitFor(seq: number, timeoutMs = 5000): Promise<void> {
    if (this.view.seq >= seq) return Promise.resolve();
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

  async stop(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.timer);
    await this.snapshot();
  }

  private wake(): void {
    for (const w of [...this.watchers]) w();
    const ready = this.waiters.filter((w) => w.seq <= this.view.seq);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.seq > this.view.seq);
    for (const w of ready) w.resolve();
  }

  private scheduleSnapshot(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.snapshot(); }, SNAPSHOT_IDLE_MS);
    this.timer.unref();
  }

  private async snapshot(): Promise<void> {
    this.sinceSnapshot = 0;
    await this.db.write();
  }
}
