// Service commands: service create, ls, ps, inspect, scale, rm (as docker service).
import { controllerApi as capi, type ServiceCreateRequest } from '../../shared/api/controller.js';
import type { TaskTemplate } from '../../shared/events.js';
import { MAX_REPLICAS, SERVICE_NAME_RE } from '../../shared/schema.js';
import type { Actions, RunOpts, ServiceCreateOpts } from '../program.js';
import { api, CliError } from '../client.js';
import { ago, table } from '../format.js';
import { limitsFromFlags } from '../limits-flags.js';
import { constraintsFlag, parseDuration, parsePort } from '../requests.js';
import { each, json, me, nc, out } from '../session.js';

/** A user's value in a one-line message: quoted, escaped, cut short. */
const q = (v: string, n = 80): string => JSON.stringify(v.slice(0, n));

/** A whole number flag within [0, max]; a one-line error naming the flag otherwise. */
function count(v: string, flag: string, max: number): number {
  if (!/^\d{1,16}$/.test(v)) throw new CliError(`invalid ${flag} ${q(v, 40)}: a whole number, 0 to ${max}`);
  const n = Number(v);
  if (n > max) throw new CliError(`invalid ${flag} ${v.slice(0, 40)}: at most ${max}`);
  return n;
}

/** The create request the flags say; pure. Every bad flag is a CliError naming it. */
export function serviceCreateRequest(image: string, cmd: string[], o: ServiceCreateOpts, user: string): ServiceCreateRequest {
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
  const task: TaskTemplate = {
    image, ...(cmd.length ? { args: cmd } : {}), ...(o.env.length ? { env: o.env } : {}), ...(o.workdir ? { workdir: o.workdir } : {}),
    ...(o.network ? { network: o.network } : {}), ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    ...(resources ? { resources } : {}), ...(ports.length ? { ports } : {}),
  };
  return {
    name: o.name, task, user,
    ...(o.mode ? { mode: o.mode } : {}),
    ...(o.replicas !== undefined ? { replicas: count(o.replicas, '--replicas', MAX_REPLICAS) } : {}),
    ...(constraints.length ? { constraints } : {}),
    ...(o.restartCondition ? { restartCondition: o.restartCondition } : {}),
    ...(o.restartMaxAttempts !== undefined ? { restartMaxAttempts: count(o.restartMaxAttempts, '--restart-max-attempts', 1e6) } : {}),
    ...(o.restartDelay !== undefined ? { restartDelayMs: o.restartDelay === '0' ? 0 : parseDuration(o.restartDelay, '--restart-delay') } : {}),
  };
}

/** `web=3` → the service and its count; a one-line error otherwise. */
export function scalePair(pair: string): { ref: string; replicas: number } {
  const i = pair.lastIndexOf('=');
  if (i <= 0) throw new CliError(`invalid ${q(pair, 80)}: use SERVICE=REPLICAS, e.g. web=3`);
  return { ref: pair.slice(0, i), replicas: count(pair.slice(i + 1), `replica count for ${pair.slice(0, Math.min(i, 63))}`, MAX_REPLICAS) };
}

export const serviceCommands: Pick<Actions, 'serviceCreate' | 'serviceLs' | 'servicePs' | 'serviceInspect' | 'serviceScale' | 'serviceRm'> = {
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
      const current = t.state === 'exited' ? `Exited (${t.exitCode ?? -1}) ${ago(t.createdAt ?? Date.now())}` : `${t.state[0]!.toUpperCase()}${t.state.slice(1)} ${ago(t.createdAt ?? Date.now())}`;
      const desired = t.desired === 'removed' ? 'Shutdown' : t.desired === 'stopped' ? 'Shutdown' : 'Running';
      return [t.id!.slice(0, 12), name, t.node ?? '', desired, current, (t.error ?? '').slice(0, 60)];
    })));
  },

  async serviceInspect(refs) {
    const c = await nc();
    const list: unknown[] = [];
    for (const ref of refs) list.push(await api(c, capi.serviceInspect, { ref }));
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
