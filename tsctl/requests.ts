// Pure translation of parsed flags into API requests; every bad value is a CliError
// that names the flag and the fix.
import type { PortMapping, ResourceLimits } from '../shared/events.js';
import { PS_STATUSES, type PsFilter, type RunRequest } from '../shared/api/controller.js';
import { HOSTNAME_RE, NAME_RE } from '../shared/ids.js';
import { CONTAINER_LABEL_VALUE_MAX, CONTAINER_LABELS_MAX, GROUP_RE, LABEL_KEY_RE, USER_SPEC_RE } from '../shared/schema.js';
import { FlagError, parseCapability, parseDeviceFlag, parseSecurityOpt, parseUlimit, type SecurityOptions } from '../shared/security.js';
import { CliError } from './client.js';
import { mountProblem, parseMountFlag, parseTmpfsFlag, parseVolumeFlag, parseVolumesFrom, type VolumeMount } from '../shared/volumes.js';
import type { RunOpts } from './program.js';
import { localSize } from './terminal.js';
import { ConstraintError, parseConstraints } from '../shared/constraints.js';
import { hostFlagsRequest } from './host-flags.js';
import { lifecycleRequest } from './lifecycle-flags.js';
import { healthRequest } from './health-flags.js';

export function runRequest(id: string, image: string, cmd: string[], o: RunOpts, user: string, parseLimits: (o: RunOpts) => ResourceLimits | undefined,
  readProfile: (path: string) => string = () => { throw new CliError('reading a seccomp profile is not available here'); }): RunRequest & { id: string; autoRemove: boolean } {
  for (const e of o.env) if (!/^[^=\0]+=/.test(e)) throw new CliError(`invalid -e "${e}": use KEY=VALUE`);
  if (o.workdir !== undefined && !o.workdir.startsWith('/')) throw new CliError(`invalid -w "${o.workdir}": the working directory must be an absolute path`);
  if (o.hostname !== undefined && (o.hostname.length > 63 || !HOSTNAME_RE.test(o.hostname))) throw new CliError(`invalid --hostname "${o.hostname}": letters, digits, . and -, at most 63`);
  if (o.name !== undefined && !NAME_RE.test(o.name)) throw new CliError(`invalid --name "${o.name}": letters, digits, _ . -, starting with a letter or digit`);
  const network = o.network;
  if (network !== undefined && !/^(bridge|host|none|container:.+|[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63})$/.test(network)) throw new CliError(`invalid --network "${network}": bridge, host, none, container:<name|id> or a network name`);
  const ports = o.publish.map(parsePort);
  if ((ports.length || o.publishAll) && (network === 'host' || network === 'none' || network?.startsWith('container:'))) throw new CliError(`-p has no meaning with --network ${network}: publish ports on bridge networks only`);
  for (const [flag, v] of [['--pid', o.pid], ['--ipc', o.ipc]] as const) {
    if (v !== undefined && !/^(host|container:.{1,256})$/.test(v)) throw new CliError(`invalid ${flag} "${v}": host or container:<name|id>`);
  }
  if (o.uts !== undefined && o.uts !== 'host') throw new CliError(`invalid --uts "${o.uts}": host (the only other mode is the container's own)`);
  if (o.user !== undefined && !USER_SPEC_RE.test(o.user)) throw new CliError(`invalid --user "${o.user}": user[:group], names or numbers`);
  for (const g of o.groupAdd ?? []) if (!GROUP_RE.test(g)) throw new CliError(`invalid --group-add "${g}": a group name or number`);
  const resources = parseLimits(o);
  const security = securityOptions(o, readProfile);
  let mounts: VolumeMount[];
  try { mounts = [...(o.volume ?? []).map(parseVolumeFlag), ...(o.tmpfs ?? []).map(parseTmpfsFlag), ...(o.mount ?? []).map(parseMountFlag)]; } catch (err) { throw new CliError((err as Error).message); }
  const clash = mountProblem(mounts);
  if (clash) throw new CliError(clash);
  for (const v of o.volumesFrom ?? []) try { parseVolumesFrom(v); } catch (err) { throw new CliError((err as Error).message); }
  const constraints = constraintsFlag(o.constraint ?? []);
  const host = hostFlagsRequest(o, { ...(network !== undefined ? { network } : {}), ...(o.ipc !== undefined ? { ipcMode: o.ipc } : {}) });
  const lifecycle = lifecycleRequest(o);
  return {
    id, image, args: cmd, env: o.env, autoRemove: o.rm === true, ports, user,
    ...(o.name !== undefined ? { name: o.name } : {}), ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
    ...(o.workdir !== undefined ? { workdir: o.workdir } : {}), ...(network !== undefined ? { network } : {}),
    ...(resources ? { resources } : {}),
    ...(security ? { security } : {}),
    ...(mounts.length ? { mounts } : {}),
    ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    ...(o.pid !== undefined ? { pidMode: o.pid } : {}), ...(o.ipc !== undefined ? { ipcMode: o.ipc } : {}), ...(o.uts !== undefined ? { utsMode: o.uts } : {}),
    ...(o.user !== undefined ? { processUser: o.user } : {}), ...(o.groupAdd?.length ? { groupAdd: o.groupAdd } : {}), ...(o.readOnly ? { readOnly: true } : {}), ...(o.init ? { init: true } : {}),
    ...(o.tty ? { tty: localSize() ?? { rows: 0, cols: 0 } } : {}),
    ...(o.interactive ? { interactive: true } : {}),
    ...(constraints.length ? { constraints } : {}),
    ...(o.label?.length ? { labels: labelsFlag(o.label) } : {}),
    ...(o.publishAll ? { publishAll: true } : {}),
    ...(o.volumesFrom?.length ? { volumesFrom: o.volumesFrom } : {}),
    ...host,
    ...lifecycle,
    ...healthRequest(o),
  };
}

/** --label KEY=VALUE (or KEY, an empty value, as docker) → the request's labels; a bad one is a one-line error. */
export function labelsFlag(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf('=');
    const k = i < 0 ? l : l.slice(0, i), v = i < 0 ? '' : l.slice(i + 1);
    if (!LABEL_KEY_RE.test(k)) throw new CliError(`invalid --label "${l.slice(0, 80)}": KEY=VALUE, the key of letters, digits, . _ - / (at most 128)`);
    if (v.length > CONTAINER_LABEL_VALUE_MAX) throw new CliError(`invalid --label ${k}: the value is longer than ${CONTAINER_LABEL_VALUE_MAX}`);
    out[k] = v;
  }
  if (Object.keys(out).length > CONTAINER_LABELS_MAX) throw new CliError(`too many --label: at most ${CONTAINER_LABELS_MAX}`);
  return out;
}

/** --constraint values, checked and normalised (shared/constraints.ts); a bad one is a one-line error. */
export function constraintsFlag(list: readonly string[]): string[] {
  try { return parseConstraints(list).map((c) => c.text); } catch (err) {
    if (err instanceof ConstraintError) throw new CliError(err.message);
    throw err;
  }
}

/** --device, --security-opt, --ulimit, --cap-add/--cap-drop, --oom-score-adj → the spec's security part. */
export function securityOptions(o: Pick<RunOpts, 'device' | 'securityOpt' | 'ulimit' | 'capAdd' | 'capDrop' | 'oomScoreAdj'>, readProfile: (path: string) => string): SecurityOptions | undefined {
  try {
    const s: SecurityOptions = {};
    for (const d of o.device ?? []) { parseDeviceFlag(d); (s.devices ??= []).push(d); }
    for (const v of o.securityOpt ?? []) Object.assign(s, parseSecurityOpt(v, readProfile));
    for (const u of o.ulimit ?? []) (s.ulimits ??= []).push(parseUlimit(u));
    for (const c of o.capAdd ?? []) (s.capAdd ??= []).push(parseCapability('--cap-add', c));
    for (const c of o.capDrop ?? []) (s.capDrop ??= []).push(parseCapability('--cap-drop', c));
    if (o.oomScoreAdj !== undefined) {
      const n = Number(o.oomScoreAdj);
      if (!Number.isInteger(n) || n < -1000 || n > 1000) throw new FlagError('--oom-score-adj', o.oomScoreAdj, 'a whole number from -1000 to 1000');
      s.oomScoreAdj = n;
    }
    return Object.keys(s).length ? s : undefined;
  } catch (err) {
    if (err instanceof FlagError) throw new CliError(err.message);
    throw err;
  }
}

/** -p [HOST:]CONTAINER[/tcp|udp] (on every host address, 127.0.0.1 included); no HOST: one the controller picks (host 0). */
export function parsePort(spec: string): PortMapping {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(?:(\d{1,5}):)?(\d{1,5})(?:\/(tcp|udp))?$/.exec(spec);
  if (!m) throw new CliError(`invalid -p "${spec}": use HOST:CONTAINER[/tcp|udp], e.g. 8080:80`);
  if (m[1] !== undefined && m[1] !== '0.0.0.0') throw new CliError(`invalid -p "${spec}": binding to one host address is not supported; ports are published on all of them`);
  const host = m[2] === undefined ? 0 : Number(m[2]);
  const container = Number(m[3]);
  if ((m[2] !== undefined && host < 1) || host > 65535 || container < 1 || container > 65535) throw new CliError(`invalid -p "${spec}": ports are 1 to 65535`);
  return { host, container, proto: (m[4] ?? 'tcp') as 'tcp' | 'udp' };
}

/** A duration flag (30s, 10m, 24h, 7d, 500ms) in ms; more than zero. */
export function parseDuration(v: string, flag: string): number {
  const d = /^(\d{1,9})(ms|s|m|h|d)$/.exec(v);
  const ms = d ? Number(d[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[d[2] as 'ms'] : NaN;
  if (!(ms > 0)) throw new CliError(`invalid ${flag} "${v}": a duration like 30s, 10m, 24h or 7d`);
  return ms;
}

/** --since: a stream sequence, an ISO time, unix seconds, or a duration back from now (10m, 2h, 30s). */
export function parseSince(v: string, now = Date.now(), flag = '--since'): { seq: number } | { time: Date } {
  if (/^\d+$/.test(v) && v.length < 10) return { seq: Number(v) };
  if (/^\d{10}(\.\d+)?$/.test(v)) return { time: new Date(Number(v) * 1000) };
  const d = /^(\d+)(ms|s|m|h|d)$/.exec(v);
  if (d) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[d[2] as 'ms'];
    return { time: new Date(now - Number(d[1]) * unit) };
  }
  // V8's Date.parse takes a signed number for a year (-1 is 2001): no time of ours starts with a sign
  const t = /^\s*[+-]/.test(v) ? NaN : Date.parse(v);
  if (Number.isNaN(t)) throw new CliError(`invalid ${flag} "${v}": a sequence number, an ISO time, unix seconds or a duration like 10m`);
  return { time: new Date(t) };
}

/** What `events --filter` keeps: one subject filter (no '='), and key=value tests, all of which must hold. */
export interface EventFilter { subject?: string; match(e: { type: string; src: string; entity: string; data: unknown }, subject?: string): boolean }

const FILTER_KEYS = ['type', 'node', 'user', 'entity', 'src'] as const;

/** `--filter ev.state.>` or `--filter type=ContainerExited,node=n2 --filter user=alice`. Pure. */
export function eventFilter(specs: string[]): EventFilter {
  let subject: string | undefined;
  const tests: [typeof FILTER_KEYS[number], string][] = [];
  for (const spec of specs) {
    if (!spec.includes('=')) {
      if (subject !== undefined) throw new CliError(`only one subject filter (got "${subject}" and "${spec}")`);
      subject = spec;
      continue;
    }
    for (const kv of spec.split(',')) {
      const i = kv.indexOf('=');
      const k = kv.slice(0, i), v = kv.slice(i + 1);
      if (!(FILTER_KEYS as readonly string[]).includes(k) || v === '') throw new CliError(`invalid --filter "${kv}": ${FILTER_KEYS.join('|')}=VALUE, or a subject`);
      tests.push([k as typeof FILTER_KEYS[number], v]);
    }
  }
  return {
    ...(subject !== undefined ? { subject } : {}),
    match: (e, subj) => tests.every(([k, v]) => {
      const d = (e.data ?? {}) as { user?: unknown; node?: unknown };
      switch (k) {
        case 'type': return e.type === v;
        case 'src': return e.src === v;
        case 'user': return d.user === v;
        case 'entity': return e.entity.startsWith(v);
        // a node's own events, and what was asked of it (desired subjects name it)
        case 'node': return e.src === `node:${v}` || d.node === v || (subj?.split('.')[2] === v && subj.startsWith('ev.desired.'));
      }
    }),
  };
}

const PS_KEYS = ['name', 'node', 'status', 'id', 'label'] as const;

/** `ps --filter KEY=VALUE[,KEY=VALUE]` (repeatable) → the controller's filter: values of one key are alternatives. */
export function psFilter(specs: string[]): PsFilter | undefined {
  const f: PsFilter = {};
  for (const spec of specs) {
    // a label filter's value may hold commas: the whole spec is one filter
    for (const kv of spec.startsWith('label=') ? [spec] : spec.split(',')) {
      const i = kv.indexOf('=');
      const k = kv.slice(0, i), v = kv.slice(i + 1);
      if (!(PS_KEYS as readonly string[]).includes(k) || v === '') throw new CliError(`invalid --filter "${kv}": ${PS_KEYS.join('|')}=VALUE`);
      if (k === 'status' && !(PS_STATUSES as readonly string[]).includes(v)) throw new CliError(`invalid --filter "${kv}": status is one of ${PS_STATUSES.join(', ')}`);
      (f[k as typeof PS_KEYS[number]] ??= []).push(v);
    }
  }
  return Object.keys(f).length ? f : undefined;
}
