// The agent's pipeline: desired events and observed exits ▸ group by container ▸ one at a
// time per container (different containers in parallel) ▸ act ▸ append the state event
// ▸ ack. Nothing here throws past an item: a bad or impossible event becomes an
// EventRejected in the log and is acked, so it never blocks the ones behind it.
import { Subject, merge, from, groupBy, mergeMap, concatMap, tap, switchMap, timer, filter, type Observable, type Subscription } from 'rxjs';
import type { JsMsg } from 'nats';
import type { AnyEvent, DesiredEvent, EventData, EventType, StoredEvent } from '../shared/events.js';
import { DESIRED_TYPES } from '../shared/events.js';
import { decodeEvent, hashBytes, DecodeError } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import type { Appender } from '../shared/log.js';
import type { Checkpoint } from './checkpoint.js';
import { ContainerError, type ContainerHost } from './containers.js';
import type { LogStreamer } from './logs.js';
import type { ExitStatus } from './runtime/runtime.js';

/** What the pipeline needs of the node's networking for network events. */
export interface NetworkAdmin {
  create(name: string, subnet: string, gateway?: string): Promise<{ subnet: string; gateway: string; bridge: string }>;
  remove(name: string): Promise<void>;
}

const GROUP_IDLE_MS = 60_000;

/** Where a rejection's position is kept: per subject token, valid entity or not. */
const rejectKey = (msg: JsMsg) => `rejected:${msg.subject.split('.').pop()}`;

export type Input =
  | { kind: 'msg'; msg: JsMsg; receivedAt: number }
  | { kind: 'exit'; id: string; exit: ExitStatus; whileAway?: boolean };

const SIGNUM: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

export class Reconciler {
  private exits = new Subject<Input>();
  private watching = new Map<string, AbortController>();
  private sub?: Subscription;
  private early: Input[] = []; // exits found before the pipeline runs (at adoption)
  private started = false;

  constructor(
    private node: string,
    private log: Appender,
    private host: ContainerHost,
    private checkpoint: Checkpoint,
    private logs: LogStreamer,
    private networks?: NetworkAdmin,
  ) {}

  start(messages: Observable<JsMsg>): void {
    const msgs = messages.pipe(mergeMap((msg) => from([{ kind: 'msg' as const, msg, receivedAt: performance.timeOrigin + performance.now() }])));
    // A group per container keeps its events in order. A group closes after a quiet
    // minute with nothing in flight, so a long-lived agent does not keep one per container
    // it ever saw; closing only when idle means two groups of one key never overlap.
    const inFlight = new Map<string, number>();
    const count = (k: string, d: number) => { const n = (inFlight.get(k) ?? 0) + d; if (n) inFlight.set(k, n); else inFlight.delete(k); };
    this.sub = merge(msgs, this.exits).pipe(
      tap((i) => count(this.entityOf(i), 1)),
      groupBy((i) => this.entityOf(i), {
        duration: (g) => g.pipe(switchMap(() => timer(GROUP_IDLE_MS)), filter(() => !inFlight.has(g.key))),
      }),
      mergeMap((group) => group.pipe(concatMap((i) => from(this.apply(i).finally(() => count(group.key, -1)))))),
    ).subscribe();
    this.started = true;
    for (const i of this.early.splice(0)) this.exits.next(i);
  }

  stop(): void {
    this.sub?.unsubscribe();
    for (const ac of this.watching.values()) ac.abort();
    this.watching.clear();
  }

  /** Watches a running container for its exit and feeds that back into the pipeline. */
  watch(id: string): void {
    if (this.watching.has(id)) return;
    const ac = new AbortController();
    this.watching.set(id, ac);
    this.host.waitExit(id, ac.signal).then(
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

  pidOf(id: string): number | undefined {
    const s = this.host.status(id);
    return s.state === 'running' ? s.pid : undefined;
  }

  private entityOf(i: Input): string {
    if (i.kind === 'exit') return i.id;
    const last = i.msg.subject.split('.').pop() ?? '_';
    return last;
  }

  private async apply(i: Input): Promise<void> {
    try {
      if (i.kind === 'exit') await this.onExit(i.id, i.exit, i.whileAway === true);
      else await this.onMessage(i.msg, i.receivedAt);
    } catch (err) {
      // A failure to append (server gone) must not be acked: redelivery retries it.
      console.error(`agent: ${i.kind === 'exit' ? i.id : i.msg.seq}: ${(err as Error).message}`);
      if (i.kind === 'msg') i.msg.nak(1000);
    }
  }

  private emit<T extends EventType>(id: string, type: T, data: EventData[T], cause?: string) {
    return this.log.append(subjects.state(this.node, id), type, id, data, cause);
  }

  private async reject(msg: JsMsg, entity: string, reason: string, ev?: { id?: string; type?: string }): Promise<void> {
    const safeEntity = /^[a-z0-9][a-z0-9_:-]{0,127}$/.test(entity) ? entity : '_invalid';
    await this.emit(safeEntity, 'EventRejected', {
      reason: reason.slice(0, 4000), rejectedSeq: msg.seq,
      ...(ev?.id ? { rejectedId: ev.id } : {}), ...(ev?.type ? { rejectedType: ev.type } : {}),
    }, ev?.id);
    await this.checkpoint.markSeen(rejectKey(msg), msg.seq);
    msg.ack();
  }

  private async onMessage(msg: JsMsg, receivedAt: number): Promise<void> {
    const entity = msg.subject.split('.').pop() ?? '_';
    if (msg.seq <= this.checkpoint.seen(rejectKey(msg))) { msg.ack(); return; } // rejected before: a replay
    let e: AnyEvent;
    try {
      e = decodeEvent(msg.data);
    } catch (err) {
      const d = err as DecodeError;
      return this.reject(msg, d.partial?.entity ?? entity, d.message, d.partial);
    }
    if (!(DESIRED_TYPES as readonly string[]).includes(e.type)) return this.reject(msg, e.entity, `${e.type} is not a desired event`, e);
    if (e.src !== 'controller') return this.reject(msg, e.entity, `desired events come from the controller, not ${e.src}`, e);
    if (e.entity !== entity) return this.reject(msg, entity, `entity ${e.entity} does not match subject ${msg.subject}`, e);
    if (e.type === 'NetworkCreateRequested' || e.type === 'NetworkRemoveRequested') {
      if (msg.seq <= this.checkpoint.seen(e.entity)) { msg.ack(); return; }
      await this.network(e, msg.seq);
      await this.checkpoint.markSeen(e.entity, msg.seq);
      msg.ack();
      return;
    }
    const rec = this.checkpoint.get(e.entity);
    if (rec && msg.seq <= rec.lastSeq) { msg.ack(); return; } // replay: already applied
    await this.act({ seq: msg.seq, hash: hashBytes(msg.data), event: e } as StoredEvent & { event: DesiredEvent }, receivedAt, msg);
    msg.ack();
  }

  private async network(e: Extract<DesiredEvent, { type: 'NetworkCreateRequested' | 'NetworkRemoveRequested' }>, seq: number): Promise<void> {
    const reject = (reason: string) => this.emit(e.entity, 'EventRejected', { reason, rejectedSeq: seq, rejectedId: e.id, rejectedType: e.type }, e.id);
    if (e.data.node !== this.node) return void await reject(`addressed to node ${e.data.node}, this is ${this.node}`);
    if (!this.networks) return void await reject('networking is not available on this node');
    try {
      if (e.type === 'NetworkCreateRequested') {
        const n = await this.networks.create(e.data.name, e.data.subnet, e.data.gateway);
        await this.emit(e.entity, 'NetworkCreated', { name: e.data.name, ...n }, e.id);
      } else {
        await this.networks.remove(e.data.name);
        await this.emit(e.entity, 'NetworkRemoved', { name: e.data.name }, e.id);
      }
    } catch (err) {
      await reject((err as Error).message);
    }
  }

  private async act(s: StoredEvent & { event: DesiredEvent }, receivedAt: number, msg: JsMsg): Promise<void> {
    const e = s.event;
    if (e.type === 'NetworkCreateRequested' || e.type === 'NetworkRemoveRequested') return;
    const id = e.entity;
    const rec = this.checkpoint.get(id);
    const reject = async (reason: string) => {
      await this.emit(id, 'EventRejected', { reason, rejectedSeq: s.seq, rejectedId: e.id, rejectedType: e.type }, e.id);
      await this.checkpoint.markSeen(rejectKey(msg), s.seq); // a replay must not reject it again
    };
    switch (e.type) {
      case 'ContainerRequested': {
        if (e.data.node !== this.node) return void await reject(`placed on node ${e.data.node}, this is ${this.node}`);
        if (rec) return void await this.checkpoint.update(id, { lastSeq: s.seq }); // same container asked twice
        const working = setInterval(() => msg.working(), 5000);
        try {
          const st = this.host.status(id);
          let pid: number, runningAt: number, ip: string | undefined;
          if (st.state === 'running' && st.pid) {
            ({ pid } = st); runningAt = Date.now(); // crashed after start, before recording: adopt
          } else {
            const r = await this.host.create(id, e.data.spec, (p) => this.pidOf(p));
            ({ pid, runningAt, ip } = r);
          }
          this.logs.follow(id);
          await this.checkpoint.set(id, { lastSeq: s.seq, requestId: e.id, spec: e.data.spec, reported: 'running', pid });
          await this.emit(id, 'ContainerStarted', { pid, receivedAt, runningAt, ...(ip ? { ip } : {}) }, e.id);
          this.watch(id);
        } catch (err) {
          const ce = err instanceof ContainerError ? err : new ContainerError((err as Error).message, id);
          await this.checkpoint.set(id, { lastSeq: s.seq, requestId: e.id, spec: e.data.spec, reported: 'failed' });
          await this.emit(id, 'ContainerFailed', { error: ce.message.slice(0, 4000), exitCode: ce.exitCode }, e.id);
          if (e.data.spec.autoRemove) await this.removeNow(id, 'auto-remove after failed start', e.id);
        } finally { clearInterval(working); }
        return;
      }
      case 'ContainerStopRequested':
      case 'ContainerKillRequested':
      case 'ContainerRemoveRequested':
      case 'ContainerUpdateRequested': {
        if (!rec || rec.reported === 'removed') return void await reject(`no container ${id.slice(0, 12)} on node ${this.node}`);
        await this.checkpoint.update(id, { lastSeq: s.seq });
        if (e.type === 'ContainerStopRequested') {
          const working = setInterval(() => msg.working(), 5000);
          try {
            const exit = await this.host.stop(id, e.data.timeout);
            if (exit) await this.onExit(id, exit, false, e.id);
          } finally { clearInterval(working); }
        } else if (e.type === 'ContainerKillRequested') {
          if (this.host.status(id).state !== 'running') return void await reject(`container ${id.slice(0, 12)} is not running`);
          try { this.host.kill(id, e.data.signal); } catch (err) { await reject(`kill ${e.data.signal}: ${(err as Error).message}`); }
        } else if (e.type === 'ContainerUpdateRequested') {
          try {
            await this.host.update(id, e.data.resources);
            // the node's allocation (NodeJoined after a restart) counts the limits now in force
            if (rec.spec) await this.checkpoint.update(id, { spec: { ...rec.spec, resources: { ...rec.spec.resources, ...e.data.resources } } });
            await this.emit(id, 'ContainerUpdated', { resources: e.data.resources }, e.id);
          } catch (err) { await reject(`update: ${(err as Error).message}`); }
        } else {
          if (this.host.status(id).state === 'running') {
            if (!e.data.force) return void await reject(`container ${id.slice(0, 12)} is running: stop it first or remove with force`);
            const exit = await this.killAndWait(id);
            await this.onExit(id, exit, false, e.id);
          }
          await this.removeNow(id, 'requested', e.id);
        }
        return;
      }
    }
  }

  private async killAndWait(id: string): Promise<ExitStatus> {
    this.watching.get(id)?.abort();
    const exited = this.host.waitExit(id);
    try { this.host.kill(id, 'SIGKILL'); } catch { /* raced with its own exit */ }
    return exited;
  }

  /** Reports an exit once per run (the watcher and a stop may both see it). */
  private async onExit(id: string, exit: ExitStatus, whileAway: boolean, cause?: string): Promise<void> {
    const rec = this.checkpoint.get(id);
    if (!rec || rec.reported !== 'running') return;
    this.logs.finish(id);
    const sig = exit.signal ? (exit.signal.startsWith('SIG') ? exit.signal : `SIG${exit.signal}`) : undefined;
    const code = sig ? 128 + (SIGNUM[sig] ?? 0) : exit.code;
    await this.checkpoint.update(id, { reported: 'exited' });
    await this.emit(id, 'ContainerExited', {
      exitCode: code, ...(sig ? { signal: sig } : {}), oomKilled: this.host.oomKilled(id), exitedAt: exit.exitedAt,
      ...(whileAway ? { whileAway } : {}),
    }, cause ?? rec.requestId);
    if (rec.spec?.autoRemove) await this.removeNow(id, 'auto-remove on exit', rec.requestId);
  }

  private async removeNow(id: string, reason: string, cause: string): Promise<void> {
    this.watching.get(id)?.abort();
    await this.host.remove(id);
    await this.checkpoint.update(id, { reported: 'removed' });
    await this.emit(id, 'ContainerRemoved', { reason }, cause);
  }
}
