// The agent's pipeline: desired events and observed exits ▸ group by entity ▸ one at a time
// per entity (different entities in parallel) ▸ triage ▸ act ▸ record the outcome (checkpoint,
// state events) ▸ ack. Nothing here throws past an item: a bad or impossible event becomes
// an EventRejected in the log and is acked, so it never blocks the ones behind it.
import { Subject, merge, from, groupBy, mergeMap, concatMap, tap, switchMap, timer, filter, type Observable, type Subscription } from 'rxjs';
import type { JsMsg } from 'nats';
import { subjects } from '../../shared/subjects.js';
import type { Appender } from '../../shared/nats/log.js';
import type { ExitStatus } from '../runtime/runtime.js';
import type { LogStreamer } from '../logs.js';
import type { Checkpoint } from './checkpoint.js';
import { classify, settle, subjectToken, type Classified, type SignatureCheck } from './triage.js';
import { SIG_HEADER } from '../../shared/signing.js';
import { volumesOf } from '../../shared/volumes.js';
import * as actions from './actions.js';
import type { Outcome } from './outcome.js';
import { newId } from '../../shared/codec.js';
import { failpoint } from '../failpoints.js';

const GROUP_IDLE_MS = 60_000;
/** Not an entity (entities start with [a-z0-9]). */
const REJECT_LANE = '#rejected';
const PRUNE_EVERY = 500;

export type Input =
  | { kind: 'msg'; msg: JsMsg; receivedAt: number; c: Classified }
  | { kind: 'exit'; id: string; exit: ExitStatus; whileAway?: boolean }
  /** a restart policy's start whose back-off has passed */
  | { kind: 'restart'; id: string };

export interface ReconcilerParts {
  node: string;
  /** The durable consumer's ack floor: nothing at or below it is delivered again. */
  ackFloor?: () => Promise<number>;
  /** The stream's first sequence: events below it are gone, so a tombstone below it can go. */
  firstSeq?: () => Promise<number>;
  log: Appender;
  checkpoint: Checkpoint;
  logs: Pick<LogStreamer, 'follow' | 'finish'>;
  host: actions.HostActions & { waitExit(id: string, signal?: AbortSignal): Promise<ExitStatus> };
  networks: actions.ActionContext['networks'];
  /** Named volumes; `hold` keeps a creating container's volumes from a concurrent removal until its record is written. */
  volumes?: actions.ActionContext['volumes'] & { hold(names: string[]): () => void };
  /** Signature check of desired events (the controller's registered key); none in unit tests. */
  signed?: SignatureCheck;
}

export class Reconciler {
  private exits = new Subject<Input>();
  private watching = new Map<string, AbortController>();
  /** restart policies' timers, by container: one each (a later one replaces it) */
  private restarts = new Map<string, NodeJS.Timeout>();
  private sub?: Subscription;
  private early: Input[] = []; // exits found before the pipeline runs (at adoption)
  private started = false;

  constructor(private p: ReconcilerParts) {}

  start(messages: Observable<JsMsg>): void {
    const msgs = messages.pipe(mergeMap((msg) => from([{
      kind: 'msg' as const, msg, receivedAt: performance.timeOrigin + performance.now(),
      c: classify({ subject: msg.subject, seq: msg.seq, data: msg.data, sig: msg.headers?.get(SIG_HEADER) || undefined }, this.p.signed),
    }])));
    // A group per entity keeps its events in order. A group closes after a quiet minute with
    // nothing in flight, so a long-lived agent does not keep one per container it ever saw;
    // closing only when idle means two groups of one key never overlap.
    const inFlight = new Map<string, number>();
    const count = (k: string, d: number) => { const n = (inFlight.get(k) ?? 0) + d; if (n) inFlight.set(k, n); else inFlight.delete(k); };
    // refused messages share one lane: junk on many subjects must not open a group each
    const key = (i: Input) => (i.kind !== 'msg' ? i.id : i.c.kind === 'reject' ? REJECT_LANE : i.c.stored.event.entity);
    this.sub = merge(msgs, this.exits).pipe(
      tap((i) => count(key(i), 1)),
      groupBy(key, { duration: (g) => g.pipe(switchMap(() => timer(GROUP_IDLE_MS)), filter(() => !inFlight.has(g.key))) }),
      mergeMap((group) => group.pipe(concatMap((i) => from(this.apply(i).finally(() => count(group.key, -1)))))),
    ).subscribe();
    this.started = true;
    for (const i of this.early.splice(0)) this.exits.next(i);
  }

  stop(): void {
    this.sub?.unsubscribe();
    for (const ac of this.watching.values()) ac.abort();
    this.watching.clear();
    for (const t of this.restarts.values()) clearTimeout(t);
    this.restarts.clear();
  }

  /**
   * Starts the exited container `id` again at `at` (ms since epoch), through the pipeline (in
   * order with its other events). Its time is in the checkpoint too: an agent started again
   * calls this for it, so the policy carries on.
   */
  scheduleRestart(id: string, at: number): void {
    clearTimeout(this.restarts.get(id));
    const t = setTimeout(() => { this.restarts.delete(id); this.push({ kind: 'restart', id }); }, Math.max(0, at - Date.now()));
    this.restarts.set(id, t);
  }

  /** Watches a running container for its exit and feeds that back into the pipeline. */
  watch(id: string): void {
    if (this.watching.has(id)) return;
    const ac = new AbortController();
    this.watching.set(id, ac);
    this.p.host.waitExit(id, ac.signal).then(
      (exit) => { this.watching.delete(id); this.push({ kind: 'exit', id, exit }); },
      () => { this.watching.delete(id); },
    );
  }

  /** An exit that happened while the agent was away (found at start). */
  reportExit(id: string, exit: ExitStatus): void { this.push({ kind: 'exit', id, exit, whileAway: true }); }

  private push(i: Input): void {
    if (this.started) this.exits.next(i);
    else this.early.push(i);
  }

  private sincePrune = PRUNE_EVERY - 1;
  private pruning = false;

  /**
   * Every so many messages (and at the first), forget refused positions the consumer will never
   * deliver again and tombstones of containers whose events the stream no longer holds.
   */
  private maybePrune(): void {
    if (++this.sincePrune < PRUNE_EVERY || this.pruning) return;
    this.sincePrune = 0;
    this.pruning = true;
    const { ackFloor, firstSeq, checkpoint } = this.p;
    Promise.all([
      ackFloor?.().then((floor) => { checkpoint.pruneRejected(floor); }, () => undefined),
      firstSeq?.().then((first) => { checkpoint.pruneRemoved(first); }, () => undefined),
    ]).finally(() => { this.pruning = false; });
  }

  private context(msg?: JsMsg): actions.ActionContext {
    return {
      node: this.p.node, host: this.p.host, networks: this.p.networks, ...(this.p.volumes ? { volumes: this.p.volumes } : {}),
      record: (id) => this.p.checkpoint.get(id),
      progress: () => msg?.working(),
      unwatch: (id) => { this.watching.get(id)?.abort(); this.watching.delete(id); },
    };
  }

  private async apply(i: Input): Promise<void> {
    try {
      if (i.kind === 'exit') return await this.record(actions.exited(this.context(), i.id, i.exit, i.whileAway === true));
      if (i.kind === 'restart') return await this.record(await actions.restartDue(this.context(), i.id));
      const { msg } = i;
      const t = settle(i.c, msg.seq, this.p.checkpoint);
      if (t.kind !== 'replay') {
        // a volume rm that comes while a container naming it is being made sees it as in use
        const release = t.kind === 'container' && t.stored.event.type === 'ContainerRequested'
          ? this.p.volumes?.hold(volumesOf(t.stored.event.data.spec.mounts)) : undefined;
        const ctx = this.context(msg);
        const working = setInterval(() => msg.working(), 5000);
        try {
          const o = t.kind === 'reject' ? actions.refuse(t, msg.seq, subjectToken(msg.subject))
            : t.kind === 'network' ? await actions.network(ctx, t.stored)
            : t.kind === 'volume' ? await actions.volume(ctx, t.stored)
            : await actions.container(ctx, t.stored, i.receivedAt);
          await this.record(o);
        } finally { clearInterval(working); release?.(); }
      }
      // positions of refused messages are saved in batches: ack once this one's is in the file
      // (a container's record was written before its events: nothing to wait for then)
      void this.p.checkpoint.whenSaved().then(() => msg.ack());
      this.maybePrune();
    } catch (err) {
      // A failure to append (server gone) must not be acked: redelivery retries it.
      console.error(`agent: ${i.kind !== 'msg' ? i.id : i.msg.seq}: ${(err as Error).message}`);
      if (i.kind === 'msg') i.msg.nak(1000);
    }
  }

  /**
   * Records an outcome: output first, then the container's record together with the events it
   * promises (one write), the events, positions seen, watches. A crash between the write and
   * the appends is finished at the next start (recoverPromised): nothing reported twice or never.
   */
  private async record(o: Outcome): Promise<void> {
    const { checkpoint, logs, log, node } = this.p;
    if (o.logsEnd) logs.finish(o.logsEnd);
    if (o.follow) logs.follow(o.follow, o.followFrom ?? 0);
    if (o.unwatch) { this.watching.get(o.unwatch)?.abort(); this.watching.delete(o.unwatch); }
    // The next step's host work (a removal's teardown) starts now and runs while this
    // step's events are appended; its own record and events still come after these (a crash
    // in between is finished at the start like any other: promises add up, a removal is
    // idempotent). A `run --rm` no longer waits one append longer for its removal.
    const next = o.next?.();
    next?.catch(() => undefined);
    const events = o.events.map((e) => ({ ...e, id: newId() }));
    const first = events[0]?.type ?? 'none';
    const promised = o.record ? events.filter((e) => e.entity === o.record!.id) : [];
    if (o.record) {
      if ('set' in o.record) checkpoint.set(o.record.id, o.record.set, promised);
      else checkpoint.update(o.record.id, o.record.patch, promised);
      failpoint(`after-checkpoint:${first}`);
    }
    for (const [k, e] of events.entries()) {
      if (k > 0) failpoint(`between-events:${first}`);
      await log.append(subjects.state(node, e.entity), e.type, e.entity, e.data as never, e.cause, e.id);
    }
    // forgetting the promise is not written on its own (the next write carries it): the ack
    // below does not wait for it, and a crash before it costs a read of the subject at start
    if (o.record) { failpoint(`after-append:${first}`); checkpoint.kept(o.record.id, promised.map((e) => e.id)); }
    // after the events: a crash in between rejects (or applies) it again rather than never
    if (o.seen) checkpoint.markSeen(o.seen.key, o.seen.seq);
    if (o.watch) this.watch(o.watch);
    if (o.restartAt) { failpoint('restart:backoff'); this.scheduleRestart(o.restartAt.id, o.restartAt.at); }
    if (next) await this.record(await next);
  }
}
