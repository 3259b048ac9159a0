// Service commands: service create, ls, ps, inspect, scale, rm, update, rollback, logs (as docker service).
import { controllerApi as capi, type ServiceCreateRequest, type ServiceUpdateRequest, type UpdatePolicyRequest } from '../../shared/api/controller.js';
import type { ServiceView } from '../../shared/reducer.js';
import type { NatsConnection } from 'nats';
import type { TaskTemplate } from '../../shared/events.js';
import { MAX_REPLICAS, SERVICE_NAME_RE } from '../../shared/schema.js';
import type { Actions, RollOpts, RunOpts, ServiceCreateOpts, ServiceUpdateOpts } from '../program.js';
import { serviceLogs } from '../service-logs.js';
import { api, CliError } from '../client.js';
import { ago, table } from '../format.js';
import { limitsFromFlags } from '../limits-flags.js';
import { constraintsFlag, parseDuration, parsePort } from '../requests.js';
import { PlacementPrefError, parsePlacementPrefs } from '../../shared/placement-prefs.js';
import { mountProblem, parseMountFlag, type VolumeMount } from '../../shared/volumes.js';
import { each, json, me, nc, out, write } from '../session.js';

/** A user's value in a one-line message: quoted, escaped, cut short. */
const q = (v: string, n = 80): string => JSON.stringify(v.slice(0, n));

/** A whole number flag within [0, max]; a one-line error naming the flag otherwise. */
function count(v: string, flag: string, max: number): number {
  if (!/^\d{1,16}$/.test(v)) throw new CliError(`invalid ${flag} ${q(v, 40)}: a whole number, 0 to ${max}`);
  const n = Number(v);
  if (n > max) throw new CliError(`invalid ${flag} ${v.slice(0, 40)}: at most ${max}`);
  return n;
}

/** A duration flag that may be 0 (--update-delay 0s); a one-line error naming the flag otherwise. */
function duration(v: string, flag: string): number {
  if (/^0(ms|s|m|h)?$/.test(v)) return 0;
  if (!/^\d{1,9}(ms|s|m|h|d)$/.test(v)) throw new CliError(`invalid ${flag} ${q(v, 40)}: a duration like 500ms, 10s or 5m`);
  const ms = parseDuration(v, flag);
  if (ms > 86_400_000) throw new CliError(`invalid ${flag} ${q(v, 40)}: at most 24h`);
  return ms;
}

/** --update-* (or --rollback-*) as typed → the policy fields they set; pure. */
export function policyFlags(o: RollOpts, k: 'update' | 'rollback'): UpdatePolicyRequest | undefined {
  const f = (n: string) => (o as Record<string, string | undefined>)[`${k}${n}`];
  const p: UpdatePolicyRequest = {};
  const par = f('Parallelism'), delay = f('Delay'), order = f('Order'), mon = f('Monitor'), act = f('FailureAction'), ratio = f('MaxFailureRatio');
  if (par !== undefined) p.parallelism = count(par, `--${k}-parallelism`, MAX_REPLICAS);
  if (delay !== undefined) p.delayMs = duration(delay, `--${k}-delay`);
  if (order !== undefined) {
    if (order !== 'stop-first' && order !== 'start-first') throw new CliError(`invalid --${k}-order ${q(order, 40)}: stop-first or start-first`);
    p.order = order;
  }
  if (mon !== undefined) p.monitorMs = duration(mon, `--${k}-monitor`);
  if (act !== undefined) {
    const ok = k === 'update' ? ['pause', 'continue', 'rollback'] : ['pause', 'continue'];
    if (!ok.includes(act)) throw new CliError(`invalid --${k}-failure-action ${q(act, 40)}: ${ok.join(', ')}`);
    p.failureAction = act as 'pause';
  }
  if (ratio !== undefined) {
    if (!/^(0(\.\d{1,6})?|1(\.0{1,6})?|\.\d{1,6})$/.test(ratio)) throw new CliError(`invalid --${k}-max-failure-ratio ${q(ratio, 40)}: a number from 0 to 1`);
    p.maxFailureRatio = Number(ratio);
  }
  return Object.keys(p).length ? p : undefined;
}

/** The update/rollback policies and grace period the flags say, as request fields; pure. */
function rollFields(o: RollOpts): Pick<ServiceCreateRequest, 'update' | 'rollback' | 'stopGraceS'> {
  const update = policyFlags(o, 'update'), rollback = policyFlags(o, 'rollback');
  let grace: number | undefined;
  if (o.stopGracePeriod !== undefined) {
    grace = duration(o.stopGracePeriod, '--stop-grace-period');
    if (grace % 1000) throw new CliError(`invalid --stop-grace-period ${q(o.stopGracePeriod, 40)}: whole seconds`);
    grace /= 1000;
  }
  return { ...(update ? { update } : {}), ...(rollback ? { rollback } : {}), ...(grace !== undefined ? { stopGraceS: grace } : {}) };
}

/** The update request the flags say; pure. Every bad flag is a CliError naming it. */
export function serviceUpdateRequest(ref: string, o: ServiceUpdateOpts, user: string): ServiceUpdateRequest {
  for (const e of o.envAdd ?? []) if (!/^[^=\0]+=/.test(e)) throw new CliError(`invalid --env-add ${q(e, 80)}: use KEY=VALUE`);
  for (const k of o.envRm ?? []) if (!/^[^=\0]+$/.test(k)) throw new CliError(`invalid --env-rm ${q(k, 80)}: a variable's name`);
  if (o.workdir !== undefined && !o.workdir.startsWith('/')) throw new CliError(`invalid -w ${q(o.workdir, 80)}: the working directory must be an absolute path`);
  if (o.image !== undefined && !o.image) throw new CliError('invalid --image "": an image name');
  const resources = limitsFromFlags(o as unknown as RunOpts);
  const args = o.args === undefined ? undefined : o.args.split(/\s+/).filter(Boolean);
  return {
    ref, user, ...(o.image !== undefined ? { image: o.image } : {}), ...(args ? { args } : {}),
    ...(o.envAdd?.length ? { envAdd: o.envAdd } : {}), ...(o.envRm?.length ? { envRm: o.envRm } : {}),
    ...(o.workdir !== undefined ? { workdir: o.workdir } : {}), ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    ...(resources ? { resources } : {}), ...(o.replicas !== undefined ? { replicas: count(o.replicas, '--replicas', MAX_REPLICAS) } : {}),
    ...(o.placementPrefAdd?.length ? { placementPrefAdd: prefsFlag(o.placementPrefAdd, '--placement-pref-add') } : {}),
    ...(o.placementPrefRm?.length ? { placementPrefRm: prefsFlag(o.placementPrefRm, '--placement-pref-rm') } : {}),
    ...(o.mountAdd?.length ? { mountAdd: mountsFlag(o.mountAdd, '--mount-add') } : {}), ...(o.mountRm?.length ? { mountRm: o.mountRm } : {}),
    ...(o.force ? { force: true } : {}),
    ...rollFields(o),
  };
}

/** --mount values (shared/volumes.ts), named in errors as `flag`; mounts that clash are one line too. */
function mountsFlag(list: readonly string[], flag: string): VolumeMount[] {
  let mounts: VolumeMount[];
  try { mounts = list.map(parseMountFlag); } catch (err) { throw new CliError((err as Error).message.replace('invalid --mount', `invalid ${flag}`)); }
  const clash = mountProblem(mounts);
  if (clash) throw new CliError(`invalid ${flag}: ${clash}`);
  return mounts;
}

/** --placement-pref values, checked and normalised (shared/placement-prefs.ts); a bad one is a one-line error naming `flag`. */
function prefsFlag(list: readonly string[], flag = '--placement-pref'): string[] {
  try { return parsePlacementPrefs(list).map((p) => p.text); } catch (err) {
    if (err instanceof PlacementPrefError) throw new CliError(err.message.replace('--placement-pref', flag));
    throw err;
  }
}

/**
 * As docker without --detach: waits until the update (or rollback) is done, saying each state
 * it reaches; a pause, or an update the failure action rolled back, is an error.
 */
async function untilRolled(c: NatsConnection, ref: string, rollback: boolean): Promise<void> {
  let last = '';
  for (;;) {
    const s: ServiceView = await api(c, capi.serviceInspect, { ref });
    const u = s.updateStatus;
    if (u && u.state !== last) { last = u.state; out(`${s.spec.name}: ${u.state.replace('_', ' ')}${u.message ? `: ${u.message}` : ''}`); }
    if (!u) return;
    if (u.state === 'completed' || (u.state === 'rollback_completed' && rollback)) return;
    if (u.state === 'rollback_completed') throw new CliError(`service ${s.spec.name} rolled back: ${u.reason ?? u.message}`);
    if (u.state === 'paused' || u.state === 'rollback_paused') throw new CliError(`service ${s.spec.name} ${u.message}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The create request the flags say; pure. Every bad flag is a CliError naming it. */
export function serviceCreateRequest(image: string, cmd: string[], o: ServiceCreateOpts & RollOpts, user: string): ServiceCreateRequest {
  if (!SERVICE_NAME_RE.test(o.name)) throw new CliError(`invalid --name ${q(o.name, 80)}: letters, digits, _ and -, starting with a letter or digit, at most 63 (no dots or slashes)`);
  if (o.mode !== undefined && o.mode !== 'replicated' && o.mode !== 'global') throw new CliError(`invalid --mode ${q(o.mode, 40)}: replicated or global`);
  if (o.mode === 'global' && o.replicas !== undefined) throw new CliError('--replicas has no meaning with --mode global (one task per eligible node)');
  for (const e of o.env) if (!/^[^=\0]+=/.test(e)) throw new CliError(`invalid -e ${q(e, 80)}: use KEY=VALUE`);
  if (o.workdir !== undefined && !o.workdir.startsWith('/')) throw new CliError(`invalid -w ${q(o.workdir, 80)}: the working directory must be an absolute path`);
  if (o.network !== undefined && !/^(bridge|host|none|[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63})$/.test(o.network)) throw new CliError(`invalid --network ${q(o.network, 80)}: bridge, host, none or a network name`);
  if (o.restartCondition !== undefined && !['any', 'on-failure', 'none'].includes(o.restartCondition)) throw new CliError(`invalid --restart-condition ${q(o.restartCondition, 40)}: any, on-failure or none`);
  const ports = o.publish.map(parsePort);
  const resources = limitsFromFlags(o as RunOpts);
  const constraints = constraintsFlag(o.constraint ?? []);
  const prefs = prefsFlag(o.placementPref ?? []);
  const task: TaskTemplate = {
    image, ...(cmd.length ? { args: cmd } : {}), ...(o.env.length ? { env: o.env } : {}), ...(o.workdir ? { workdir: o.workdir } : {}),
    ...(o.network ? { network: o.network } : {}), ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    ...(resources ? { resources } : {}), ...(ports.length ? { ports } : {}),
    ...(o.mount?.length ? { mounts: mountsFlag(o.mount, '--mount') } : {}),
  };
  return {
    name: o.name, task, user,
    ...(o.mode ? { mode: o.mode } : {}),
    ...(o.replicas !== undefined ? { replicas: count(o.replicas, '--replicas', MAX_REPLICAS) } : {}),
    ...(constraints.length ? { constraints } : {}),
    ...(prefs.length ? { placementPrefs: prefs } : {}),
    ...(o.restartCondition ? { restartCondition: o.restartCondition } : {}),
    ...(o.restartMaxAttempts !== undefined ? { restartMaxAttempts: count(o.restartMaxAttempts, '--restart-max-attempts', 1e6) } : {}),
    ...(o.restartDelay !== undefined ? { restartDelayMs: o.restartDelay === '0' ? 0 : parseDuration(o.restartDelay, '--restart-delay') } : {}),
    ...rollFields(o),
  };
}

/** `web=3` → the service and its count; a one-line error otherwise. */
export function scalePair(pair: string): { ref: string; replicas: number } {
  const i = pair.lastIndexOf('=');
  if (i <= 0) throw new CliError(`invalid ${q(pair, 80)}: use SERVICE=REPLICAS, e.g. web=3`);
  return { ref: pair.slice(0, i), replicas: count(pair.slice(i + 1), `replica count for ${pair.slice(0, Math.min(i, 63))}`, MAX_REPLICAS) };
}

export const serviceCommands: Pick<Actions, 'serviceCreate' | 'serviceLs' | 'servicePs' | 'serviceInspect' | 'serviceScale' | 'serviceRm' | 'serviceUpdate' | 'serviceRollback' | 'serviceLogs'> = {
  async serviceUpdate(ref, o) {
    const req = serviceUpdateRequest(ref, o, me());
    const c = await nc();
    const r = await api(c, capi.serviceUpdate, req);
    out(r.name);
    if (!o.detach) await untilRolled(c, r.id, false);
  },

  async serviceRollback(ref, o) {
    const rollback = policyFlags(o, 'rollback');
    const c = await nc();
    const r = await api(c, capi.serviceRollback, { ref, user: me(), ...(rollback ? { rollback } : {}) });
    out(r.name);
    if (!o.detach) await untilRolled(c, r.id, true);
  },

  async serviceLogs(ref, o) {
    const tail = o.tail === undefined || o.tail === 'all' ? undefined : count(o.tail, '--tail', 1e9);
    const c = await nc();
    const ac = new AbortController();
    if (o.follow) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => ac.abort());
    await serviceLogs(c, ref, { ...(o.follow ? { follow: true } : {}), ...(tail !== undefined ? { tail } : {}), signal: ac.signal, write: (s, t) => write(s, Buffer.from(t)) });
  },

  async serviceCreate(image, cmd, o) {
    const r = await api(await nc(), capi.serviceCreate, serviceCreateRequest(image, cmd, o, me()));
    out(r.id);
  },

  async serviceLs(o) {
    const list = await api(await nc(), capi.serviceLs, {});
    if (o.format === 'json') return out(JSON.stringify(list));
    if (o.quiet) return out(list.map((s) => s.name).join('\n'));
    out(table(['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'], list.map((s) => [
      s.id.slice(0, 12), s.name, s.mode, `${s.running}/${s.replicas}${s.pending ? ` (${s.pending} pending)` : ''}`, s.image,
      s.ports.map((p) => `*:${p.host}->${p.container}/${p.proto}`).join(', '),
    ])));
  },

  async servicePs(ref, o) {
    const rows = await api(await nc(), capi.servicePs, { ref });
    if (o.format === 'json') return out(JSON.stringify(rows));
    // as docker: the slot's history under its current task, older ones marked \_
    let prev = '';
    out(table(['ID', 'NAME', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR'], rows.map((t) => {
      const name = t.slot === prev ? ` \\_ ${t.name}` : t.name;
      prev = t.slot;
      if (t.state === 'pending') return ['', name, '', 'Running', 'Pending', t.reason ?? ''];
      const current = t.state === 'exited' && t.desired === 'stopped' ? `Shutdown ${ago(t.createdAt ?? Date.now())}`
        : t.state === 'exited' ? `Exited (${t.exitCode ?? -1}) ${ago(t.createdAt ?? Date.now())}` : `${t.state[0]!.toUpperCase()}${t.state.slice(1)} ${ago(t.createdAt ?? Date.now())}`;
      const desired = t.desired === 'removed' ? 'Shutdown' : t.desired === 'stopped' ? 'Shutdown' : 'Running';
      return [t.id!.slice(0, 12), name, t.node ?? '', desired, current, (t.error ?? '').slice(0, 60)];
    })));
  },

  async serviceInspect(refs) {
    const c = await nc();
    const list: unknown[] = [];
    for (const ref of refs) {
      const s = await api(c, capi.serviceInspect, { ref });
      const u = s.updateStatus;
      // docker's UpdateStatus beside the view's own fields, for scripts written against docker
      list.push(u ? { ...s, UpdateStatus: { State: u.state, StartedAt: new Date(u.startedAt).toISOString(), ...(u.completedAt ? { CompletedAt: new Date(u.completedAt).toISOString() } : {}), Message: u.message } } : s);
    }
    out(json(list));
  },

  async serviceScale(pairs) {
    const asks = pairs.map(scalePair);
    const c = await nc();
    for (const a of asks) {
      await api(c, capi.serviceScale, { ...a, user: me() });
      out(`${a.ref} scaled to ${a.replicas}`);
    }
  },

  async serviceRm(refs) {
    const c = await nc();
    await each(refs, (ref) => api(c, capi.serviceRm, { ref, user: me() }));
  },
};
