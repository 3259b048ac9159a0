// Rolling updates and rollbacks (docker's --update-* / --rollback-*), the pure part. The log
// holds where an update is: ServiceUpdateStarted (the new spec, the policy it rolls with, the
// service's highest task number then), ServiceUpdatePaused, ServiceUpdateCompleted. Everything
// else is read off the tasks themselves: a task carries the spec version it runs, so the slots
// still at an older one, the ones in flight, the failures within the monitor period and the
// time the last batch started are all functions of the view. A controller killed mid-update
// (or a new leader) computes the same next step from the log alone and carries on.
import type { UpdateConfig } from '../shared/events.js';
import type { ContainerView, ServiceView } from '../shared/reducer.js';

/** docker's defaults for --update-* (and --rollback-*). */
export const DEFAULT_UPDATE: UpdateConfig = { parallelism: 1, delayMs: 0, order: 'stop-first', monitorMs: 5000, failureAction: 'pause', maxFailureRatio: 0 };
/** Seconds an old task gets to stop when an update replaces it (docker's --stop-grace-period). */
export const DEFAULT_STOP_GRACE_S = 10;

/** The service spec version a task runs (0: the spec at creation). */
export const versionOf = (c: ContainerView): number => c.spec.service?.version ?? 0;

/**
 * A task that no longer holds its slot though it is still listed: shut down by an update (or
 * stopped by hand). Kept in the slot's history, as docker's Shutdown tasks; the slot gets a new one.
 */
export const retired = (c: ContainerView): boolean => c.desired === 'stopped';

/** Whether the service is rolling now (not paused, not done). */
export const rolling = (svc: ServiceView): boolean => svc.updateStatus?.state === 'updating' || svc.updateStatus?.state === 'rollback_started';

const ended = (c: ContainerView): boolean => c.state === 'exited' || c.state === 'failed' || c.state === 'rejected';

/**
 * A running task whose health check has not passed yet: swarm holds such a task as starting, so
 * an update waits for it before its next batch and its monitor period.
 */
const unproven = (c: ContainerView): boolean => c.state === 'running' && c.health?.status === 'starting';

/**
 * The update's failed tasks: its own (numbered after it started), at the wanted version, that
 * ended while still wanted within the monitor period of their start, or never ran, or that
 * failed their health check while the update rolls (swarm's task fails when its container turns
 * unhealthy; after the update it is the restart policy's).
 */
export function failures(tasks: readonly ContainerView[], svc: ServiceView, monitorMs: number): ContainerView[] {
  const v = svc.version ?? 0, from = svc.updateStatus?.fromTask ?? Infinity;
  return tasks.filter((c) => c.spec.service!.task > from && versionOf(c) === v && c.desired === 'running'
    && ((ended(c) && (c.startedAt === undefined || (c.finishedAt ?? c.startedAt) - c.startedAt < monitorMs))
      || (c.state === 'running' && c.health?.status === 'unhealthy')));
}

export type Step =
  | { kind: 'replace'; slot: string; old: ContainerView; stopFirst: boolean }
  | { kind: 'status'; event: 'paused' | 'completed' | 'rollback'; reason: string };

/** One slot as the plan sees it: its current task (the newest still wanted), if any. */
export interface SlotNow { slot: string; current?: ContainerView }

const bySlot = (a: SlotNow, b: SlotNow) => (Number(a.slot) - Number(b.slot)) || (a.slot < b.slot ? -1 : a.slot > b.slot ? 1 : 0);

/**
 * What a rolling service does next: a failure over the tolerated ratio pauses or rolls back;
 * otherwise, when the last batch is running and the delay after it has passed, the next
 * `parallelism` slots still at an older version are replaced; when none is left and the last
 * started task has been watched for the monitor period, the update is complete. `due.at` is
 * lowered to when waiting ends. Pure.
 */
export function rollStep(svc: ServiceView, slots: readonly SlotNow[], tasks: readonly ContainerView[], now: number, due?: { at: number }): Step[] {
  const u = svc.updateStatus;
  if (!u || !rolling(svc)) return [];
  const p = u.policy, v = svc.version ?? 0;
  const wait = (at: number) => { if (due && at < due.at) due.at = at; };
  const failed = failures(tasks, svc, p.monitorMs);
  if (failed.length && p.failureAction !== 'continue' && failed.length > p.maxFailureRatio * Math.max(1, slots.length)) {
    const f = failed[0]!;
    const how = f.state === 'running' ? 'unhealthy' : f.state === 'exited' ? `exited (${f.signal ?? f.exitCode})` : f.error ?? f.state;
    const what = `${failed.length} task(s) failed within the monitor period (${f.name}: ${how})`;
    if (p.failureAction === 'rollback' && !u.rollback && svc.previous) return [{ kind: 'status', event: 'rollback', reason: `update rolled back: ${what}` }];
    return [{ kind: 'status', event: 'paused', reason: `${u.rollback ? 'rollback' : 'update'} paused: ${what}` }];
  }
  // a slot is in flight while it has no task or its new one has not started (or passed its health check) yet
  const inflight = slots.filter((s) => !s.current || (versionOf(s.current) === v && (s.current.state === 'created' || unproven(s.current)))).length;
  // at another version: running ones are replaced in batches, ended ones (a failed update's,
  // on a rollback) at once in the same batches, without the restart delay
  const stale = slots.filter((s) => s.current && versionOf(s.current) !== v && s.current.state !== 'removing').sort(bySlot);
  // the update's own tasks: when the last one started
  let lastStart = 0;
  for (const c of tasks) if (c.spec.service!.task > u.fromTask && c.startedAt !== undefined && c.startedAt > lastStart) lastStart = c.startedAt;
  if (inflight) return [];
  if (!stale.length) {
    if (!slots.every((s) => s.current && versionOf(s.current) === v && s.current.state === 'running')) return [];
    if (now < lastStart + p.monitorMs) { wait(lastStart + p.monitorMs); return []; }
    return [{ kind: 'status', event: 'completed', reason: '' }];
  }
  if (lastStart && now < lastStart + p.delayMs) { wait(lastStart + p.delayMs); return []; }
  const batch = p.parallelism === 0 ? stale : stale.slice(0, p.parallelism);
  return batch.map((s) => ({ kind: 'replace', slot: s.slot, old: s.current!, stopFirst: p.order === 'stop-first' && (s.current!.state === 'created' || s.current!.state === 'running') }));
}
