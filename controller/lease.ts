// Leadership among controllers: one key in a JetStream KV bucket whose TTL is the lease's.
// Whoever creates the key (create-if-absent) leads; it renews every TTL/3 by an update that
// names the revision it last wrote (a compare-and-set), so a controller that was replaced
// cannot renew. A standby polls the key (every TTL/10) and creates it once it is gone (nats-server 2.9 drops
// an expired key without telling watchers). The leader stops itself before the server could
// let anyone else in: its lease ends, by its own clock, TTL minus a margin after it *sent* its
// last successful renew, which is before the server's TTL (counted from when it stored that
// renew) runs out.
//
// A lease is not a fence: a paused or partitioned leader may still have writes on their way.
// What it claims (a container's name, a network's) is therefore appended with JetStream's
// expected-last-subject-sequence on the claim's own subject (claim() here, Appender.
// appendExpecting), so two controllers that both believe they lead cannot both take it. So
// is what acts on a container (stop, kill, rm, update, pause, rename): on its own desired
// subject, expecting the last controller event its view holds there (desiredExpect), so a
// controller whose view missed another's desire for that container is refused.
import { randomBytes } from 'node:crypto';
import type { JetStreamManager, KV, NatsConnection } from 'nats';
import { StorageType } from 'nats';
import { CONTROLLER_ROOTS, STREAM, subjects } from '../shared/subjects.js';
import { decodeEvent, hashBytes } from '../shared/codec.js';
import type { ClaimKind, EventData, EventType } from '../shared/events.js';
import type { ClusterView } from '../shared/reducer.js';
import { conflict, type RpcError } from '../shared/rpc.js';

export const LEASE_BUCKET = 'swarmlite-leader';
export const LEASE_KEY = 'leader';
/**
 * 2 s: a standby takes over 1.3-2 s after the leader's last renew reached the server, plus
 * its poll (TTL/10) and the takeover's reads: within issue 11's 3 s. A leader renews every
 * TTL/4 with TTL/4 API timeouts, so three renews can fail (a loaded server, a GC pause) before
 * its own clock ends its lead; a leader slower than that is fenced, not duplicated.
 */
export const DEFAULT_TTL_MS = 2000;

/** What the key holds. `id`: the writing process's own token (a renew of its own, stored though its answer was lost). */
export interface LeaseRecord { host: string; at: number; id?: string }

/** The key as read: absent (never made, expired, deleted) or held by `host` at `revision`. */
export type KeyState = { held: false; revision?: number } | { held: true; host: string; revision: number; id?: string };

/**
 * Whether a renew refused for a wrong last sequence may go on from the key as read: our own
 * record (this process's token) stored after the revision we hold, i.e. an earlier renew of
 * ours stored although its answer timed out. Anything else is another writer's. Pure.
 */
export function ownLostRenew(k: KeyState, host: string, id: string, revision: number): boolean {
  return k.held && k.host === host && k.id === id && k.revision > revision;
}

/**
 * What a controller does with the key's state. Pure. `create`: nobody holds it; `update`: our
 * own record from before a restart of this host's controller (the old process is gone: take
 * it back at once, no need to wait out the TTL); `wait`: another host leads.
 */
export function decide(me: string, k: KeyState): 'create' | 'update' | 'wait' {
  if (!k.held) return 'create';
  return k.host === me ? 'update' : 'wait';
}

/** How long after sending its last good renew a leader still counts itself leader. Pure. */
export function validFor(ttlMs: number): number {
  return ttlMs - Math.max(250, Math.floor(ttlMs / 5));
}

export interface LeaseOptions {
  host: string;
  ttlMs?: number;
  replicas?: number;
  /** false: this controller leads alone, with no lease (one host, no standby) */
  lease?: boolean;
  /** Called once when the lead is lost (renew refused, or no renew in time): stop writing now. */
  onLost: (why: string) => void;
  log?: (line: string) => void;
}

/**
 * The term a new leader announces: above every term the log records (`highest`, the view's:
 * highestTerm), and the lease key's revision when that is more. The revision alone went
 * backwards once: nats-server 2.10.27 restored the lease's bucket with none of its history
 * ("Restored 0 messages"), its revisions began again at 1, and a new leader announced a lower
 * term than an earlier one's; two leaders with one term serve in one queue group (controller/api
 * serveApi), so requests went to a cut-off one. Pure; throws past the schema's bound.
 */
export function nextTerm(revision: number, highest: number): number {
  const term = Math.max(revision, highest + 1);
  if (!Number.isSafeInteger(term)) throw new Error(`no term is left above the log's highest (${highest})`);
  return term;
}

/** The highest term the log's ControllerLeading events announced, as the view folded them (0: none). Pure. */
export const highestTerm = (view: ClusterView): number => Math.max(view.leader?.highest ?? 0, view.leader?.term ?? 0);

export class Lease {
  /**
   * The term: the revision that made us leader, until raise() puts it above the log's highest
   * (before it is announced): growing with every takeover, even across a bucket that lost its
   * history.
   */
  term = 0;
  private revision = 0;
  /** performance.now() until which we lead (0: we do not). */
  private until = 0;
  private renewTimer?: ReturnType<typeof setInterval>;
  private checkTimer?: ReturnType<typeof setInterval>;
  private lost = false;
  private stopped = false;

  private constructor(private kv: KV, private jsm: JetStreamManager, readonly host: string, readonly ttlMs: number, private o: LeaseOptions) {}

  /** Opens (or makes) the lease bucket; the TTL in force is the bucket's (the first controller's). */
  static async open(nc: NatsConnection, o: LeaseOptions): Promise<Lease> {
    const ttl = o.ttlMs ?? DEFAULT_TTL_MS;
    // short API timeouts: a request lost with a cut-off server must not eat the lease's time
    const timeout = Math.max(500, Math.min(2000, Math.floor(ttl / 4)));
    const kv = await nc.jetstream({ timeout }).views.kv(LEASE_BUCKET, { ttl, history: 1, replicas: o.replicas ?? 1, storage: StorageType.File });
    const inForce = (await kv.status()).ttl || ttl;
    return new Lease(kv, await streamApi(nc, timeout), o.host, inForce, o);
  }

  /** Whether we lead now, by our own clock (checked before every write). */
  get leading(): boolean { return !this.lost && performance.now() < this.until; }

  /**
   * The key as the bucket's stream leader holds it (a message get), not through kv.get: that is
   * a direct get, answered by any replica, and after a partition it timed out again and again
   * for tens of seconds (requests drawn to the cut-off server's replica) or could come from a
   * replica that lags.
   */
  async read(): Promise<KeyState> {
    let m;
    try { m = await this.jsm.streams.getMessage(`KV_${LEASE_BUCKET}`, { last_by_subj: `$KV.${LEASE_BUCKET}.${LEASE_KEY}` }); } catch (err) {
      if (/no message found|10037/i.test((err as Error).message)) return { held: false }; // never made, or expired
      throw err;
    }
    const op = m.header?.get('KV-Operation');
    if ((op && op !== 'PUT') || m.data.length === 0) return { held: false, revision: m.seq };
    let r: Partial<LeaseRecord> = {};
    try { r = JSON.parse(new TextDecoder().decode(m.data)) as LeaseRecord; } catch { /* junk: nobody */ }
    return typeof r?.host === 'string' && r.host ? { held: true, host: r.host, revision: m.seq, ...(typeof r.id === 'string' ? { id: r.id } : {}) } : { held: false, revision: m.seq };
  }

  /** This process's token in its records. */
  private readonly id = randomBytes(8).toString('hex');
  private record(): Uint8Array { return new TextEncoder().encode(JSON.stringify({ host: this.host, at: Date.now(), id: this.id } satisfies LeaseRecord)); }

  /** Waits until this controller leads; returns the term. `onWait` hears who leads meanwhile (once per change). */
  async acquire(): Promise<number> {
    const poll = Math.max(50, Math.floor(this.ttlMs / 10));
    let said = '';
    for (;;) {
      if (this.stopped) throw new Error('lease stopped');
      let k: KeyState | undefined;
      try { k = await this.read(); } catch (err) { this.o.log?.(`lease: reading ${LEASE_BUCKET}: ${(err as Error).message}`); }
      if (k) {
        const what = decide(this.host, k);
        const sent = performance.now();
        try {
          if (what === 'create') this.revision = await this.kv.create(LEASE_KEY, this.record());
          else if (what === 'update' && k.held) this.revision = await this.kv.update(LEASE_KEY, this.record(), k.revision);
          if (what !== 'wait') {
            this.term = this.revision;
            this.until = sent + validFor(this.ttlMs);
            this.start();
            return this.term;
          }
        } catch { /* another controller was first: wait */ }
        // a replica that lags may say nobody holds it; the create above is what decides
        if (k.held && k.host !== said) { said = k.host; this.o.log?.(`lease: standby (${k.host} leads)`); }
      }
      await new Promise((r) => setTimeout(r, poll));
    }
  }

  /** performance.now() when the last renew that succeeded was sent */
  private renewedSent = 0;
  private renewing?: Promise<void>;

  /** One renew (a compare-and-set on our revision); one at a time. */
  private renew(): Promise<void> {
    if (this.renewing || this.lost) return this.renewing ?? Promise.resolve();
    const sent = performance.now();
    this.renewing = this.kv.update(LEASE_KEY, this.record(), this.revision).then((rev) => {
      if (this.lost) return;
      this.revision = rev;
      this.until = sent + validFor(this.ttlMs);
      this.renewedSent = sent;
    }, async (err: Error) => {
      if (!/wrong last sequence/i.test(err.message)) return;
      // the key moved on without us: someone else leads (or an operator took it away), unless
      // what moved it is a renew of ours whose answer was lost (a 500 ms timeout on a loaded
      // server): that ended terms for nothing, each restart a standby start and a new silence
      // for every node. Its revision is taken, not its time: only the next renew extends the lead.
      const k = await this.read().catch(() => undefined);
      if (this.lost) return;
      if (k?.held && ownLostRenew(k, this.host, this.id, this.revision)) {
        this.o.log?.(`lease: a renew whose answer was lost was stored (#${k.revision}): going on from it`);
        this.revision = k.revision;
        return;
      }
      this.lose(`the lease was taken (${err.message})`);
    }).finally(() => { this.renewing = undefined; });
    return this.renewing;
  }

  /**
   * Whether this controller still leads as of now, proven by a renew sent after this call
   * succeeding (within the lease's validity). A verdict that only a leader cut off from the
   * others would reach (every other node silent) waits for it: a leader that cannot renew
   * cannot tell a silent node from its own partition, and what it appends while cut off may
   * still reach the stream after the partition heals, behind the next leader's events (a fork).
   */
  async confirm(): Promise<boolean> {
    const asked = performance.now();
    const deadline = asked + validFor(this.ttlMs);
    while (this.leading && performance.now() < deadline) {
      if (this.renewedSent >= asked) return true;
      await (this.renewing ?? this.renew());
      if (this.renewedSent >= asked) return this.leading;
      if (this.renewedSent < asked) await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  private start(): void {
    const every = Math.max(50, Math.floor(this.ttlMs / 4));
    this.renewedSent = performance.now();
    this.renewTimer = setInterval(() => { void this.renew(); }, every);
    // our own clock ends the lead even when the server cannot be reached to say so
    this.checkTimer = setInterval(() => {
      if (!this.lost && performance.now() >= this.until) this.lose(`no renew for ${validFor(this.ttlMs)} ms (lease ${this.ttlMs} ms)`);
    }, Math.max(20, Math.floor(this.ttlMs / 20)));
  }

  /** Puts the term above `highest` (the log's, highestTerm) once the view has folded it; returns it. */
  raise(highest: number): number { return (this.term = nextTerm(this.term, highest)); }

  /** Gives the lead up (another controller proved it writes too, or a stop). */
  lose(why: string): void {
    if (this.lost) return;
    this.lost = true;
    this.until = 0;
    this.clear();
    this.o.onLost(why);
  }

  private clear(): void {
    if (this.renewTimer) clearInterval(this.renewTimer);
    if (this.checkTimer) clearInterval(this.checkTimer);
    this.renewTimer = this.checkTimer = undefined;
  }

  /** A clean stop: the key goes (if still ours), so a standby takes over at its next poll, not after the TTL. */
  async release(): Promise<void> {
    this.stopped = true;
    const had = this.until > 0 && !this.lost;
    this.lost = true;
    this.until = 0;
    this.clear();
    if (had) await this.kv.delete(LEASE_KEY, { previousSeq: this.revision }).catch(() => undefined);
  }
}

/**
 * A lease that is always held: `SWARMLITE_TEST_NO_LEASE=1`, for the test that runs two
 * controllers which both believe they lead (the claims' fencing must still hold).
 */
export class NoLease {
  term = Date.now();
  readonly ttlMs = 0;
  constructor(readonly host: string) {}
  raise(highest: number): number { return (this.term = nextTerm(this.term, highest)); }
  get leading(): boolean { return true; }
  async confirm(): Promise<boolean> { return true; }
  async acquire(): Promise<number> { return this.term; }
  lose(_why: string): void { /* a test's two leaders go on */ }
  async release(): Promise<void> { /* nothing held */ }
}

export type Leadership = Lease | NoLease;

/** The key of a claim in the view (ClusterView.claims). */
export const claimKey = (kind: ClaimKind, key: string): string => `${kind}/${key}`;

/**
 * How long a claim whose entity never appeared in the view holds its name: the claimer died
 * between its claim and the event that uses the name. Well above a claim-to-request gap.
 */
export const CLAIM_GRACE_MS = 30_000;

/**
 * The position a claim of `kind/key` must find as its subject's last: the view's last Claimed
 * for it, or 0 when none is left in the stream (never claimed, or purged with what the archive
 * sealed: `firstSeq` is the stream's first position). Pure.
 */
export function expectedFor(view: ClusterView, kind: ClaimKind, key: string, firstSeq: number): number {
  const at = view.claims?.[claimKey(kind, key)]?.seq;
  return at !== undefined && at >= firstSeq ? at : 0;
}

/**
 * The entity of a claim of `kind/key` still on its way: claimed, but the event that uses the
 * name (the container's request, the network's) is not in the view yet, so the view's own
 * name check cannot see it. `known`: whether the view has that entity. Pure.
 */
export function pendingClaim(view: ClusterView, kind: ClaimKind, key: string, known: (entity: string) => boolean, now: number): string | undefined {
  const c = view.claims?.[claimKey(kind, key)];
  // used: the name was taken by its claimer's request (a `run --rm` container may be gone already)
  if (!c || c.used || known(c.entity) || now - c.ts > CLAIM_GRACE_MS) return undefined;
  return c.entity;
}

/**
 * The position a fenced desire for container `c` (stop, kill, rm, update, pause, rename) must
 * find as the last on its desired subject: the view's last controller event there, or 0 when
 * the stream holds none there any more (purged with what the archive sealed). undefined: the
 * view does not know (a snapshot from before dseq): the desire goes unfenced. Pure.
 */
export function desiredExpect(c: { dseq?: number }, firstSeq: number): number | undefined {
  if (c.dseq === undefined) return undefined;
  return c.dseq >= firstSeq ? c.dseq : 0;
}

/** What claim() needs of the controller: its view and a writer with expected-sequence appends. */
export interface ClaimPort {
  view(): ClusterView;
  firstSeq(): number;
  /** whether the view has the entity a claim names (a container id, a network's entity) */
  known(kind: ClaimKind, entity: string): boolean;
  appendExpecting<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T], expect: number): Promise<{ seq: number; id: string }>;
}

/**
 * Appends the Claimed event of `kind/key` for `entity`, fenced on the claim's subject; returns
 * its position. A name another request claimed and has not used yet is a conflict.
 */
export async function claim(port: ClaimPort, kind: ClaimKind, key: string, entity: string): Promise<number> {
  const view = port.view();
  const pending = pendingClaim(view, kind, key, (e) => port.known(kind, e), Date.now());
  if (pending !== undefined && pending !== entity) throw conflict(`the ${kind} name "${key}" is being taken by another request`);
  const expect = expectedFor(view, kind, key, port.firstSeq());
  // a test hook: a controller slow between its decision and its write (its view goes stale)
  const slow = Number(process.env.SWARMLITE_TEST_CLAIM_DELAY_MS) || 0;
  if (slow > 0) await new Promise((r) => setTimeout(r, slow));
  const { seq } = await port.appendExpecting(subjects.claim(kind, key), 'Claimed', entity, { kind, key }, expect);
  return seq;
}

/**
 * The controller's way to the lead: waits as a standby until it holds the lease (or at once
 * with SWARMLITE_TEST_NO_LEASE=1), then until its view has folded the whole log, so the chain
 * head it continues and the claims it checks are the last leader's. `onLost` must stop every
 * write at once (the controller exits: its supervisor starts it again as a standby).
 */
export async function becomeLeader(nc: NatsConnection, o: LeaseOptions & { caughtUp: () => Promise<void>; took?: (step: string) => void }): Promise<Leadership> {
  const alone = process.env.SWARMLITE_TEST_NO_LEASE === '1' || o.lease === false;
  const lead: Leadership = alone ? new NoLease(o.host) : await Lease.open(nc, o);
  const t0 = Date.now();
  await lead.acquire();
  o.took?.('lease');
  await o.caughtUp();
  o.took?.('caught-up');
  // the term is the revision here; main.ts raises it above the log's before announcing it
  o.log?.(`lease: ${o.host} leads, lease revision ${lead.term}${lead instanceof NoLease ? ` (no lease: ${o.lease === false ? 'one controller, no standby' : 'SWARMLITE_TEST_NO_LEASE'})` : ''} after ${Date.now() - t0} ms`);
  return lead;
}

/**
 * A JetStream manager for what one stream's leader answers (its info, a message get, a
 * step-down), made without nats.js's first account-info request: only the JetStream meta
 * leader answers that, and when the cut host held the meta leader, a takeover that made a
 * manager per read waited out the meta group's election (4-9 s in nats-server 2.9) though the
 * log's stream had its leader all along (test/bench/failover.ts: head read 6.4 s after the cut,
 * the lease taken at 2.1 s). Nothing a takeover reads or writes needs the meta leader.
 */
export function streamApi(nc: NatsConnection, timeout?: number): Promise<JetStreamManager> {
  return nc.jetstreamManager({ ...(timeout ? { timeout } : {}), checkAPI: false });
}

/** The position of the last message on `subject` (0: none): what a fenced append there expects. */
export async function lastSeqOn(nc: NatsConnection, stream: string, subject: string): Promise<number> {
  const jsm = await streamApi(nc);
  try { return (await jsm.streams.getMessage(stream, { last_by_subj: subject })).seq; } catch (err) {
    if (/no message found|10037|not found/i.test((err as Error).message)) return 0;
    throw err;
  }
}

/** Whether an append failed because another writer had claimed its subject first. */
export const isFenced = (err: unknown): boolean => (err as { fenced?: boolean } | undefined)?.fenced === true;

/** Where the stream leader's copy ends on a fenced append's subject, when its refusal said so. */
export const fencedAt = (err: unknown): number | undefined => {
  const a = (err as { actual?: unknown } | undefined)?.actual;
  return typeof a === 'number' && Number.isSafeInteger(a) && a >= 0 ? a : undefined;
};

/**
 * What a refused fenced append on `subject` proves. Pure. The stream leader's copy ending past
 * the view's `expect` (or where, unknown) is another writer's message: this controller does not
 * lead alone and steps down. Ending *before* it is no writer's: the view folded a message there
 * that the leader's copy holds elsewhere or not at all: the stream's copies disagree (nats-server
 * 2.9.10 left a replica one event short and every later position shifted: led from it, every
 * controller whose view read another copy was refused on its first desire, stepped down, and the
 * next did the same, round after round, with no controller answering) or it was purged under the
 * view. Stepping down cannot help there: the write is refused (nothing appended), the lead stays.
 */
export function fenceVerdict(subject: string, expect: number, actual: number | undefined): { depose: boolean; why: string } {
  if (actual !== undefined && actual < expect) {
    return { depose: false, why: `the stream's last message on ${subject} is #${actual}, before this view's #${expect}: its copies disagree or it was purged under the view (no other writer's)` };
  }
  return { depose: true, why: `another controller wrote on ${subject}${actual !== undefined ? ` (#${actual}, after this view's #${expect})` : ''}` };
}

/** What a controller says of a refused fenced append: its answer, and what it logs or why it steps down. */
export interface FenceAnswer { error: RpcError; log?: string; depose?: string }

/**
 * What a controller does with a fenced append's refusal `err` on `subject` (fenceVerdict): a
 * stream whose copies disagree keeps the lead (`log`, and `disagree` as the answer); another
 * writer's message, or one whose position is unknown, deposes it (`depose`, `taken` as the
 * answer). `what` names the write in the log line. Pure.
 */
export function fenceAnswer(err: unknown, subject: string, m: { what: string; disagree: string; taken: string }): FenceAnswer {
  const expect = (err as { expect?: unknown } | undefined)?.expect;
  const v = typeof expect === 'number' ? fenceVerdict(subject, expect, fencedAt(err)) : { depose: true, why: `another controller wrote on ${subject}` };
  if (!v.depose) return { error: conflict(m.disagree), log: `${m.what} refused: ${v.why}; still leading` };
  return { error: conflict(m.taken), depose: v.why };
}

/**
 * Every subject the controller writes on (shared/audit.ts writerOf): its chain's last event is
 * the latest of their last messages.
 */
export const CONTROLLER_SUBJECTS = [subjects.controller, ...CONTROLLER_ROOTS.filter((r) => r !== 'controller').map((r) => `ev.${r}.>`), subjects.keys('controller')];

/** A source's chain head as the stream holds it: its last event's position, srcSeq and hash. */
export interface StreamHead { seq: number; srcSeq: number; hash: string }

/**
 * The controller's last event in the stream (undefined: none), from the stream leader: a
 * message get is answered by the leader only, while a stream info may come from a replica
 * that lags when the group has no leader (nats-server 2.9 answers it then), and a consumer
 * reads its own server's replica. nats-server 2.9 takes a wildcard in last_by_subj.
 */
export async function controllerHeadInStream(nc: NatsConnection): Promise<StreamHead | undefined> {
  const jsm = await streamApi(nc, 2000);
  let best: StreamHead | undefined;
  // all at once: one round trip to the stream leader, not one per subject, at takeover
  const last = await Promise.all(CONTROLLER_SUBJECTS.map((subj) => jsm.streams.getMessage(STREAM, { last_by_subj: subj }).catch((err: Error) => {
    if (/no message found|10037/i.test(err.message)) return undefined;
    throw err;
  })));
  for (const m of last.filter((x) => x !== undefined).sort((a, b) => b.seq - a.seq)) {
    if (best && m.seq <= best.seq) continue;
    let e;
    try { e = decodeEvent(m.data); } catch { continue; } // not an event: the fold skips it too
    if (e.src === 'controller') best = { seq: m.seq, srcSeq: e.srcSeq, hash: hashBytes(m.data) };
  }
  return best;
}

/** What takeOverHead needs: the stream's head, and the view that follows the stream. */
export interface HeadPort {
  streamHead(): Promise<StreamHead | undefined>;
  /** the view's head of the controller chain (view.sources.controller) */
  viewHead(): { srcSeq: number; hash: string } | undefined;
  /** resolves once the view has folded stream position `seq` (rejects after its own bound) */
  waitFor(seq: number): Promise<void>;
  /** whether the view refused position `seq` (a forged event): the chain goes on from the view's head then */
  refused(seq: number): boolean;
  log?: (line: string) => void;
}

/**
 * The head a new leader continues the controller chain from: the stream's last controller
 * event, once the view has folded it. Folding "up to the stream's last sequence" is not enough:
 * that sequence came from whoever answered (a lagging replica right after an election), and a
 * view that stopped short of the old leader's last events continued the chain from an older
 * head (a fork: controller#7 written after controller#11). Reads the head from the stream
 * leader, waits for the view to pass it, checks the two agree, and reads again on any doubt,
 * within `ms`; then throws (the controller exits and starts again as a standby: no write was
 * made). Never writes.
 */
export async function takeOverHead(port: HeadPort, ms = 20_000): Promise<{ srcSeq: number; hash: string } | undefined> {
  const deadline = Date.now() + ms;
  let why = '';
  for (let k = 0; Date.now() < deadline; k++) {
    if (k > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 100 * k)));
    let head: StreamHead | undefined;
    try { head = await port.streamHead(); } catch (err) { why = `reading the stream's head: ${(err as Error).message}`; port.log?.(`lease: ${why}; again`); continue; }
    const mine = port.viewHead();
    // none in the stream: a new log (or one purged or made again under the view, which the
    // audit reports): nothing to fork from
    if (!head) return mine;
    try { await port.waitFor(head.seq); } catch (err) { why = `the view did not reach #${head.seq}: ${(err as Error).message}`; port.log?.(`lease: ${why}; again`); continue; }
    const v = port.viewHead();
    if (v && v.srcSeq === head.srcSeq && v.hash === head.hash) return v;
    if (port.refused(head.seq) && v) return v;
    why = `the view's head controller#${v?.srcSeq ?? 0} is not the stream's last controller event (controller#${head.srcSeq} at #${head.seq})`;
    port.log?.(`lease: ${why}; reading again`);
  }
  throw new Error(`no agreed controller chain head within ${ms} ms: ${why}`);
}

/**
 * The streams kept led from other hosts than the leader's: the two a takeover waits for. The
 * lease's (a standby takes the key through its leader) and the log's: a new leader reads its end
 * and the controller chain's head from the stream leader and announces its term there before it
 * serves. Led from the cut host, the log's stream cost every partition of the leader's host an
 * election (4-9 s in nats-server 2.9, its raft's fixed timeouts): the API answered 6.9 s after
 * the cut where the lease had moved in 1.7 s (test/bench/failover.ts). Both are written only
 * through writers that try again on 503 and on a timeout (the controller's whileNoLeader,
 * shared/nats/log.ts Appender's same-msg-id retries), so a step-down's moment without a leader
 * delays a write, never fails it. An agent's start reads the log's stream without retries,
 * though (a 503 ended an agent starting as its fleet came up): the log's is first asked 30 s
 * into a term, past the agents' start that comes with a cluster's first controller. Not the
 * images' object store: tsctl's image import writes it directly, and a step-down right after a
 * takeover failed that with 503. `fromMs`: how long into a term a stream is first looked at.
 */
export const LEADER_STREAMS: readonly { stream: string; fromMs: number }[] = [{ stream: `KV_${LEASE_BUCKET}`, fromMs: 5000 }, { stream: STREAM, fromMs: 30_000 }];

/**
 * f(), tried again every `everyMs` while the stream has no leader (an election after a server
 * went away: a timeout, no responders, a 503), for up to `ms`. A fixed interval, not a growing
 * back-off: a takeover waiting out an election goes on within `everyMs` of its end (with
 * withRetry's 100 ms x k it went on up to 1.5 s after). Only for reads: an append must not be
 * sent again after a timeout (whileNoLeader).
 */
export async function whileElecting<T>(f: () => Promise<T>, ms = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try { return await f(); } catch (err) {
      if (Date.now() + everyMs > deadline || !/TIMEOUT|no responders|503/i.test((err as Error).message)) throw err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Which of `due` to ask to step down, given each stream's raft leader (server name, '' or
 * undefined while it elects) and `mine` (this controller's host's server names). Pure.
 * - away: any led from this host. When the leader's host dies or is cut off, a stream it also
 *   led has no leader until the others elect one (nats-server 2.9: 4-9 s), and no standby can
 *   take the lease (the lease's stream) or serve (the log's) until then.
 * - together: once none is, every other one led from another server than the log's, so all
 *   are led from one server. Led from two (each step-down picks a peer at random), the loss of
 *   either non-leader host's server cost a write 4-9 s: the lease's election ends the term
 *   (no renew within its TTL) and the next one waits for it (test/bench/fleet-loss.ts
 *   server-follower, 5.7 s and 4.3 s). Led from one, the third server's loss costs nothing.
 * A step-down lands on the controller's host half the time: the next look moves it away again.
 */
export function leaderMoves(leaders: Readonly<Record<string, string | undefined>>, mine: readonly string[], due: readonly string[]): { away: string[]; together: string[] } {
  const away = due.filter((s) => leaders[s] && mine.includes(leaders[s]!));
  const log = leaders[STREAM];
  if (away.length || !log || mine.includes(log)) return { away, together: [] };
  return { away, together: due.filter((s) => s !== STREAM && leaders[s] && leaders[s] !== log) };
}

/**
 * Asks the streams leaderMoves names to step down, so a raft election elsewhere picks another.
 * Placement only: safety never depends on it. Returns the streams asked to step down.
 */
export async function keepLeadersAway(nc: NatsConnection, mine: string[], streams: readonly string[]): Promise<{ moved: string[]; joined: string[]; failed: string[] }> {
  const jsm = await streamApi(nc, 2000);
  const leaders: Record<string, string | undefined> = {};
  // the log's leader is looked at even before its own step-downs are due: the others join it
  for (const s of new Set([...streams, STREAM])) leaders[s] = await jsm.streams.info(s).then((i) => i.cluster?.leader, () => undefined);
  const { away, together } = leaderMoves(leaders, mine, streams);
  const moved: string[] = [], joined: string[] = [], failed: string[] = [];
  for (const s of [...away, ...together]) {
    // again at the next look; said, since a refusal (a grant missing) would otherwise go unseen
    try {
      const r = await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${s}`, new Uint8Array(0), { timeout: 2000 });
      let error: { description?: string } | undefined;
      try { error = (JSON.parse(new TextDecoder().decode(r.data)) as { error?: { description?: string } }).error; } catch { /* not JSON: taken as done */ }
      if (error) failed.push(`${s}: ${error.description ?? 'refused'}`); else (away.includes(s) ? moved : joined).push(s);
    } catch (err) { failed.push(`${s}: ${(err as Error).message}`); }
  }
  return { moved, joined, failed };
}
