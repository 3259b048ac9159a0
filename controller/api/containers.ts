// Container verbs: run, ps, inspect, stop, kill, rm, update.
import type { ContainerSpec, PortMapping, TaskOf } from '../../shared/events.js';
import { ConstraintError, parseConstraints } from '../../shared/constraints.js';
import { findContainer, indexOf, own, type ClusterView, type ContainerView } from '../../shared/reducer.js';
import { subjects } from '../../shared/subjects.js';
import { CONTAINER_ID_RE, NAME_RE } from '../../shared/ids.js';
import { CONTAINER_LABEL_VALUE_MAX, CONTAINER_LABELS_MAX, LABEL_KEY_RE, USER_SPEC_RE } from '../../shared/schema.js';
import { newContainerId } from '../../shared/codec.js';
import { randomBytes } from 'node:crypto';
import { randomName } from '../../shared/names.js';
import { controllerApi as api, type DesireReply, type RunRequest } from '../../shared/api/controller.js';
import { conflict, invalid, notFound } from '../../shared/rpc.js';
import { signalName, SignalError } from '../../shared/signals.js';
import { validateResources } from '../../shared/limits.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { place, PlacementError } from '../placement.js';
import type { PlacementPref } from '../../shared/placement-prefs.js';
import { psPage } from './ps.js';
import { appendDesire, bindsAllowed, checked, containerOf, limitsOk, nonEmpty, shown, userOf, type ApiContext } from './context.js';
import { BUILTIN_NETWORKS } from './networks.js';
import { anonymousOf, imageVolumeTargets, inheritedMounts, mountProblem, parseVolumesFrom, volumesOf, type VolumeMount } from '../../shared/volumes.js';
import { requestVolume } from './volumes.js';
import { layerKey } from './images.js';
import { MAX_CONFIG_BYTES } from '../../shared/image-config.js';
import { hostConfigOf, hostConfigProblem } from '../../shared/host-config.js';
import { lifecycleSpec } from './run-lifecycle.js';
import { imageHealthcheck, mergeHealthcheck, type Healthcheck } from '../../shared/health.js';

type DesiredContainerType = 'ContainerStopRequested' | 'ContainerKillRequested' | 'ContainerRemoveRequested' | 'ContainerUpdateRequested';

export function containerVerbs(ctx: ApiContext): Bound[] {
  const desire = async (ref: string, type: DesiredContainerType, data: (c: ContainerView) => unknown): Promise<DesireReply> => {
    const c = containerOf(ctx.view(), ref);
    const state = c.state;
    if (state === 'rejected' && type !== 'ContainerRemoveRequested') throw conflict(`container ${c.name} was refused by node ${c.node}: ${c.error ?? 'no reason given'} (tsctl rm removes it)`);
    const payload = checked(type, data(c));
    // fenced: a controller whose view missed another's desire for this container is refused
    const { seq, id: eventId } = await appendDesire(ctx, c, type, payload as never);
    await ctx.waitFor(seq);
    return { id: c.id, name: c.name, eventId, state };
  };
  return [
    bind(api.run, (r) => run(ctx, r)),
    bind(api.ps, (r) => {
      const page = psPage(ctx.view(), r);
      return { ...page, items: page.items.map((c) => shown(ctx, r, c)) };
    }),
    bind(api.inspect, (r) => shown(ctx, r, containerOf(ctx.view(), r.ref))),
    bind(api.stop, (r) => desire(r.ref, 'ContainerStopRequested', (c) => ({ timeout: r.timeout ?? c.spec.stopTimeout ?? 10, user: userOf(r) }))),
    bind(api.kill, (r) => desire(r.ref, 'ContainerKillRequested', (c) => {
      if (c.state !== 'running') throw conflict(`container ${c.name} is not running`);
      let signal: string;
      try { signal = signalName(r.signal ?? 'KILL'); } catch (err) { if (err instanceof SignalError) throw invalid(err.message); throw err; }
      return { signal, user: userOf(r) };
    })),
    bind(api.rm, (r) => desire(r.ref, 'ContainerRemoveRequested', (c) => {
      if (c.state === 'running' && r.force !== true) throw conflict(`cannot remove running container ${c.name}: stop it first or use rm -f`);
      return { force: r.force === true, ...(r.volumes ? { volumes: true } : {}), user: userOf(r) };
    })),
    bind(api.update, (r) => desire(r.ref, 'ContainerUpdateRequested', (c) => {
      if (c.state !== 'running') throw conflict(`container ${c.name} is not running: update changes a running container's limits`);
      limitsOk(() => validateResources({ ...c.spec.resources, ...r.resources }, own(ctx.view().nodes, c.node)));
      return { resources: r.resources, user: userOf(r) };
    })),
  ];
}

/** What the controller adds to a request it makes itself: the service task (never a client's to set) and the spread among the service's nodes. */
export interface Internal {
  service?: TaskOf; spread?: ReadonlyMap<string, number>;
  /** the service's --placement-pref, parsed */
  prefs?: readonly PlacementPref[];
  /** a claim of its own, made once the container is placed, before its name's (a service task's number) */
  claim?: () => Promise<void>;
}

export async function run(ctx: ApiContext, r: RunRequest, internal: Internal = {}): Promise<{ id: string; name: string; node: string }> {
  const view = ctx.view();
  const id = r.id === undefined ? newContainerId() : nonEmpty(r.id, 'id');
  if (!CONTAINER_ID_RE.test(id)) throw invalid(`invalid container id "${id}": 64 hex digits`);
  const had = own(view.containers, id);
  if (had) {
    // the same request again: tsctl sends a run again when no answer came (tsctl/client.ts
    // apiAgain), naming the same container id; the answer is the first one's
    if (!internal.claim && had.requestedBy === userOf(r) && had.spec.image === r.image && (r.name === undefined || had.name === r.name)) return { id, name: had.name, node: had.node };
    throw conflict(`container id ${id} already exists`);
  }
  const imageName = nonEmpty(r.image, 'image');
  const image = own(view.images, imageName);
  if (!image) throw notFound(`no such image "${imageName}" (tsctl image ls lists them)`);
  const ix = indexOf(view);
  const taken = (n: string) => ix.named(n) !== undefined;
  const name = r.name === undefined ? randomName(taken) : nonEmpty(r.name, 'name');
  if (!NAME_RE.test(name)) throw invalid(`invalid name "${name}": use letters, digits, _ . - (at most 128)`);
  if (taken(name)) throw conflict(`the name "${name}" is already in use by container ${findContainer(view, name)!.id.slice(0, 12)} (remove it or choose another --name)`);
  // the image's config says what runs when the request does not (docker run's defaults)
  const cfg = image.layers ? await runDefaults(ctx, image.digest) : {};
  const entrypoint = r.entrypoint !== undefined ? (r.entrypoint === '' ? [] : [r.entrypoint]) : cfg.entrypoint ?? [];
  // as docker: an --entrypoint clears the image's Cmd; a command given replaces it
  const cmd = r.args?.length ? r.args : r.entrypoint !== undefined ? [] : cfg.cmd ?? [];
  const args = [...entrypoint, ...cmd];
  const volumesFrom = volumesFromOf(view, r);
  if (args.length === 0) throw invalid(`no command specified: image ${imageName} has no Entrypoint or Cmd; give one after the image name`);
  const spec: ContainerSpec = {
    name, image: imageName, imageDigest: image.digest, ...(image.layers ? { layers: image.layers } : {}),
    args, env: mergeEnv(cfg.env ?? [], r.env ?? []),
    hostname: r.hostname === undefined ? id.slice(0, 12) : nonEmpty(r.hostname, 'hostname'),
    workdir: r.workdir === undefined ? cfg.workdir || '/' : nonEmpty(r.workdir, 'workdir'),
    network: r.network === undefined ? 'bridge' : nonEmpty(r.network, 'network'),
    autoRemove: r.autoRemove === true,
    ...(r.resources ? { resources: r.resources } : {}),
    ...(r.ports?.length || (r.publishAll && cfg.exposed) ? { ports: withExposed(r.ports ?? [], r.publishAll ? cfg.exposed ?? [] : []) } : {}),
    ...(r.security ? { security: r.security } : {}),
    ...withImageVolumes([...(r.mounts ?? []), ...volumesFrom.mounts], cfg.volumes ?? [], imageName),
    // as docker: --user, else the image's User
    ...(r.processUser !== undefined ? { processUser: r.processUser } : cfg.user ? { processUser: cfg.user } : {}),
    ...(r.groupAdd?.length ? { groupAdd: r.groupAdd } : {}),
    ...(r.readOnly ? { readOnly: true } : {}),
    ...(r.init ? { init: true } : {}),
    // as docker: the image's Labels, a --label of the same key over it
    ...(cfg.labels || r.labels ? { labels: { ...cfg.labels, ...r.labels } } : {}),
    ...(r.tty ? { tty: r.tty } : {}),
    ...(r.interactive ? { interactive: true } : {}),
    // a host path or volume is one node's: the container goes where the one it takes them from is
    ...(r.constraints?.length || volumesFrom.nodes.length ? { constraints: [...constraintsOk(r.constraints ?? []), ...volumesFrom.nodes.map((n) => `node.id==${n}`)] } : {}),
    ...hostConfigOf(r),
    ...(internal.service ? { service: internal.service } : {}),
    ...lifecycleSpec(r, cfg.stopSignal),
    // as docker: the run's --health-* over the image's HEALTHCHECK, field by field
    ...healthSpec(mergeHealthcheck(cfg.healthcheck, r.healthcheck)),
  };
  if (spec.mounts) {
    const why = mountProblem(spec.mounts);
    if (why) throw invalid(why);
    bindsAllowed(ctx, r, spec.mounts, (m) => `-v ${m.source}:${m.target}`);
  }
  if (spec.network.startsWith('container:')) {
    const peer = findContainer(view, spec.network.slice(10));
    if (!peer) throw notFound(`no such container "${spec.network.slice(10)}" for --network ${spec.network}`);
    if (peer.state !== 'running') throw conflict(`container ${peer.name} is not running: --network ${spec.network} joins a running container's network`);
    // as docker: the container shares its peer's network identity, host name included
    if (r.hostname !== undefined) throw invalid(`--hostname conflicts with --network ${spec.network}: the container takes ${peer.name}'s host name`);
    spec.hostname = peer.spec.hostname;
    spec.network = `container:${peer.id}`;
  }
  // --pid/--ipc host|container:X and --uts host; the host's namespaces are the host (its processes, its
  // shared memory, its name): admins only, as host binds
  for (const [flag, key, mode] of [['--pid', 'pidMode', r.pidMode], ['--ipc', 'ipcMode', r.ipcMode], ['--uts', 'utsMode', r.utsMode]] as const) {
    if (mode === undefined) continue;
    if (mode === 'host') {
      if (ctx.roleOf && ctx.roleOf(userOf(r)) !== 'admin') throw invalid(`permission denied: ${flag} host shares the host's ${flag.slice(2)} namespace, which only an admin may`);
      spec[key] = 'host';
      continue;
    }
    const peer = findContainer(view, mode.slice(10));
    if (!peer) throw notFound(`no such container "${mode.slice(10)}" for ${flag} ${mode}`);
    if (peer.state !== 'running') throw conflict(`container ${peer.name} is not running: ${flag} ${mode} joins a running container's namespace`);
    spec[key] = `container:${peer.id}`;
  }
  // --privileged is the host itself (its devices, its kernel's knobs): admins only, as --pid host
  if (spec.privileged && ctx.roleOf && ctx.roleOf(userOf(r)) !== 'admin') throw invalid('permission denied: --privileged gives the container the host\'s devices and every capability, which only an admin may');
  const hostWhy = hostConfigProblem(spec);
  if (hostWhy) throw invalid(hostWhy);
  if (spec.utsMode === 'host' && r.hostname !== undefined) throw invalid('--hostname conflicts with --uts host: the container has the host\'s name');
  const builtin = BUILTIN_NETWORKS.includes(spec.network) || spec.network.startsWith('container:');
  const net = builtin ? undefined : own(view.networks, spec.network);
  if (!builtin && !net) throw notFound(`no such network "${spec.network}" (tsctl network ls lists them; tsctl network create makes one)`);
  // a published host port is one container's per node: a node where it is taken is passed over
  const holderOf = (nodeId: string) => {
    for (const p of spec.ports ?? []) {
      if (p.host === 0) continue; // picked on the node chosen
      const holder = [...ix.onNode(nodeId)].map((i) => view.containers[i]).find((c) => c.state !== 'exited' && c.state !== 'failed'
        && (c.spec.ports ?? []).some((q) => q.host === p.host && q.proto === p.proto));
      if (holder) return { port: `${p.host}/${p.proto}`, holder };
    }
    return undefined;
  };
  const portClash = spec.ports?.length ? (n: string) => { const h = holderOf(n); return h && `port ${h.port} is already published`; } : undefined;
  // a named volume lives on one node: a container that names one that exists goes where it is.
  // Not a service's task: as in swarm, each node the service runs on has its own volume of that
  // name (made on first use), or every replica would follow the first one's node
  const volumeHomes = new Map<string, string[]>();
  for (const v of internal.service ? [] : new Set(volumesOf(spec.mounts))) {
    const homes = Object.values(view.volumes ?? {}).filter((x) => x.name === v && x.state !== 'removing').map((x) => x.node);
    if (homes.length) volumeHomes.set(v, homes);
  }
  const volumeClash = volumeHomes.size ? (n: string) => {
    for (const [v, homes] of volumeHomes) if (!homes.includes(n)) return `volume "${v}" is on ${homes.join(', ')}, not here`;
    return undefined;
  } : undefined;
  const clash = portClash || volumeClash ? (n: string) => portClash?.(n) ?? volumeClash?.(n) : undefined;
  const onlyOne = net || spec.network.startsWith('container:') || Object.keys(view.nodes).length === 1;
  const placeWith = (c?: (n: string) => string | undefined) => place(view, spec, (ref) => findContainer(view, ref), net ? Object.keys(net.nodes).filter((n) => net.nodes[n].state === 'ready') : undefined,
    { ...(internal.spread ? { spread: internal.spread } : {}), ...(internal.prefs?.length ? { prefs: internal.prefs } : {}), ...(ctx.strategy ? { strategy: ctx.strategy } : {}), ...(c && !onlyOne ? { clash: c } : {}) });
  // a node not heard from for a while (its host cut off or dead, not yet NodeDown) is passed over
  // while another can take the container: right after a failover a run went to the cut-off host
  // and waited for a start that could not come
  let node;
  const quiet = ctx.silent;
  if (quiet && !onlyOne) {
    try { node = placeWith((n) => clash?.(n) ?? quiet(n)); } catch (err) { if (!(err instanceof PlacementError)) throw err; }
  }
  node ??= placeWith(clash);
  const held = spec.ports?.length ? holderOf(node.id) : undefined;
  if (held) throw conflict(`port ${held.port} on node ${node.id} is already published by container ${held.holder.name}`);
  if (spec.ports?.some((p) => p.host === 0)) {
    const used = new Set<string>();
    for (const i of ix.onNode(node.id)) {
      const c = view.containers[i];
      if (c && c.state !== 'exited' && c.state !== 'failed') for (const q of c.spec.ports ?? []) used.add(`${q.proto}/${q.host}`);
    }
    spec.ports = pickHostPorts(spec.ports, used);
    if (!spec.ports) throw conflict(`no free host port left on node ${node.id} in ${EPHEMERAL_PORTS.join('-')}`);
  }
  if (spec.resources) limitsOk(() => validateResources(spec.resources!, node));
  const data = checked('ContainerRequested', { node: node.id, spec, user: userOf(r), ...(r.create ? { create: true } : {}) });
  // the name is taken before the container is placed (fenced: controller/lease.ts)
  if (internal.claim) await internal.claim();
  if (ctx.claim) await ctx.claim('container', name, id);
  // a -v NAME:DST whose volume the node lacks makes it, as docker run does: asked first, so the
  // volume is in the view (and volume ls) from the run on
  const anonymous = new Set(anonymousOf(spec.mounts));
  for (const v of new Set(volumesOf(spec.mounts))) await requestVolume(ctx, node.id, v, userOf(r), undefined, anonymous.has(v));
  const { seq } = await ctx.append(subjects.desired(node.id, id), 'ContainerRequested', id, data);
  await ctx.waitFor(seq);
  return { id, name, node: node.id };
}

/**
 * The request's mounts, each `-v /path` given a fresh anonymous volume, then one anonymous volume
 * for each path the image declares (VOLUME) that no mount of the request covers, as docker run
 * does. A hostile image's declared path is one line of error.
 */
export function withImageVolumes(ms: readonly VolumeMount[], declared: readonly string[], image: string): { mounts?: VolumeMount[] } {
  let targets: string[];
  try { targets = imageVolumeTargets(declared); } catch (err) { throw invalid(`image ${image}: ${(err as Error).message}`); }
  const fresh = () => randomBytes(32).toString('hex');
  // the name is the controller's to pick: a request naming one could mark another's volume as
  // this container's own, for rm -v to take
  if (ms.some((m) => m.anonymous && m.source !== undefined)) throw invalid('an anonymous volume has no name in the request (-v /path): the controller picks it');
  const out = ms.map((m) => (m.anonymous ? { ...m, source: fresh() } : m));
  for (const t of targets) if (!out.some((m) => m.target === t)) out.push({ type: 'volume', source: fresh(), target: t, anonymous: true });
  return out.length ? { mounts: out } : {};
}

/** --volumes-from: the mounts taken from each container named, and the nodes those are on (one, or none fits). */
function volumesFromOf(view: ClusterView, r: RunRequest): { mounts: VolumeMount[]; nodes: string[] } {
  const mounts: VolumeMount[] = [];
  const nodes = new Set<string>();
  const own = new Set((r.mounts ?? []).map((m) => m.target));
  for (const s of r.volumesFrom ?? []) {
    let from;
    try { from = parseVolumesFrom(s); } catch (err) { throw invalid((err as Error).message); }
    const peer = findContainer(view, from.ref);
    if (!peer) throw notFound(`no such container "${from.ref}" for --volumes-from`);
    for (const m of inheritedMounts(peer.spec.mounts ?? [], from.mode, own)) { mounts.push(m); own.add(m.target); }
    nodes.add(peer.node);
  }
  if (nodes.size > 1) throw invalid(`--volumes-from names containers on ${[...nodes].join(' and ')}: volumes are one node's, so they must share one`);
  return { mounts, nodes: [...nodes] };
}

/** The constraints of a request, normalised; a bad one is the caller's one-line error. */
export function constraintsOk(list: readonly string[]): string[] {
  try { return parseConstraints(list).map((c) => c.text); } catch (err) {
    if (err instanceof ConstraintError) throw invalid(err.message);
    throw err;
  }
}

/** What an image's config says a container runs with, when the request does not say. */
export interface RunDefaults { entrypoint?: string[]; cmd?: string[]; env?: string[]; workdir?: string; user?: string; labels?: Record<string, string>; exposed?: ExposedPort[]; stopSignal?: string; volumes?: string[]; healthcheck?: Healthcheck }
export interface ExposedPort { container: number; proto: 'tcp' | 'udp' }

const defaultsCache = new Map<string, RunDefaults>();

/** The run defaults of the image config `digest` (read from the object store once: it is content-addressed). */
async function runDefaults(ctx: ApiContext, digest: string): Promise<RunDefaults> {
  const hit = defaultsCache.get(digest);
  if (hit) return hit;
  const bytes = ctx.images.read ? await ctx.images.read(layerKey(digest), MAX_CONFIG_BYTES) : null;
  const d = bytes ? configDefaults(bytes) : {};
  if (defaultsCache.size >= 256) defaultsCache.delete(defaultsCache.keys().next().value!);
  defaultsCache.set(digest, d);
  return d;
}

/** Pure: Entrypoint, Cmd, Env and WorkingDir of an image config, each only when well formed. */
export function configDefaults(bytes: Uint8Array): RunDefaults {
  let c: { config?: { Entrypoint?: unknown; Cmd?: unknown; Env?: unknown; WorkingDir?: unknown; User?: unknown; Labels?: unknown; ExposedPorts?: unknown; StopSignal?: unknown; Volumes?: unknown; Healthcheck?: unknown } };
  try { c = JSON.parse(new TextDecoder().decode(bytes)) as typeof c; } catch { return {}; }
  const strings = (v: unknown, max: number) => (Array.isArray(v) && v.length <= max && v.every((x) => typeof x === 'string' && x.length <= 65536 && !x.includes('\0')) ? v as string[] : undefined);
  const cfg = c?.config ?? {};
  const entrypoint = strings(cfg.Entrypoint, 4096), cmd = strings(cfg.Cmd, 4096);
  const env = strings(cfg.Env, 4096)?.filter((e) => /^[^=]+=/s.test(e));
  const workdir = typeof cfg.WorkingDir === 'string' && cfg.WorkingDir.startsWith('/') && cfg.WorkingDir.length <= 4096 && !cfg.WorkingDir.includes('\0') ? cfg.WorkingDir : undefined;
  const user = typeof cfg.User === 'string' && USER_SPEC_RE.test(cfg.User) ? cfg.User : undefined;
  const labels = imageLabels(cfg.Labels);
  const exposed = exposedPorts(cfg.ExposedPorts);
  const stopSignal = typeof cfg.StopSignal === 'string' && /^[A-Za-z0-9+-]{1,16}$/.test(cfg.StopSignal) ? cfg.StopSignal : undefined;
  // the keys are checked where they are used (run): a hostile one refuses the run, it is not dropped unseen
  const volumes = cfg.Volumes && typeof cfg.Volumes === 'object' && !Array.isArray(cfg.Volumes) ? Object.keys(cfg.Volumes) : undefined;
  const healthcheck = imageHealthcheck(cfg.Healthcheck);
  return { ...(healthcheck ? { healthcheck } : {}), ...(volumes?.length ? { volumes } : {}), ...(entrypoint ? { entrypoint } : {}), ...(cmd ? { cmd } : {}), ...(env ? { env } : {}), ...(workdir ? { workdir } : {}), ...(user ? { user } : {}), ...(labels ? { labels } : {}), ...(exposed ? { exposed } : {}), ...(stopSignal ? { stopSignal } : {}) };
}

/** An image's ExposedPorts ("80/tcp": {}): each well-formed one, at most 256. */
function exposedPorts(v: unknown): ExposedPort[] | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out: ExposedPort[] = [];
  for (const k of Object.keys(v)) {
    const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(k);
    const n = m ? Number(m[1]) : 0;
    if (n >= 1 && n <= 65535 && out.length < 256) out.push({ container: n, proto: (m![2] ?? 'tcp') as 'tcp' | 'udp' });
  }
  return out.length ? out : undefined;
}

/** Pure: -p's ports, then each exposed port no -p names (-P), on a host port to pick (0). */
export function withExposed(ports: readonly PortMapping[], exposed: readonly ExposedPort[]): PortMapping[] {
  const given = new Set(ports.map((p) => `${p.proto}/${p.container}`));
  return [...ports, ...exposed.filter((e) => !given.has(`${e.proto}/${e.container}`)).map((e) => ({ host: 0, container: e.container, proto: e.proto }))];
}

/** The kernel's default ephemeral range, where docker picks too. */
export const EPHEMERAL_PORTS = [32768, 60999] as const;

/** Pure: each host port 0 gets the lowest of the range that `used` (proto/port) and the ports before it do not hold; undefined when the range is full. */
export function pickHostPorts(ports: readonly PortMapping[], used: ReadonlySet<string>): PortMapping[] | undefined {
  const taken = new Set(used);
  for (const p of ports) if (p.host !== 0) taken.add(`${p.proto}/${p.host}`);
  const out: PortMapping[] = [];
  for (const p of ports) {
    if (p.host !== 0) { out.push(p); continue; }
    let h = EPHEMERAL_PORTS[0];
    while (h <= EPHEMERAL_PORTS[1] && taken.has(`${p.proto}/${h}`)) h++;
    if (h > EPHEMERAL_PORTS[1]) return undefined;
    taken.add(`${p.proto}/${h}`);
    out.push({ ...p, host: h });
  }
  return out;
}

/** An image's Labels that a container may carry: each well-formed one (a build's long description too), no more than a container holds. */
function imageLabels(v: unknown): Record<string, string> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (n >= CONTAINER_LABELS_MAX) break;
    if (!LABEL_KEY_RE.test(k) || typeof x !== 'string' || x.length > CONTAINER_LABEL_VALUE_MAX) continue;
    out[k] = x; n++;
  }
  return n ? out : undefined;
}

/** Pure: the image's environment with the request's on top (same key: the request's value). */
export function mergeEnv(image: string[], request: string[]): string[] {
  const key = (e: string) => e.slice(0, e.indexOf('='));
  const given = new Set(request.map(key));
  return [...image.filter((e) => !given.has(key(e))), ...request];
}

/** The spec's healthcheck: kept when it says something (a check, or NONE over an image's); an empty Test is no check. */
function healthSpec(h: Healthcheck | undefined): Pick<ContainerSpec, 'healthcheck'> {
  return h && h.Test.length ? { healthcheck: h } : {};
}
