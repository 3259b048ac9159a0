// Which nodes are alive: agents heartbeat on core NATS (hb.<node>, never stored: a stream
// would grow by one event a second per node for ever), the controller remembers when it last
// heard each one and appends NodeDown after a silence, NodeReady when it hears it again.
// decide() is the pure rule; Membership is the thin part with the clock and the subscription.
import type { NatsConnection, Subscription } from 'nats';
import { own, type ClusterView } from '../shared/reducer.js';
import { subjects } from '../shared/subjects.js';
import { TOKEN_RE } from '../shared/ids.js';

export const DEFAULT_SILENCE_MS = 3000;

export interface Verdicts { down: { node: string; lastSeen: number }[]; ready: { node: string; downMs?: number }[] }

/**
 * What to append now. `seen`: when each node was last heard (ms); a node never heard counts
 * from `since` (the controller's start: a fresh controller gives every node one silence).
 * `said`: what this controller appended last per node and the view may not show yet, so a
 * verdict is appended once, not at every tick until the fold catches up.
 */
export function decide(view: ClusterView, seen: ReadonlyMap<string, number>, said: ReadonlyMap<string, Said>, now: number, silenceMs: number, since: number): Verdicts {
  const out: Verdicts = { down: [], ready: [] };
  for (const n of Object.values(view.nodes)) {
    const mine = said.get(n.id);
    const state = mine?.state ?? n.state ?? 'ready';
    const changed = mine?.at ?? n.stateSince ?? 0;
    const last = seen.get(n.id);
    // silence counts from when this controller could hear at all (its start, its last reconnect)
    const heard = Math.max(last ?? 0, since);
    if (state !== 'down' && now - heard > silenceMs) out.down.push({ node: n.id, lastSeen: heard });
    // a beat after it went down, and recent
    else if (state === 'down' && last !== undefined && last > changed && now - last <= silenceMs) {
      out.ready.push({ node: n.id, ...(changed ? { downMs: Math.max(0, now - changed) } : {}) });
    }
  }
  return out;
}

export interface Said { state: 'down' | 'ready'; at: number }

/** When the first silence of a node not down ends (decide's NodeDown is due just after it); undefined: none. Pure. */
export function nextSilence(view: ClusterView, seen: ReadonlyMap<string, number>, said: ReadonlyMap<string, Said>, silenceMs: number, since: number): number | undefined {
  let first: number | undefined;
  for (const n of Object.values(view.nodes)) {
    if ((said.get(n.id)?.state ?? n.state ?? 'ready') === 'down') continue;
    const at = Math.max(seen.get(n.id) ?? 0, since) + silenceMs;
    if (first === undefined || at < first) first = at;
  }
  return first;
}

type Append = (subject: string, type: 'NodeDown' | 'NodeReady', entity: string, data: { silenceMs: number; lastSeen?: number } | { downMs?: number }) => Promise<unknown>;

export class Membership {
  private seen = new Map<string, number>();
  private said = new Map<string, Said>();
  /** since when this controller hears heartbeats: its start, then its connection's last reconnect */
  private since = Date.now();
  private sub?: Subscription;
  private timer?: NodeJS.Timeout;
  private busy = false;
  private warned = 0;
  /** when the last tick began: a long gap says ticks were held up (a slow append before) */
  private ticked = Date.now();

  /**
   * `confirm`: whether this controller still leads, proven now (Lease.confirm): asked before
   * any NodeDown, since a leader cut off from the others hears every node fall silent.
   */
  /** `changed`: told after a verdict is appended (the service reconciler moves the node's tasks at once, not at its next tick). */
  constructor(private o: { view: () => ClusterView; append: Append; silenceMs: number; confirm?: () => Promise<boolean>; changed?: (appended: unknown) => void }) {}

  /**
   * Hears heartbeats without acting on them: a standby listens from its start, so once it leads
   * it knows which nodes fell silent before (a cut that also took the old leader) at once.
   */
  listen(nc: NatsConnection): void {
    if (this.sub) return;
    // beats missed while our own connection was down say nothing of the nodes: a standby whose
    // server was cut off took over and appended NodeDown for every node
    void (async () => { for await (const st of nc.status()) if (st.type === 'reconnect') this.since = Date.now(); })().catch(() => undefined);
    // the subject names the node, and only that node's identity may publish on it
    this.sub = nc.subscribe(subjects.heartbeats, {
      callback: (err, m) => {
        if (err) return;
        const node = m.subject.slice(subjects.heartbeat('').length);
        if (!TOKEN_RE.test(node)) return;
        this.seen.set(node, Date.now());
        // coming back is news at once, not at the next tick
        if ((this.said.get(node)?.state ?? own(this.o.view().nodes, node)?.state) === 'down') void this.tick();
      },
    });
  }

  /**
   * Why `node` counts as silent now, short of NodeDown: not heard for half the silence (at
   * least 1.5 heartbeats), so placement passes it over while it can (controller/api/containers.ts).
   */
  silent(node: string, now = Date.now()): string | undefined {
    const quiet = now - Math.max(this.seen.get(node) ?? 0, this.since);
    return quiet > Math.min(this.o.silenceMs, Math.max(1500, this.o.silenceMs / 2)) ? `node ${node} not heard from for ${quiet} ms` : undefined;
  }

  start(nc: NatsConnection): void {
    this.listen(nc);
    // every 100 ms (was 500: a cut right after a beat showed NodeDown 3.15 s after it with the
    // default 3 s silence), and a silence ending before the next one gets a timer of its own
    // (nextSilence): a tick is a walk over the nodes' last beats, microseconds for a thousand,
    // and appends only on a verdict.
    this.every = Math.max(50, Math.min(100, this.o.silenceMs / 10));
    this.timer = setInterval(() => void this.tick(), this.every);
    this.timer.unref();
  }

  private every = 0;
  private exact?: NodeJS.Timeout;

  /**
   * A tick when the first silence ends, if that is before the next regular one: a beat sent
   * just before a cut put the NodeDown up to a tick (100 ms) past the silence, past issue 11's
   * 3 s with the default silence (3.10 s in test/bench/fleet-loss.ts).
   */
  private aim(view: ClusterView, now: number): void {
    if (!this.every || this.exact) return;
    const at = nextSilence(view, this.seen, this.said, this.o.silenceMs, this.since);
    if (at === undefined || at - now >= this.every) return;
    this.exact = setTimeout(() => { this.exact = undefined; void this.tick(); }, Math.max(0, at - now + 1));
    this.exact.unref();
  }

  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const view = this.o.view();
      // forget what the fold now shows
      for (const [n, s] of this.said) { const x = own(view.nodes, n); if (!x || (x.state ?? 'ready') === s.state) this.said.delete(n); }
      const now = Date.now();
      const gap = now - this.ticked;
      this.ticked = now;
      const v = decide(view, this.seen, this.said, now, this.o.silenceMs, this.since);
      const asked = Date.now();
      if (v.down.length && this.o.confirm && !(await this.o.confirm())) {
        // said once a second at most: the tick comes ten times a second
        if (now - this.warned >= 1000) { this.warned = now; console.error(`controller: ${v.down.length} node(s) silent, but the lease could not be renewed: no NodeDown (this controller may be the one cut off)`); }
        v.down = [];
      }
      const confirmed = Date.now();
      for (const d of v.down) {
        this.said.set(d.node, { state: 'down', at: now });
        await this.o.append(subjects.cluster(d.node), 'NodeDown', d.node, { silenceMs: this.o.silenceMs, lastSeen: d.lastSeen })
          .then((r) => {
            // where the time went when a NodeDown comes late: the silence, the lease's proof, the append
            console.error(`controller: ${new Date(now).toISOString()} NodeDown ${d.node}: heard ${now - d.lastSeen} ms ago (${this.seen.has(d.node) ? `last beat ${now - this.seen.get(d.node)!} ms ago` : 'never'}, hearing for ${now - this.since} ms), lease confirmed in ${confirmed - asked} ms, appended in ${Date.now() - confirmed} ms, ${gap} ms after the tick before`);
            this.o.changed?.(r);
          }, (err) => { this.said.delete(d.node); console.error(`controller: NodeDown ${d.node}: ${(err as Error).message}`); });
      }
      for (const r of v.ready) {
        this.said.set(r.node, { state: 'ready', at: now });
        await this.o.append(subjects.cluster(r.node), 'NodeReady', r.node, r.downMs !== undefined ? { downMs: r.downMs } : {})
          .catch((err) => { this.said.delete(r.node); console.error(`controller: NodeReady ${r.node}: ${(err as Error).message}`); });
      }
      this.aim(this.o.view(), Date.now());
    } finally { this.busy = false; }
  }

  stop(): void {
    this.sub?.unsubscribe();
    if (this.timer) clearInterval(this.timer);
    if (this.exact) clearTimeout(this.exact);
  }
}
