// What every API handler works with: the folded view, the controller's appender, the
// keeper's waits and the image store. A port, so handlers are unit-tested with fakes.
import type { ClaimKind, EventData, EventType } from '../../shared/events.js';
import type { ArchiveReply } from '../../shared/api/controller.js';
import { findContainer, type ClusterView, type ContainerView } from '../../shared/reducer.js';
import { payloadChecks } from '../../shared/schema.js';
import { ValidationError } from '../../shared/validate.js';
import { invalid, notFound, RpcError, type Verb } from '../../shared/rpc.js';
import { LimitError } from '../../shared/limits.js';
import { subjects } from '../../shared/subjects.js';
import { desiredExpect } from '../lease.js';
import type { VolumeMount } from '../../shared/volumes.js';
import type { Strategy } from '../placement.js';

export interface ApiContext {
  view(): ClusterView;
  append<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T]): Promise<{ seq: number; id: string }>;
  /** Resolves once the view includes stream position `seq`. */
  waitFor(seq: number): Promise<void>;
  /** Resolves when `cond` holds after some fold; rejects after `timeoutMs`. */
  until(cond: () => boolean, timeoutMs: number): Promise<void>;
  /**
   * Takes a name (`kind` container or network) for `entity` in the log before the event that
   * uses it, so that two controllers that both believe they lead cannot both take it
   * (controller/lease.ts): a 'conflict' RpcError when another controller took it first.
   * Absent: names are checked against the view only (tests with one writer).
   */
  claim?(kind: ClaimKind, key: string, entity: string): Promise<void>;
  /**
   * Appends fenced on `subject`: it must still end at position `expect` (0: nothing there),
   * else another controller wrote there since this view's last: a 'conflict' RpcError (and
   * this controller stops leading). Absent: desires go through append (tests with one writer).
   */
  appendFenced?<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T], expect: number): Promise<{ seq: number; id: string }>;
  /** Why node `node` is not heard from now (its heartbeats stopped, no NodeDown yet), if it is not: placement passes it over when it can. */
  silent?(node: string): string | undefined;
  /** How placement ranks the nodes that can take a container (controller --strategy); absent: spread. */
  strategy?: Strategy;
  /** The stream's first position (a fenced expectation below it is 0: purged). Absent: 1. */
  firstSeq?(): number;
  /** Makes `caller` (a join token's identity) node `node`; its credentials, as JSON. Absent where the controller has no trust files. */
  join?(caller: string, node: string): Promise<string>;
  /** Calls a verb of node `node`'s agent (exec); a node that does not answer is an 'unavailable' RpcError. */
  agent?<Req, Rep>(node: string, v: Verb<Req, Rep>, req: Req, timeoutMs?: number): Promise<Rep>;
  /**
   * Whether `user` may see containers' environment values (where secrets go): viewers may not,
   * as they may not read the log that carries them. Absent: everyone may (no trust files).
   */
  seesSecrets?(user: string): boolean;
  /** The role of an authenticated user (admin, operator, viewer); absent: no trust files, every caller is trusted. */
  roleOf?(user: string): string | undefined;
  /** Seals the log's positions below `before` into the archive (shared/nats/archive.ts). Absent without trust files. */
  archive?(before: number): Promise<ArchiveReply>;
  images: {
    /** nats.js's: a deleted object's marker too (`deleted`, no bytes, no digest). */
    info(key: string): Promise<{ size: number; digest: string; metadata?: Record<string, string>; deleted?: boolean } | null>;
    delete(key: string): Promise<unknown>;
    /** The object's bytes, or null when absent; more than `max` bytes is an error. */
    read?(key: string, max: number): Promise<Buffer | null>;
    /** Every live object's name, size and put time (ISO); absent where the context has no store to list (tests). */
    list?(): Promise<{ name: string; size: number; mtime: string }[]>;
  };
}

/**
 * Appends a desire for container `c` on its desired subject, fenced (controller/lease.ts
 * desiredExpect) where the context can: what stop, kill, rm, update, pause and rename use.
 */
export function appendDesire<T extends EventType>(ctx: ApiContext, c: ContainerView, type: T, data: EventData[T]): Promise<{ seq: number; id: string }> {
  const subject = subjects.desired(c.node, c.id);
  const expect = desiredExpect(c, ctx.firstSeq?.() ?? 1);
  if (ctx.appendFenced && expect !== undefined) return ctx.appendFenced(subject, type, c.id, data, expect);
  return ctx.append(subject, type, c.id, data);
}

export function containerOf(view: ClusterView, ref: string): ContainerView {
  if (ref === '') throw invalid('a container name or id is needed');
  const c = findContainer(view, ref);
  if (!c) throw notFound(`no such container "${ref}" (tsctl ps -a lists them)`);
  return c;
}

/** Checks an event payload before it is appended; a bad value is the caller's error. */
export function checked<T extends EventType>(type: T, v: unknown): EventData[T] {
  try {
    return (payloadChecks[type] as (v: unknown, f: string) => EventData[T])(v, '');
  } catch (err) {
    if (err instanceof ValidationError) throw invalid(`invalid request: ${err.message}`);
    throw err;
  }
}

/** Runs a limits check; its LimitError is the caller's error. */
export function limitsOk(f: () => unknown): void {
  try { f(); } catch (err) {
    if (err instanceof LimitError) throw invalid(err.message);
    throw err;
  }
}

export function nonEmpty(v: string | undefined, field: string): string {
  if (v === undefined || v === '') throw invalid(`${field} must be a non-empty string`);
  return v;
}

export const userOf = (r: { user?: string }): string => r.user ?? 'unknown';

/**
 * A host path in a container is the host itself (its /etc, its sockets): admins only, for run's
 * -v and --mount as for a service's. `flag` names the bind as the caller wrote it.
 */
export function bindsAllowed(ctx: ApiContext, r: { user?: string }, mounts: readonly VolumeMount[] | undefined, flag: (m: VolumeMount) => string): void {
  const bind = mounts?.find((m) => m.type === 'bind');
  if (bind && ctx.roleOf && ctx.roleOf(userOf(r)) !== 'admin') throw invalid(`permission denied: ${flag(bind)} mounts a host path, which only an admin may (named volumes and tmpfs need no more than an operator)`);
}

export { RpcError };

/** A container as a caller who may not see secrets sees it: environment names without values, health probes without their output. */
export function shown(ctx: ApiContext, r: object, c: ContainerView): ContainerView {
  // the dispatcher sets `user` on every request to the authenticated caller
  if (!ctx.seesSecrets || ctx.seesSecrets(userOf(r as { user?: string }))) return c;
  // a health probe's output is the container's output (which a viewer may not read either)
  const health = c.health && { ...c.health, log: c.health.log.map((p) => ({ ...p, output: '' })) };
  return { ...c, spec: { ...c.spec, env: c.spec.env.map((kv) => kv.split('=')[0]!) }, ...(health ? { health } : {}) };
}
