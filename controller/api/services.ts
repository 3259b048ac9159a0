// Service verbs: create, ls, ps, inspect, scale, rm. They only write what is wanted
// (ServiceCreated/Updated/Removed); the tasks are the reconciler's (controller/services.ts).
import { randomBytes } from 'node:crypto';
import { controllerApi as api, type ServiceCreateRequest, type ServiceListEntry, type ServiceTaskRow } from '../../shared/api/controller.js';
import type { RestartCondition, ServiceSpec } from '../../shared/events.js';
import { own, type ClusterView, type ServiceView } from '../../shared/reducer.js';
import { MAX_REPLICAS, SERVICE_NAME_RE } from '../../shared/schema.js';
import { parseConstraints } from '../../shared/constraints.js';
import { validateResources } from '../../shared/limits.js';
import { subjects } from '../../shared/subjects.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { conflict, invalid, notFound } from '../../shared/rpc.js';
import { checked, limitsOk, userOf, type ApiContext } from './context.js';
import { constraintsOk } from './containers.js';
import { BUILTIN_NETWORKS } from './networks.js';
import { live, tasksByService, wantedSlots } from '../services.js';

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
  const image = own(view.images, r.task.image);
  if (!image) throw notFound(`no such image ${q(r.task.image, 80)} (tsctl image ls lists them)`);
  const network = r.task.network ?? 'bridge';
  if (network.startsWith('container:')) throw invalid(`--network ${network.slice(0, 80)} is not for services: a task may run on any node`);
  if (!BUILTIN_NETWORKS.includes(network) && !own(view.networks, network)) throw notFound(`no such network ${q(network, 80)} (tsctl network ls lists them)`);
  if ((r.task.ports?.length ?? 0) && (network === 'host' || network === 'none')) throw invalid(`-p has no meaning with --network ${network}: publish ports on bridge networks only`);
  if (r.task.resources) limitsOk(() => validateResources(r.task.resources!));
  const constraints = r.constraints?.length ? parseConstraints(r.constraints).map((c) => c.text) : undefined;
  return checked('ServiceCreated', {
    spec: {
      name: r.name, mode, replicas, task: r.task, ...(constraints ? { constraints } : {}),
      restart: { condition, maxAttempts: r.restartMaxAttempts ?? 0, delayMs: r.restartDelayMs ?? 5000 },
    }, user: 'x',
  }).spec;
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
        attempt: t.spec.service!.attempt, ...(t.error ? { error: t.error } : {}), ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
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
  return [
    bind(api.serviceCreate, async (r) => {
      mayWrite(r);
      const view = ctx.view();
      const spec = serviceSpec(view, r);
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
