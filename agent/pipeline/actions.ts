// One action per desired event type, and the exit of a container: each acts on the host
// through its ports and returns the Outcome (events to append, checkpoint change, what to
// watch). Unit-tested against fakes: no root, no nats-server.
import type { DesiredEvent, StoredEvent } from '../../shared/events.js';
import { signalNumber } from '../../shared/signals.js';
import { nextBackoff, shouldRestart } from '../../shared/restart-policy.js';
import type { ContainerHost } from '../host/container-host.js';
import { ContainerError } from '../host/container-host.js';
import type { NodeNetwork } from '../network/node-network.js';
import type { NodeVolumes } from '../storage/volumes.js';
import type { ExitStatus } from '../runtime/runtime.js';
import type { ContainerRecord } from './checkpoint.js';
import { nothing, rejectKey, type Outcome } from './outcome.js';
import type { Triage } from './triage.js';
import { anonymousOf, volumeEntity, type VolumeMount } from '../../shared/volumes.js';

export type HostActions = Pick<ContainerHost, 'status' | 'create' | 'start' | 'stop' | 'kill' | 'killNow' | 'remove' | 'update' | 'oomKilled' | 'pause' | 'unpause'>;

export interface ActionContext {
  node: string;
  host: HostActions;
  networks: Pick<NodeNetwork, 'createNetwork' | 'removeNetwork'>;
  /** The node's named volumes (storage/volumes.ts); absent: volume requests are refused. */
  volumes?: Pick<NodeVolumes, 'create' | 'remove'>;
  record(id: string): ContainerRecord | undefined;
  /** Long actions call it now and then (JetStream's in-progress ack). */
  progress(): void;
  /**
   * Ends the pipeline's exit watch of a container whose exit this action reports itself (a
   * removal's kill): the same exit would otherwise come back as an input of its own, to be
   * found already reported. Absent in unit tests.
   */
  unwatch?(id: string): void;
}

type ContainerDesired = Extract<Triage, { kind: 'container' }>['stored'];
type NetworkDesired = Extract<Triage, { kind: 'network' }>['stored'];
type VolumeDesired = Extract<Triage, { kind: 'volume' }>['stored'];

const rejected = (s: StoredEvent & { event: DesiredEvent }, reason: string, gone = false): Outcome => ({
  events: [{ type: 'EventRejected', entity: s.event.entity, data: { reason, rejectedSeq: s.seq, rejectedId: s.event.id, rejectedType: s.event.type, ...(gone ? { gone } : {}) }, cause: s.event.id }],
  seen: { key: rejectKey(s.event.entity), seq: s.seq }, // a replay must not reject it again
});

/** A message that is refused before anything acts (undecodable, forged, misaddressed). */
export function refuse(t: Extract<Triage, { kind: 'reject' }>, seq: number, token: string): Outcome {
  return {
    events: [{ type: 'EventRejected', entity: t.entity, cause: t.id,
      data: { reason: t.reason, rejectedSeq: seq, ...(t.id ? { rejectedId: t.id } : {}), ...(t.type ? { rejectedType: t.type } : {}) } }],
    seen: { key: rejectKey(token), seq },
  };
}

export async function network(ctx: ActionContext, s: NetworkDesired): Promise<Outcome> {
  const e = s.event;
  const done = (o: Outcome): Outcome => ({ ...o, seen: { key: e.entity, seq: s.seq } });
  const reject = (reason: string) => done({ events: [{ type: 'EventRejected', entity: e.entity, data: { reason, rejectedSeq: s.seq, rejectedId: e.id, rejectedType: e.type }, cause: e.id }] });
  if (e.data.node !== ctx.node) return reject(`addressed to node ${e.data.node}, this is ${ctx.node}`);
  try {
    if (e.type === 'NetworkCreateRequested') {
      const n = await ctx.networks.createNetwork(e.data.name, e.data.subnet, e.data.gateway);
      return done({ events: [{ type: 'NetworkCreated', entity: e.entity, data: { name: e.data.name, ...n }, cause: e.id }] });
    }
    await ctx.networks.removeNetwork(e.data.name);
    return done({ events: [{ type: 'NetworkRemoved', entity: e.entity, data: { name: e.data.name }, cause: e.id }] });
  } catch (err) {
    return reject((err as Error).message);
  }
}

/** volume create|rm: the directory made or removed, or the reason it was not (a volume in use stays). */
export async function volume(ctx: ActionContext, s: VolumeDesired): Promise<Outcome> {
  const e = s.event;
  const done = (o: Outcome): Outcome => ({ ...o, seen: { key: e.entity, seq: s.seq } });
  const reject = (reason: string) => done({ events: [{ type: 'EventRejected', entity: e.entity, data: { reason, rejectedSeq: s.seq, rejectedId: e.id, rejectedType: e.type }, cause: e.id }] });
  if (e.data.node !== ctx.node) return reject(`addressed to node ${e.data.node}, this is ${ctx.node}`);
  if (!ctx.volumes) return reject(`node ${ctx.node} keeps no named volumes`);
  try {
    if (e.type === 'VolumeCreateRequested') {
      const mountpoint = ctx.volumes.create(e.data.name);
      return done({ events: [{ type: 'VolumeCreated', entity: e.entity, data: { name: e.data.name, mountpoint }, cause: e.id }] });
    }
    await ctx.volumes.remove(e.data.name);
    return done({ events: [{ type: 'VolumeRemoved', entity: e.entity, data: { name: e.data.name }, cause: e.id }] });
  } catch (err) {
    return reject((err as Error).message);
  }
}

export async function container(ctx: ActionContext, s: ContainerDesired, receivedAt: number): Promise<Outcome> {
  const e = s.event;
  const id = e.entity;
  const rec = ctx.record(id);
  if (e.type === 'ContainerRequested') {
    if (e.data.node !== ctx.node) return rejected(s, `placed on node ${e.data.node}, this is ${ctx.node}`);
    if (rec) return { events: [], record: { id, patch: { lastSeq: s.seq } } }; // same container asked twice
    const base = { lastSeq: s.seq, requestId: e.id, spec: e.data.spec, owner: e.data.user };
    if (e.data.create) return prepare(ctx, s as ContainerDesired & { event: { type: 'ContainerRequested' } }, base);
    try {
      const st = ctx.host.status(id);
      let pid: number, runningAt: number, ip: string | undefined;
      if (st.state === 'running' && st.pid) {
        ({ pid } = st); runningAt = Date.now(); // crashed after start, before recording: adopt
      } else {
        ({ pid, runningAt, ip } = await ctx.host.create(id, e.data.spec));
      }
      return {
        follow: id, watch: id,
        record: { id, set: { ...base, reported: 'running', pid, runningAt } },
        events: [{ type: 'ContainerStarted', entity: id, data: { pid, receivedAt, runningAt, ...(ip ? { ip } : {}) }, cause: e.id }],
      };
    } catch (err) {
      const ce = err instanceof ContainerError ? err : new ContainerError((err as Error).message, id);
      return {
        record: { id, set: { ...base, reported: 'failed' } },
        events: [{ type: 'ContainerFailed', entity: id, data: { error: ce.message.slice(0, 4000), exitCode: ce.exitCode }, cause: e.id }],
        ...(e.data.spec.autoRemove ? { next: () => removal(ctx, id, 'auto-remove after failed start', e.id) } : {}),
      };
    }
  }
  if (!rec || rec.reported === 'removed') return rejected(s, `no container ${id.slice(0, 12)} on node ${ctx.node}`, true);
  const applied = { id, patch: { lastSeq: s.seq } };
  // a user's stop or kill ends the restart policy's starts (written before the signal: an
  // exit it causes must not be taken for one the policy answers)
  const stopped = { id, patch: { lastSeq: s.seq, stopped: true, restartAt: undefined } };
  switch (e.type) {
    case 'ContainerStartRequested': return startAgain(ctx, id, rec, e.id, receivedAt, s);
    case 'ContainerStopRequested': {
      Object.assign(rec, { stopped: true, restartAt: undefined });
      const exit = await ctx.host.stop(id, e.data.timeout, rec.spec?.stopSignal);
      if (!exit) return { events: [], record: stopped };
      return merge({ events: [], record: stopped }, exited(ctx, id, exit, false, e.id));
    }
    case 'ContainerKillRequested': {
      if (ctx.host.status(id).state !== 'running') return merge({ events: [], record: applied }, rejected(s, `container ${id.slice(0, 12)} is not running`));
      Object.assign(rec, { stopped: true, restartAt: undefined });
      try { ctx.host.kill(id, e.data.signal); } catch (err) {
        return merge({ events: [], record: stopped }, rejected(s, `kill ${e.data.signal}: ${(err as Error).message}`));
      }
      return { events: [], record: stopped };
    }
    case 'ContainerUpdateRequested': {
      try {
        await ctx.host.update(id, e.data.resources);
      } catch (err) {
        return merge({ events: [], record: applied }, rejected(s, `update: ${(err as Error).message}`));
      }
      // the node's allocation (NodeJoined after a restart) counts the limits now in force
      const spec = rec.spec ? { spec: { ...rec.spec, resources: { ...rec.spec.resources, ...e.data.resources } } } : {};
      return {
        record: { id, patch: { lastSeq: s.seq, ...spec } },
        events: [{ type: 'ContainerUpdated', entity: id, data: { resources: e.data.resources }, cause: e.id }],
      };
    }
    case 'ContainerPauseRequested':
    case 'ContainerUnpauseRequested': {
      const pause = e.type === 'ContainerPauseRequested';
      try { await (pause ? ctx.host.pause(id) : ctx.host.unpause(id)); } catch (err) {
        return merge({ events: [], record: applied }, rejected(s, `${pause ? 'pause' : 'unpause'}: ${(err as Error).message}`));
      }
      return { record: applied, events: [{ type: pause ? 'ContainerPaused' : 'ContainerUnpaused', entity: id, data: {}, cause: e.id }] };
    }
    // the name is the controller's: nothing changes on the host
    case 'ContainerRenameRequested': return { events: [], record: applied };
    case 'ContainerRemoveRequested': {
      const drop = e.data.volumes === true;
      if (ctx.host.status(id).state === 'running') {
        if (!e.data.force) return merge({ events: [], record: applied }, rejected(s, `container ${id.slice(0, 12)} is running: stop it first or remove with force`));
        const killed = ctx.host.killNow(id, true); // its exit wait is registered before the watch below ends
        ctx.unwatch?.(id);
        const exit = await killed;
        // the request counts as applied only with its last step: after a crash between the
        // exit and the removal, the redelivered request finishes the removal
        return { ...exited(ctx, id, exit, false, e.id), unwatch: id, next: async () => merge({ events: [], record: applied }, await removal(ctx, id, 'requested', e.id, drop)) };
      }
      return merge({ events: [], record: applied }, await removal(ctx, id, 'requested', e.id, drop));
    }
  }
}

/** Reports an exit once per run (the watcher and a stop may both see it), and when its restart policy starts it again. */
export function exited(ctx: Pick<ActionContext, 'host' | 'record'>, id: string, exit: ExitStatus, whileAway: boolean, cause?: string, now = Date.now()): Outcome {
  const rec = ctx.record(id);
  if (!rec || rec.reported !== 'running') return nothing();
  // a watcher's report of the run before this one (a stop and a start went ahead of it in the queue)
  if (rec.runningAt !== undefined && exit.exitedAt < rec.runningAt - 1) return nothing();
  const sig = exit.signal ? (exit.signal.startsWith('SIG') ? exit.signal : `SIG${exit.signal}`) : undefined;
  const code = sig ? 128 + (signalNumber(sig) ?? 0) : exit.code;
  const again = shouldRestart(rec.spec?.restartPolicy, code, rec.restartCount ?? 0, rec.stopped === true);
  const backoffMs = again ? nextBackoff(rec.backoffMs ?? 0, rec.runningAt ? exit.exitedAt - rec.runningAt : 0) : 0;
  const restartAt = now + backoffMs;
  return {
    logsEnd: id,
    record: { id, patch: { reported: 'exited', ...(again ? { backoffMs, restartAt } : { restartAt: undefined }) } },
    events: [{ type: 'ContainerExited', entity: id, cause: cause ?? rec.requestId, data: {
      exitCode: code, ...(sig ? { signal: sig } : {}), oomKilled: ctx.host.oomKilled(id), exitedAt: exit.exitedAt,
      ...(whileAway ? { whileAway } : {}), ...(again ? { restartInMs: backoffMs } : {}),
    } }],
    ...(again ? { restartAt: { id, at: restartAt } } : {}),
    ...(rec.spec?.autoRemove ? { next: () => removal(ctx as ActionContext, id, 'auto-remove on exit', rec.requestId) } : {}),
  };
}

/** tsctl create: everything a start needs is made on this host, nothing runs. */
async function prepare(ctx: ActionContext, s: ContainerDesired & { event: { type: 'ContainerRequested' } }, base: { lastSeq: number; requestId: string; spec: NonNullable<ContainerRecord['spec']>; owner: string }): Promise<Outcome> {
  const e = s.event, id = e.entity;
  try {
    const { ip } = await ctx.host.create(id, e.data.spec, false);
    return {
      record: { id, set: { ...base, reported: 'created' } },
      events: [{ type: 'ContainerCreated', entity: id, data: { ...(ip ? { ip } : {}) }, cause: e.id }],
    };
  } catch (err) {
    const ce = err instanceof ContainerError ? err : new ContainerError((err as Error).message, id);
    return {
      record: { id, set: { ...base, reported: 'failed' } },
      events: [{ type: 'ContainerFailed', entity: id, data: { error: ce.message.slice(0, 4000), exitCode: ce.exitCode }, cause: e.id }],
    };
  }
}

/**
 * Starts a created or exited container again (tsctl start, or restart after its stop): a user's
 * start resets the restart policy (its count, its back-off, a stop). A running or failed one is refused.
 */
async function startAgain(ctx: ActionContext, id: string, rec: ContainerRecord, cause: string, receivedAt: number, s: StoredEvent & { event: DesiredEvent }): Promise<Outcome> {
  const applied = { id, patch: { lastSeq: s.seq } };
  if (rec.reported === 'running' || ctx.host.status(id).state === 'running') return merge({ events: [], record: applied }, rejected(s, `container ${id.slice(0, 12)} is already running`));
  if (rec.reported === 'failed') return merge({ events: [], record: applied }, rejected(s, `container ${id.slice(0, 12)} failed to start and has nothing prepared: remove it and run it anew`));
  return launch(ctx, id, cause, receivedAt, { lastSeq: s.seq, stopped: false, restartCount: 0, backoffMs: 0, restartAt: undefined }, undefined, (reason) => merge({ events: [], record: applied }, rejected(s, reason)));
}

/** A start the restart policy asked for (the reconciler's timer, or the agent's start), once its time has come. */
export async function restartDue(ctx: ActionContext, id: string, now = Date.now()): Promise<Outcome> {
  const rec = ctx.record(id);
  if (!rec || rec.reported !== 'exited' || rec.restartAt === undefined || rec.stopped) return nothing();
  if (rec.restartAt > now + 5) return { events: [], restartAt: { id, at: rec.restartAt } }; // an early timer: wait on
  const count = (rec.restartCount ?? 0) + 1;
  return launch(ctx, id, rec.requestId, now, { restartCount: count, restartAt: undefined }, count, (reason) => ({
    record: { id, patch: { reported: 'failed', restartAt: undefined } },
    events: [{ type: 'ContainerFailed', entity: id, data: { error: reason.slice(0, 4000), exitCode: 125 }, cause: rec.requestId }],
  }));
}

async function launch(ctx: ActionContext, id: string, cause: string, receivedAt: number, patch: Partial<ContainerRecord>, restartCount: number | undefined, failed: (reason: string) => Outcome): Promise<Outcome> {
  try {
    const { pid, runningAt, logFrom } = await ctx.host.start(id, ctx.record(id)?.spec);
    return {
      follow: id, followFrom: logFrom, watch: id,
      record: { id, patch: { ...patch, reported: 'running', pid, runningAt } },
      events: [{ type: 'ContainerStarted', entity: id, data: { pid, receivedAt, runningAt, ...(restartCount ? { restartCount } : {}) }, cause }],
    };
  } catch (err) {
    return failed((err as Error).message);
  }
}

/** `volumes`: rm -v or --rm, the container's anonymous volumes go too (one another container uses stays, as docker's). */
export async function removal(ctx: Pick<ActionContext, 'host' | 'record' | 'volumes'>, id: string, reason: string, cause: string, volumes = reason !== 'requested'): Promise<Outcome> {
  // an auto-remove goes ahead of waiting removals: its `run --rm` client waits on it alone
  await ctx.host.remove(id, reason !== 'requested');
  const gone = volumes && ctx.volumes ? await dropAnonymous(ctx.volumes, id, ctx.record(id)?.spec?.mounts) : [];
  return {
    unwatch: id, record: { id, patch: { reported: 'removed' } },
    // the volumes' first: a client that waits for ContainerRemoved finds them gone from the log
    events: [...gone.map((name) => ({ type: 'VolumeRemoved' as const, entity: volumeEntity(name), data: { name }, cause })),
      { type: 'ContainerRemoved', entity: id, data: { reason }, cause }],
  };
}

/** Removes the anonymous volumes of container `id`'s mounts; the names removed. */
export async function dropAnonymous(volumes: Pick<NodeVolumes, 'remove'>, id: string, mounts: VolumeMount[] | undefined): Promise<string[]> {
  const gone: string[] = [];
  for (const name of anonymousOf(mounts)) {
    try { await volumes.remove(name, id); gone.push(name); } catch { /* in use by another container: kept, as docker keeps it */ }
  }
  return gone;
}

/** `a` then `b`: events in order, patches combined, the later `next` wins. */
function merge(a: Outcome, b: Outcome): Outcome {
  const ra = a.record, rb = b.record;
  let record = rb ?? ra;
  if (ra && rb && ra.id === rb.id) {
    record = 'set' in rb ? rb : 'set' in ra ? { id: ra.id, set: { ...ra.set, ...rb.patch } } : { id: ra.id, patch: { ...ra.patch, ...rb.patch } };
  }
  return {
    ...a, ...b, events: [...a.events, ...b.events],
    ...(record ? { record } : {}),
    ...(b.seen ?? a.seen ? { seen: b.seen ?? a.seen } : {}),
  };
}
