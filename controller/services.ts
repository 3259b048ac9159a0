// Services: the log holds what is wanted (ServiceCreated/Updated/Removed), the active
// controller makes the tasks match. plan() is the pure rule, a function of the view and the
// clock; Reconciler is the thin part that ticks and carries the plan out through the same
// run path as tsctl run (placement, the fenced name claim, ContainerRequested).
//
// Idempotent by construction: a task's number is the service's highest requested + 1 and its
// container id is derived from (service, number), so a controller that restarts mid-scale
// (or a second one that believes it leads) computes the same next task and claims the same
// number (`service/<id>.<n>`) with the same expected sequence: it cannot place it twice.
import { createHash } from 'node:crypto';
import type { ServiceMode, TaskOf } from '../shared/events.js';
import { own, type ClusterView, type ContainerView, type ServiceView } from '../shared/reducer.js';
import { parseConstraints, unmet, type Constraint } from '../shared/constraints.js';
import { subjects } from '../shared/subjects.js';
import { RpcError } from '../shared/rpc.js';
import { appendDesire, type ApiContext } from './api/context.js';
import { eligible } from './placement.js';
import { parsePlacementPrefs } from '../shared/placement-prefs.js';
import { run } from './api/containers.js';
import { DEFAULT_STOP_GRACE_S, DEFAULT_UPDATE, retired, rolling, rollStep, versionOf, type SlotNow } from './rolling.js';

/** Tasks kept per slot (the current one and the dead before it), as docker's task history. */
export const HISTORY = 3;

export type Action =
  | { kind: 'place'; service: string; slot: string; attempt: number; why: string }
  | { kind: 'remove'; id: string; node: string; why: string }
  /** an update shuts an old task down: stopped, not removed, so service ps shows it as docker does */
  | { kind: 'stop'; id: string; node: string; timeout: number; why: string }
  /** a rolling update's progress, appended to the service's subject (controller/rolling.ts) */
  | { kind: 'status'; service: string; event: 'paused' | 'completed' | 'rollback'; reason: string };

/** Whether a task holds its slot now: asked to run, not finished. */
export const live = (c: ContainerView): boolean => c.desired !== 'removed' && (c.state === 'created' || c.state === 'running');
const dead = (c: ContainerView): boolean => c.desired !== 'removed' && !live(c) && c.state !== 'removing';

/** The tasks of every service in the view, by service id (one pass over the containers). */
export function tasksByService(view: ClusterView): Map<string, ContainerView[]> {
  const out = new Map<string, ContainerView[]>();
  for (const id in view.containers) {
    const c = view.containers[id];
    const s = c.spec.service;
    if (!s) continue;
    let l = out.get(s.id);
    if (!l) out.set(s.id, (l = []));
    l.push(c);
  }
  return out;
}

/** The slots a service wants filled: 1…replicas, or one per eligible node's id (global). */
export function wantedSlots(view: ClusterView, mode: ServiceMode, replicas: number, cs: readonly Constraint[]): string[] {
  if (mode === 'global') return eligible(view, cs).map((n) => n.id);
  return Array.from({ length: replicas }, (_, i) => String(i + 1));
}

/** Why a running task may not stay where it is (its node down, drained, or no longer matching), if so. */
export function displaced(view: ClusterView, c: ContainerView, cs: readonly Constraint[]): string | undefined {
  const n = own(view.nodes, c.node);
  if (!n) return `node ${c.node} left the cluster`;
  if (n.state === 'down') return `node ${c.node} is down`;
  if (n.availability === 'drain') return `node ${c.node} is drained`;
  const u = unmet(n, cs);
  if (u) return `node ${c.node} no longer satisfies ${u.text}`;
  return undefined;
}

/**
 * What to do now so that every service has its tasks. Removals come first in the list (a
 * drained task goes before its replacement is placed). `due.at` is lowered to the earliest
 * time a restart delay ends, if one is running. Pure.
 */
export function plan(view: ClusterView, now: number, due?: { at: number }): Action[] {
  const removes: Action[] = [], places: Action[] = [];
  const tasks = tasksByService(view);
  const services = view.services ?? {};
  for (const [sid, list] of tasks) {
    if (own(services, sid)) continue;
    // the service is gone: so are its tasks
    for (const c of list) if (c.desired !== 'removed') removes.push({ kind: 'remove', id: c.id, node: c.node, why: 'its service was removed' });
  }
  for (const sid in services) {
    const svc = services[sid];
    let cs: Constraint[];
    try { cs = parseConstraints(svc.spec.constraints ?? []); } catch { continue; } // checked at creation: never here
    const wanted = new Set(wantedSlots(view, svc.spec.mode, svc.spec.replicas, cs));
    const bySlot = new Map<string, ContainerView[]>();
    for (const c of tasks.get(sid) ?? []) {
      const slot = c.spec.service!.slot;
      let l = bySlot.get(slot);
      if (!l) bySlot.set(slot, (l = []));
      l.push(c);
    }
    for (const [slot, l] of bySlot) {
      if (wanted.has(slot)) continue;
      // scaled down (the highest slots go), or a global service's node no longer eligible
      for (const c of l) if (c.desired !== 'removed') removes.push({ kind: 'remove', id: c.id, node: c.node, why: svc.spec.mode === 'global' ? `node ${slot} is no longer eligible` : `scaled down to ${svc.spec.replicas}` });
    }
    const version = svc.version ?? 0, grace = svc.spec.stopGraceS ?? DEFAULT_STOP_GRACE_S;
    const now_: SlotNow[] = [];
    for (const slot of wanted) {
      const l = (bySlot.get(slot) ?? []).sort((a, b) => b.spec.service!.task - a.spec.service!.task);
      // an update's shut-down task stays in the history, but no longer holds its slot
      const current = l.find((c) => c.desired !== 'removed' && !retired(c));
      now_.push({ slot, ...(current ? { current } : {}) });
      for (const c of l) {
        if (c === current || !live(c) || retired(c)) continue;
        if (current && versionOf(c) !== versionOf(current)) {
          // an older spec's task, replaced by an update: stopped once its replacement runs
          // (start-first keeps it running until then), and kept in ps as Shutdown
          if (current.state === 'running' && c.desired === 'running') removes.push({ kind: 'stop', id: c.id, node: c.node, timeout: grace, why: `replaced by task ${current.name}` });
          continue;
        }
        // any older copy still running (a replaced task on a node that came back) goes
        removes.push({ kind: 'remove', id: c.id, node: c.node, why: `replaced by task ${current?.name ?? 'a newer one'}` });
      }
      // history: the newest HISTORY tasks of the slot stay listed, older dead ones go
      let kept = 0;
      for (const c of l) {
        if (c.desired === 'removed') continue;
        if (++kept > HISTORY && (dead(c) || (retired(c) && !live(c)))) removes.push({ kind: 'remove', id: c.id, node: c.node, why: 'task history' });
      }
      const attempt = current?.spec.service!.attempt ?? 0;
      if (!current) { places.push({ kind: 'place', service: sid, slot, attempt, why: 'no task' }); continue; }
      if (live(current)) {
        const why = displaced(view, current, cs);
        if (why) {
          removes.push({ kind: 'remove', id: current.id, node: current.node, why });
          places.push({ kind: 'place', service: sid, slot, attempt, why });
          continue;
        }
        // as swarm: an unhealthy task has failed; the restart policy decides on its replacement
        // (counted as an attempt, after the delay from its last probe), which takes its place
        const sick = current.state === 'running' && current.health?.status === 'unhealthy' ? current : undefined;
        if (!sick) continue;
        const r = svc.spec.restart;
        if (r.condition === 'none' || (r.maxAttempts > 0 && attempt >= r.maxAttempts)) continue;
        const at = (sick.health!.log.at(-1)?.end ?? now) + r.delayMs;
        if (now < at) { if (due && at < due.at) due.at = at; continue; }
        const unhealthy = `task ${sick.name} is unhealthy`;
        removes.push({ kind: 'remove', id: sick.id, node: sick.node, why: unhealthy });
        places.push({ kind: 'place', service: sid, slot, attempt: attempt + 1, why: unhealthy });
        continue;
      }
      if (current.state === 'removing') continue; // on its way out: placed again once it is gone
      // it ended (exited, failed to start, refused): the restart policy decides
      const r = svc.spec.restart;
      if (r.condition === 'none') continue;
      if (r.condition === 'on-failure' && current.state === 'exited' && current.exitCode === 0 && !current.signal) continue;
      if (r.maxAttempts > 0 && attempt >= r.maxAttempts) continue;
      const at = (current.finishedAt ?? current.createdAt) + r.delayMs;
      // not yet: the caller learns when to look again even if nothing else happens
      if (now < at) { if (due && at < due.at) due.at = at; continue; }
      places.push({ kind: 'place', service: sid, slot, attempt: attempt + 1, why: `task ${current.name} ${current.state === 'exited' ? `exited (${current.signal ?? current.exitCode})` : current.state}` });
    }
    const placing = new Set(places.map((a) => (a.kind === 'place' && a.service === sid ? a.slot : '')));
    for (const st of rollStep(svc, now_, tasks.get(sid) ?? [], now, due)) {
      if (st.kind === 'replace' && placing.has(st.slot)) continue; // displaced: its replacement is already at the new spec
      if (st.kind === 'status') { places.push({ kind: 'status', service: sid, event: st.event, reason: st.reason }); continue; }
      const why = `${svc.updateStatus!.rollback ? 'rollback' : 'update'} to spec version ${version}`;
      if (st.stopFirst) removes.push({ kind: 'stop', id: st.old.id, node: st.old.node, timeout: grace, why });
      places.push({ kind: 'place', service: sid, slot: st.slot, attempt: 0, why });
    }
  }
  return [...removes, ...places];
}

/** A task's container id: the same for the same (service, task number), whoever computes it. */
export function taskId(serviceId: string, task: number): string {
  return createHash('sha256').update(`swarmlite-task:${serviceId}:${task}`).digest('hex');
}

/** A task's container name, as docker's: <service>.<slot>.<task>. */
export const taskName = (service: string, slot: string, task: number): string => `${service}.${slot}.${task}`;

/** Per node, how many live tasks of `sid` it runs: placement spreads a service's tasks by it. */
export function spreadOf(view: ClusterView, sid: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const c of tasksByService(view).get(sid) ?? []) if (live(c)) m.set(c.node, (m.get(c.node) ?? 0) + 1);
  return m;
}

export interface ReconcilerOptions {
  /** how often to look (ms); a change also pokes it */
  everyMs?: number;
  /** runs each action one at a time with the API's mutations (controller/api/index.ts) */
  serialise?: <T>(f: () => Promise<T>) => Promise<T>;
  log?: (line: string) => void;
}

export class Reconciler {
  private timer?: NodeJS.Timeout;
  private busy = false;
  private again = false;

  constructor(private ctx: ApiContext, private o: ReconcilerOptions = {}) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.o.everyMs ?? 500);
    this.timer.unref();
    void this.tick();
  }

  stop(): void { if (this.timer) clearInterval(this.timer); }

  /** The view's position at the last plan that had nothing to do, and when a restart delay ends. */
  private idleAt = -1;
  private due = Infinity;

  /**
   * One pass: plan over the view as it is now, carry out each action (a later one sees the
   * earlier ones folded). Nothing changed since a pass that had nothing to do, and no restart
   * delay ended: no pass (a plan reads every container).
   */
  async tick(): Promise<void> {
    if (this.busy) { this.again = true; return; }
    const view = this.ctx.view();
    if (!view.services) return; // no service was ever made
    if (view.seq === this.idleAt && Date.now() < this.due) return;
    this.busy = true;
    try {
      do {
        this.again = false;
        const due = { at: Infinity };
        const seq = this.ctx.view().seq;
        const actions = plan(this.ctx.view(), Date.now(), due);
        this.due = due.at;
        this.idleAt = actions.length ? -1 : seq;
        for (const a of actions) {
          const one = () => (a.kind === 'remove' ? this.remove(a) : a.kind === 'stop' ? this.stopTask(a) : a.kind === 'status' ? this.status(a) : this.place(a));
          await (this.o.serialise ? this.o.serialise(one) : one()).catch((err) => {
            this.o.log?.(`services: ${a.kind} ${a.kind === 'remove' || a.kind === 'stop' ? a.id.slice(0, 12) : `${a.service.slice(0, 12)} ${a.kind === 'place' ? `slot ${a.slot}` : a.event}`}: ${(err as Error).message}`);
          });
        }
      } while (this.again);
    } finally { this.busy = false; }
  }

  private async remove(a: Extract<Action, { kind: 'remove' }>): Promise<void> {
    const c = own(this.ctx.view().containers, a.id);
    if (!c || c.desired === 'removed') return; // done meanwhile
    // a task's anonymous volumes (its image's VOLUME paths) go with it, as swarmkit removes a task's container
    const { seq } = await appendDesire(this.ctx, c, 'ContainerRemoveRequested', { force: true, volumes: true, user: 'controller' });
    await this.ctx.waitFor(seq);
  }

  private async stopTask(a: Extract<Action, { kind: 'stop' }>): Promise<void> {
    const c = own(this.ctx.view().containers, a.id);
    if (!c || c.desired !== 'running') return; // done meanwhile
    const { seq } = await this.ctx.append(subjects.desired(c.node, c.id), 'ContainerStopRequested', c.id, { timeout: a.timeout, user: 'controller' });
    await this.ctx.waitFor(seq);
  }

  /**
   * An update's progress. A rollback is fenced as an update verb's is (a claim named after
   * the service's last event): two controllers that both see the failure start it once.
   */
  private async status(a: Extract<Action, { kind: 'status' }>): Promise<void> {
    const svc = own(this.ctx.view().services ?? {}, a.service);
    if (!svc || !rolling(svc)) return; // done meanwhile
    let seq: number;
    if (a.event === 'rollback') {
      if (!svc.previous) return;
      if (this.ctx.claim) await this.ctx.claim('service', `${svc.id}.u${svc.lastSeq}`, svc.id);
      ({ seq } = await this.ctx.append(subjects.service(svc.id), 'ServiceUpdateStarted', svc.id, {
        spec: svc.previous, policy: svc.spec.rollback ?? DEFAULT_UPDATE, user: 'controller', rollback: true, reason: a.reason.slice(0, 1024),
      }));
    } else if (a.event === 'paused') {
      ({ seq } = await this.ctx.append(subjects.service(svc.id), 'ServiceUpdatePaused', svc.id, { reason: a.reason.slice(0, 1024) }));
    } else {
      ({ seq } = await this.ctx.append(subjects.service(svc.id), 'ServiceUpdateCompleted', svc.id, {}));
    }
    this.o.log?.(`services: ${svc.spec.name}: ${a.event}${a.reason ? ` (${a.reason})` : ''}`);
    await this.ctx.waitFor(seq);
  }

  private async place(a: Extract<Action, { kind: 'place' }>): Promise<void> {
    const view = this.ctx.view();
    const svc = own(view.services ?? {}, a.service);
    if (!svc) return;
    const task = svc.tasks + 1;
    const of: TaskOf = { id: svc.id, name: svc.spec.name, slot: a.slot, task, attempt: a.attempt, ...(svc.version ? { version: svc.version } : {}) };
    const t = svc.spec.task;
    try {
      await run(this.ctx, {
        id: taskId(svc.id, task), name: taskName(svc.spec.name, a.slot, task), image: t.image, user: svc.createdBy,
        ...(t.args?.length ? { args: t.args } : {}), ...(t.env?.length ? { env: t.env } : {}), ...(t.workdir ? { workdir: t.workdir } : {}),
        ...(t.network ? { network: t.network } : {}), ...(t.entrypoint !== undefined ? { entrypoint: t.entrypoint } : {}),
        ...(t.resources ? { resources: t.resources } : {}), ...(t.ports?.length ? { ports: t.ports } : {}),
        ...(t.mounts?.length ? { mounts: t.mounts } : {}),
        ...(svc.spec.mode === 'global' ? { constraints: [...(svc.spec.constraints ?? []), `node.id==${a.slot}`] } : svc.spec.constraints?.length ? { constraints: svc.spec.constraints } : {}),
      }, {
        service: of, spread: spreadOf(view, svc.id), ...(svc.spec.placementPrefs?.length ? { prefs: parsePlacementPrefs(svc.spec.placementPrefs) } : {}),
        // the task number is taken once the task is placed, fenced (controller/lease.ts): a
        // controller whose view is behind computes a number already used, for whatever slot, and
        // is refused here (the name claim would not see it: the same number in another slot is
        // another name). After the placement: a slot that cannot be placed claims nothing.
        ...(this.ctx.claim ? { claim: () => this.ctx.claim!('service', `${svc.id}.${task}`, taskId(svc.id, task)) } : {}),
      });
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      await this.pending(svc, a.slot, err.message);
    }
  }

  /** Says in the log why a slot has no task, once per reason (service ps shows it). */
  private async pending(svc: ServiceView, slot: string, reason: string): Promise<void> {
    const now = own(this.ctx.view().services ?? {}, svc.id);
    if (!now || now.pending?.[slot] === reason) return;
    const { seq } = await this.ctx.append(subjects.service(svc.id), 'ServiceTaskPending', svc.id, { slot, reason: reason.slice(0, 1024) });
    await this.ctx.waitFor(seq);
  }
}
