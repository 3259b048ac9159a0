// Service verbs: create, ls, ps, inspect, scale, rm. They only write what is wanted
// (ServiceCreated/Updated/Removed); the tasks are the reconciler's (controller/services.ts).
import { randomBytes } from 'node:crypto';
import { controllerApi as api, type ServiceCreateRequest, type ServiceListEntry, type ServiceTaskRow, type ServiceUpdateRequest, type UpdatePolicyRequest } from '../../shared/api/controller.js';
import type { RestartCondition, ServiceSpec, TaskTemplate, UpdateConfig } from '../../shared/events.js';
import { own, type ClusterView, type ServiceView } from '../../shared/reducer.js';
import { MAX_REPLICAS, SERVICE_NAME_RE } from '../../shared/schema.js';
import { parseConstraints } from '../../shared/constraints.js';
import { MAX_PLACEMENT_PREFS, PlacementPrefError, parsePlacementPrefs } from '../../shared/placement-prefs.js';
import { validateResources } from '../../shared/limits.js';
import { subjects } from '../../shared/subjects.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { conflict, invalid, notFound } from '../../shared/rpc.js';
import { bindsAllowed, checked, limitsOk, userOf, type ApiContext } from './context.js';
import { constraintsOk } from './containers.js';
import { BUILTIN_NETWORKS } from './networks.js';
import { mountProblem, type VolumeMount } from '../../shared/volumes.js';
import { live, tasksByService, wantedSlots } from '../services.js';
import { DEFAULT_UPDATE, versionOf } from '../rolling.js';

/** A policy as asked over the one the service had (docker's defaults at first); checked whole. */
export function policyOf(base: UpdateConfig | undefined, r: UpdatePolicyRequest | undefined, flag: 'update' | 'rollback'): UpdateConfig {
  const p = { ...(base ?? DEFAULT_UPDATE), ...Object.fromEntries(Object.entries(r ?? {}).filter(([, v]) => v !== undefined)) } as UpdateConfig;
  if (!(p.maxFailureRatio >= 0 && p.maxFailureRatio <= 1)) throw invalid(`invalid --${flag}-max-failure-ratio ${q(p.maxFailureRatio, 20)}: a number from 0 to 1`);
  if (!Number.isInteger(p.parallelism) || p.parallelism < 0 || p.parallelism > MAX_REPLICAS) throw invalid(`invalid --${flag}-parallelism ${q(p.parallelism, 20)}: a whole number, 0 (all at once) to ${MAX_REPLICAS}`);
  return p;
}

/** A service by name, id or unique id prefix. */
export function serviceOf(view: ClusterView, ref: string): ServiceView {
  const all = Object.values(view.services ?? {});
  const hit = all.find((s) => s.spec.name === ref) ?? own(view.services ?? {}, ref)
    ?? (/^[0-9a-f]{1,24}$/.test(ref) ? (() => { const m = all.filter((s) => s.id.startsWith(ref)); return m.length === 1 ? m[0] : undefined; })() : undefined);
  if (!hit) throw notFound(`no such service ${q(ref, 80)} (tsctl service ls lists them)`);
  return hit;
}

/** A caller's value in a one-line message: quoted, escaped, cut short. */
const q = (v: unknown, n = 80): string => JSON.stringify(String(v).slice(0, n));

const CONDITIONS: readonly RestartCondition[] = ['none', 'on-failure', 'any'];

/** The spec a create request asks for, each bad field a one-line error naming its flag. Pure but for the view it reads. */
export function serviceSpec(view: ClusterView, r: ServiceCreateRequest): ServiceSpec {
  if (!SERVICE_NAME_RE.test(r.name)) throw invalid(`invalid --name ${q(r.name, 80)}: letters, digits, _ and -, starting with a letter or digit, at most 63 (no dots or slashes: a task is <name>.<slot>.<n>)`);
  const mode = r.mode ?? 'replicated';
  if (mode !== 'replicated' && mode !== 'global') throw invalid(`invalid --mode ${q(mode, 40)}: replicated or global`);
  if (mode === 'global' && r.replicas !== undefined) throw invalid('--replicas has no meaning with --mode global (one task per eligible node)');
  const replicas = mode === 'global' ? 0 : r.replicas ?? 1;
  if (replicas > MAX_REPLICAS) throw invalid(`invalid --replicas ${replicas}: at most ${MAX_REPLICAS}`);
  const condition = (r.restartCondition ?? 'any') as RestartCondition;
  if (!CONDITIONS.includes(condition)) throw invalid(`invalid --restart-condition ${q(String(r.restartCondition), 40)}: none, on-failure or any`);
  if ((r.restartMaxAttempts ?? 0) > 1e6) throw invalid(`invalid --restart-max-attempts ${r.restartMaxAttempts}: at most 1000000 (0: no limit)`);
  if ((r.restartDelayMs ?? 0) > 86_400_000) throw invalid(`invalid --restart-delay ${r.restartDelayMs} ms: at most 24h`);
  if (r.constraints && r.constraints.length) constraintsOk(r.constraints);
  const prefs = r.placementPrefs?.length ? placementPrefsOk(r.placementPrefs) : undefined;
  taskOk(view, r.task);
  const constraints = r.constraints?.length ? parseConstraints(r.constraints).map((c) => c.text) : undefined;
  return checked('ServiceCreated', {
    spec: {
      name: r.name, mode, replicas, task: r.task, ...(constraints ? { constraints } : {}), ...(prefs ? { placementPrefs: prefs } : {}),
      restart: { condition, maxAttempts: r.restartMaxAttempts ?? 0, delayMs: r.restartDelayMs ?? 5000 },
      ...(r.update ? { update: policyOf(undefined, r.update, 'update') } : {}),
      ...(r.rollback ? { rollback: policyOf(undefined, r.rollback, 'rollback') } : {}),
      ...(r.stopGraceS !== undefined ? { stopGraceS: r.stopGraceS } : {}),
    }, user: 'x',
  }).spec;
}

/** A task template's references and limits, as create and update check them. */
function taskOk(view: ClusterView, task: TaskTemplate): void {
  const image = own(view.images, task.image);
  if (!image) throw notFound(`no such image ${q(task.image, 80)} (tsctl image ls lists them)`);
  const network = task.network ?? 'bridge';
  if (network.startsWith('container:')) throw invalid(`--network ${network.slice(0, 80)} is not for services: a task may run on any node`);
  if (!BUILTIN_NETWORKS.includes(network) && !own(view.networks, network)) throw notFound(`no such network ${q(network, 80)} (tsctl network ls lists them)`);
  if ((task.ports?.length ?? 0) && (network === 'host' || network === 'none')) throw invalid(`-p has no meaning with --network ${network}: publish ports on bridge networks only`);
  if (task.resources) limitsOk(() => validateResources(task.resources!));
  if (task.mounts) {
    const why = mountProblem(task.mounts);
    if (why) throw invalid(why);
    // every task names its own: a name given here would be one volume for all of them
    if (task.mounts.some((m) => m.anonymous && m.source !== undefined)) throw invalid('an anonymous volume of a service has no name: each task gets its own');
  }
}

const envKey = (e: string): string => e.slice(0, Math.max(0, e.indexOf('=')));

/** The spec a service update asks for, over the service's current one; each bad field a one-line error. Pure but for the view it reads. */
export function updatedSpec(view: ClusterView, svc: ServiceView, r: ServiceUpdateRequest): ServiceSpec {
  const old = svc.spec, t: TaskTemplate = { ...old.task };
  if (r.image !== undefined) t.image = r.image;
  if (r.args !== undefined) { if (r.args.length) t.args = r.args; else delete t.args; }
  if (r.workdir !== undefined) { if (!r.workdir.startsWith('/')) throw invalid(`invalid --workdir ${q(r.workdir)}: the working directory must be an absolute path`); t.workdir = r.workdir; }
  if (r.entrypoint !== undefined) t.entrypoint = r.entrypoint;
  if (r.envAdd?.length || r.envRm?.length) {
    for (const e of r.envAdd ?? []) if (!/^[^=\0]+=/.test(e)) throw invalid(`invalid --env-add ${q(e)}: use KEY=VALUE`);
    for (const k of r.envRm ?? []) if (!/^[^=\0]+$/.test(k)) throw invalid(`invalid --env-rm ${q(k)}: a variable's name`);
    const drop = new Set([...(r.envRm ?? []), ...(r.envAdd ?? []).map(envKey)]);
    const env = [...(t.env ?? []).filter((e) => !drop.has(envKey(e))), ...(r.envAdd ?? [])];
    if (env.length) t.env = env; else delete t.env;
  }
  if (r.resources) t.resources = { ...(t.resources ?? {}), ...r.resources };
  if (r.mountRm?.length || r.mountAdd?.length) {
    const gone = new Set([...(r.mountRm ?? []), ...(r.mountAdd ?? []).map((m) => m.target)]);
    const missing = (r.mountRm ?? []).find((target) => !(t.mounts ?? []).some((m) => m.target === target));
    if (missing !== undefined) throw invalid(`invalid --mount-rm ${q(missing)}: service ${old.name} mounts nothing there`);
    const mounts = [...(t.mounts ?? []).filter((m) => !gone.has(m.target)), ...(r.mountAdd ?? [])];
    if (mounts.length) t.mounts = mounts; else delete t.mounts;
  }
  taskOk(view, t);
  if (r.replicas !== undefined) {
    if (old.mode === 'global') throw invalid(`--replicas has no meaning for global service ${old.name}`);
    if (r.replicas > MAX_REPLICAS) throw invalid(`invalid --replicas ${r.replicas}: at most ${MAX_REPLICAS}`);
  }
  let prefs = old.placementPrefs ?? [];
  if (r.placementPrefRm?.length) { const rm = new Set(placementPrefsOk(r.placementPrefRm)); prefs = prefs.filter((p) => !rm.has(p)); }
  if (r.placementPrefAdd?.length) prefs = [...new Set([...prefs, ...placementPrefsOk(r.placementPrefAdd)])];
  if (prefs.length > MAX_PLACEMENT_PREFS) throw invalid(`invalid --placement-pref-add: a service has at most ${MAX_PLACEMENT_PREFS} preferences`);
  const { placementPrefs: _was, ...rest } = old;
  const spec: ServiceSpec = {
    ...rest, task: t, ...(prefs.length ? { placementPrefs: prefs } : {}), ...(r.replicas !== undefined ? { replicas: r.replicas } : {}),
    ...(r.update ? { update: policyOf(old.update, r.update, 'update') } : {}),
    ...(r.rollback ? { rollback: policyOf(old.rollback, r.rollback, 'rollback') } : {}),
    ...(r.stopGraceS !== undefined ? { stopGraceS: r.stopGraceS } : {}),
  };
  return checked('ServiceUpdateStarted', { spec, policy: spec.update ?? DEFAULT_UPDATE, user: 'x' }).spec;
}

/** What service ps shows: per wanted slot its tasks, newest first, or why it has none. */
export function serviceTasks(view: ClusterView, svc: ServiceView): ServiceTaskRow[] {
  const tasks = (tasksByService(view).get(svc.id) ?? []).sort((a, b) => b.spec.service!.task - a.spec.service!.task);
  let wanted: string[];
  try { wanted = wantedSlots(view, svc.spec.mode, svc.spec.replicas, parseConstraints(svc.spec.constraints ?? [])); } catch { wanted = []; }
  const rows: ServiceTaskRow[] = [];
  const slots = [...new Set([...wanted, ...tasks.map((t) => t.spec.service!.slot)])];
  const short = (slot: string) => `${svc.spec.name}.${slot}`;
  for (const slot of slots) {
    const mine = tasks.filter((t) => t.spec.service!.slot === slot);
    if (wanted.includes(slot) && !mine.some(live)) {
      rows.push({ slot, name: short(slot), state: 'pending', reason: svc.pending?.[slot] ?? (mine.length ? 'restart policy: not started again' : 'waiting to be placed') });
    }
    for (const t of mine) {
      rows.push({
        slot, task: t.spec.service!.task, name: short(slot), id: t.id, node: t.node, state: t.state, desired: t.desired, createdAt: t.createdAt,
        attempt: t.spec.service!.attempt, version: versionOf(t), ...(t.error ? { error: t.error } : {}), ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
      });
    }
  }
  return rows;
}

export function serviceVerbs(ctx: ApiContext): Bound[] {
  // a viewer's grants already leave out these verbs; the check here holds for a hand-made request too
  const mayWrite = (r: { user?: string }) => {
    if (ctx.roleOf && ctx.roleOf(userOf(r)) === 'viewer') throw invalid('permission denied: a viewer may not change services');
  };
  // said at create or update, not first at each task's placement (which checks it again as the service's creator)
  const mayBind = (r: { user?: string }, mounts: VolumeMount[] | undefined) => bindsAllowed(ctx, r, mounts, (m) => `--mount type=bind,source=${m.source}`);
  /**
   * Appends the new spec; the reconciler rolls it over the tasks. Fenced by a claim named
   * after the service's last event: of two controllers (or two callers) that start an update
   * from the same state, one does; the other is refused and may ask again.
   */
  const start = async (svc: ServiceView, spec: ServiceSpec, policy: UpdateConfig, user: string, rollback: boolean, force = false) => {
    if (ctx.claim) await ctx.claim('service', `${svc.id}.u${svc.lastSeq}`, svc.id);
    const { seq } = await ctx.append(subjects.service(svc.id), 'ServiceUpdateStarted', svc.id,
      checked('ServiceUpdateStarted', { spec, policy, user, ...(rollback ? { rollback: true, reason: `rollback asked by ${user}` } : {}), ...(force ? { force: true } : {}) }));
    await ctx.waitFor(seq);
    return { id: svc.id, name: spec.name, version: own(ctx.view().services ?? {}, svc.id)?.version ?? 0 };
  };
  return [
    bind(api.serviceCreate, async (r) => {
      mayWrite(r);
      const view = ctx.view();
      const spec = serviceSpec(view, r);
      mayBind(r, spec.task.mounts);
      if (Object.values(view.services ?? {}).some((s) => s.spec.name === spec.name)) throw conflict(`service "${spec.name}" already exists (tsctl service ls lists them)`);
      const id = randomBytes(12).toString('hex');
      // two controllers that both believe they lead cannot both make it (controller/lease.ts)
      if (ctx.claim) await ctx.claim('service', spec.name, id);
      const { seq } = await ctx.append(subjects.service(id), 'ServiceCreated', id, checked('ServiceCreated', { spec, user: userOf(r) }));
      await ctx.waitFor(seq);
      return { id, name: spec.name };
    }),
    bind(api.serviceLs, () => {
      const view = ctx.view();
      const tasks = tasksByService(view);
      return Object.values(view.services ?? {}).sort((a, b) => (a.spec.name < b.spec.name ? -1 : 1)).map((s): ServiceListEntry => {
        let want = s.spec.replicas;
        if (s.spec.mode === 'global') try { want = wantedSlots(view, 'global', 0, parseConstraints(s.spec.constraints ?? [])).length; } catch { want = 0; }
        return {
          id: s.id, name: s.spec.name, mode: s.spec.mode, replicas: want, image: s.spec.task.image, ports: s.spec.task.ports ?? [],
          running: (tasks.get(s.id) ?? []).filter((c) => live(c) && c.state === 'running').length, pending: Object.keys(s.pending ?? {}).length,
        };
      });
    }),
    bind(api.servicePs, (r) => { const v = ctx.view(); return serviceTasks(v, serviceOf(v, r.ref)); }),
    bind(api.serviceInspect, (r) => serviceOf(ctx.view(), r.ref)),
    bind(api.serviceScale, async (r) => {
      mayWrite(r);
      const svc = serviceOf(ctx.view(), r.ref);
      if (svc.spec.mode === 'global') throw invalid(`service ${svc.spec.name} is global (one task per eligible node): scale applies to replicated services`);
      if (r.replicas > MAX_REPLICAS) throw invalid(`invalid replica count ${r.replicas}: at most ${MAX_REPLICAS}`);
      const { seq } = await ctx.append(subjects.service(svc.id), 'ServiceUpdated', svc.id, checked('ServiceUpdated', { replicas: r.replicas, user: userOf(r) }));
      await ctx.waitFor(seq);
      return { id: svc.id, name: svc.spec.name, replicas: r.replicas };
    }),
    bind(api.serviceUpdate, async (r) => {
      mayWrite(r);
      const view = ctx.view();
      const svc = serviceOf(view, r.ref);
      const spec = updatedSpec(view, svc, r);
      mayBind(r, r.mountAdd);
      return start(svc, spec, spec.update ?? DEFAULT_UPDATE, userOf(r), false, r.force === true);
    }),
    bind(api.serviceRollback, async (r) => {
      mayWrite(r);
      const svc = serviceOf(ctx.view(), r.ref);
      if (!svc.previous) throw invalid(`service ${svc.spec.name} has no previous spec to roll back to (it was never updated)`);
      return start(svc, svc.previous, policyOf(svc.spec.rollback, r.rollback, 'rollback'), userOf(r), true);
    }),
    bind(api.serviceRm, async (r) => {
      mayWrite(r);
      const svc = serviceOf(ctx.view(), r.ref);
      // its tasks go with it: the reconciler removes every task whose service is gone
      const { seq } = await ctx.append(subjects.service(svc.id), 'ServiceRemoved', svc.id, checked('ServiceRemoved', { user: userOf(r) }));
      await ctx.waitFor(seq);
      return { id: svc.id, name: svc.spec.name };
    }),
  ];
}

/** A request's placement preferences, normalised; a bad one is the caller's one-line error. */
function placementPrefsOk(list: readonly string[]): string[] {
  try { return parsePlacementPrefs(list).map((p) => p.text); } catch (err) {
    if (err instanceof PlacementPrefError) throw invalid(err.message);
    throw err;
  }
}
