// The controller's request/reply API (api.<verb>): validate, decide, append desired
// events, wait for the fold to include them, reply. Replies are JSON: { ok } or { error }.
import type { NatsConnection, Msg } from 'nats';
import type { ObjectStore } from 'nats';
import type { ContainerSpec } from '../shared/events.js';
import { findContainer, type ClusterView, type ContainerView } from '../shared/reducer.js';
import { subjects } from '../shared/subjects.js';
import { DIGEST_RE, ID_RE, NAME_RE, NETWORK_RE, payloadChecks } from '../shared/schema.js';
import { networkEntity } from '../shared/events.js';
import { parseCidr, formatCidr, overlaps, type Cidr } from '../shared/cidr.js';
import { ValidationError } from '../shared/validate.js';
import { newContainerId } from '../shared/codec.js';
import { randomName } from '../shared/names.js';
import type { Appender } from '../shared/log.js';
import type { ViewKeeper } from './view.js';
import { place, PlacementError } from './placement.js';
import { validateResources, LimitError } from '../shared/limits.js';

/** An error the user caused; its message is shown as is. */
export class ApiError extends Error {
  constructor(message: string, readonly status = 400) { super(message); this.name = 'ApiError'; }
}

type Req = Record<string, unknown>;
type Handler = (req: Req) => Promise<unknown>;

export class ControllerApi {
  constructor(private nc: NatsConnection, private log: Appender, private keeper: ViewKeeper, private images: ObjectStore) {}

  private get view(): ClusterView { return this.keeper.view; }

  readonly handlers: Record<string, Handler> = {
    run: (r) => this.run(r),
    ps: async (r) => Object.values(this.view.containers)
      .filter((c) => r.all === true || c.state === 'running' || c.state === 'created')
      .sort((a, b) => b.createdAt - a.createdAt),
    inspect: async (r) => this.container(r.ref),
    stop: (r) => this.desire(r, 'ContainerStopRequested', (u) => ({ timeout: intIn(r.timeout ?? 10, 0, 86400, 'time'), user: u })),
    kill: (r) => this.desire(r, 'ContainerKillRequested', (u, c) => {
      if (c.state !== 'running') throw new ApiError(`container ${c.name} is not running`, 409);
      return { signal: signalName(r.signal ?? 'KILL'), user: u };
    }),
    rm: (r) => this.desire(r, 'ContainerRemoveRequested', (u, c) => {
      if (c.state === 'running' && r.force !== true) throw new ApiError(`cannot remove running container ${c.name}: stop it first or use rm -f`, 409);
      return { force: r.force === true, user: u };
    }),
    update: (r) => this.desire(r, 'ContainerUpdateRequested', (u, c) => {
      if (c.state !== 'running') throw new ApiError(`container ${c.name} is not running: update changes a running container's limits`, 409);
      const { resources } = check('ContainerUpdateRequested', { resources: r.resources, user: u });
      limitsOk(() => validateResources({ ...c.spec.resources, ...resources }, this.view.nodes[c.node]));
      return { resources, user: u };
    }),
    nodes: async () => Object.values(this.view.nodes),
    'image.import': (r) => this.imageImport(r),
    'image.ls': async () => Object.values(this.view.images).sort((a, b) => a.name.localeCompare(b.name)),
    'image.rm': (r) => this.imageRm(r),
    'network.create': (r) => this.networkCreate(r),
    'network.rm': (r) => this.networkRm(r),
    'network.ls': async () => this.networkList(),
    'network.inspect': async (r) => this.networkInspect(r),
    info: async () => ({ seq: this.view.seq, sources: this.view.sources, chainIssues: this.view.chainIssues.length }),
  };

  async serve(): Promise<void> {
    const sub = this.nc.subscribe('api.>', { queue: 'controller' });
    for await (const m of sub) void this.handle(m);
  }

  // Mutations run one at a time: a name check and the append that claims the name
  // must not interleave with another request's.
  private serial: Promise<unknown> = Promise.resolve();

  private async handle(m: Msg): Promise<void> {
    const verb = m.subject.slice(4);
    const h = this.handlers[verb];
    let reply: unknown;
    try {
      if (!h) throw new ApiError(`unknown request "${verb}"`);
      const req = parseJson(m.data);
      const mutates = !['ps', 'inspect', 'nodes', 'image.ls', 'info', 'network.ls', 'network.inspect'].includes(verb);
      const result = mutates ? await this.queue(() => h(req)) : await h(req);
      reply = { ok: result ?? true };
    } catch (err) {
      const e = err as Error;
      reply = { error: e instanceof ApiError || e instanceof PlacementError || e instanceof ValidationError ? e.message : `internal error: ${e.message}` };
    }
    if (m.reply) m.respond(new TextEncoder().encode(JSON.stringify(reply)));
  }

  private queue<T>(f: () => Promise<T>): Promise<T> {
    const p = this.serial.then(f, f);
    this.serial = p.catch(() => undefined);
    return p;
  }

  private container(ref: unknown): ContainerView {
    if (typeof ref !== 'string' || ref === '') throw new ApiError('a container name or id is needed');
    const c = findContainer(this.view, ref);
    if (!c) throw new ApiError(`no such container "${ref}" (tsctl ps -a lists them)`, 404);
    return c;
  }

  private async run(r: Req): Promise<{ id: string; name: string; node: string }> {
    const id = r.id === undefined ? newContainerId() : str(r.id, 'id');
    if (!/^[0-9a-f]{64}$/.test(id)) throw new ApiError(`invalid container id "${id}": 64 hex digits`);
    if (this.view.containers[id]) throw new ApiError(`container id ${id} already exists`, 409);
    const imageName = str(r.image, 'image');
    const image = this.view.images[imageName];
    if (!image) throw new ApiError(`no such image "${imageName}" (tsctl image ls lists them)`, 404);
    const taken = (n: string) => Object.values(this.view.containers).some((c) => c.name === n);
    const name = r.name === undefined ? randomName(taken) : str(r.name, 'name');
    if (!NAME_RE.test(name)) throw new ApiError(`invalid name "${name}": use letters, digits, _ . - (at most 128)`);
    if (taken(name)) throw new ApiError(`the name "${name}" is already in use by container ${findContainer(this.view, name)!.id.slice(0, 12)} (remove it or choose another --name)`, 409);
    const args = Array.isArray(r.args) ? r.args : [];
    if (args.length === 0) throw new ApiError('no command specified (images here carry no default command: give one after the image name)');
    const spec: ContainerSpec = {
      name, image: imageName, imageDigest: image.digest,
      args: args as string[], env: (r.env as string[] | undefined) ?? [],
      hostname: r.hostname === undefined ? id.slice(0, 12) : str(r.hostname, 'hostname'),
      workdir: r.workdir === undefined ? '/' : str(r.workdir, 'workdir'),
      network: r.network === undefined ? 'bridge' : str(r.network, 'network'),
      autoRemove: r.autoRemove === true,
      ...(r.resources ? { resources: r.resources as ContainerSpec['resources'] } : {}),
      ...(Array.isArray(r.ports) && r.ports.length ? { ports: r.ports as ContainerSpec['ports'] } : {}),
    };
    if (spec.network.startsWith('container:')) {
      const peer = findContainer(this.view, spec.network.slice(10));
      if (!peer) throw new ApiError(`no such container "${spec.network.slice(10)}" for --network ${spec.network}`, 404);
      if (peer.state !== 'running') throw new ApiError(`container ${peer.name} is not running: --network ${spec.network} joins a running container's network`, 409);
      // as docker: the container shares its peer's network identity, host name included
      if (r.hostname !== undefined) throw new ApiError(`--hostname conflicts with --network ${spec.network}: the container takes ${peer.name}'s host name`);
      spec.hostname = peer.spec.hostname;
      spec.network = `container:${peer.id}`;
    }
    const net = BUILTIN_NETWORKS.includes(spec.network) || spec.network.startsWith('container:') ? undefined : this.view.networks[spec.network];
    if (!net && !BUILTIN_NETWORKS.includes(spec.network) && !spec.network.startsWith('container:')) {
      throw new ApiError(`no such network "${spec.network}" (tsctl network ls lists them; tsctl network create makes one)`, 404);
    }
    const node = place(this.view, spec, (ref) => findContainer(this.view, ref), net ? Object.keys(net.nodes).filter((n) => net.nodes[n].state === 'ready') : undefined);
    for (const p of spec.ports ?? []) {
      const holder = Object.values(this.view.containers).find((c) => c.node === node.id && c.state !== 'exited' && c.state !== 'failed'
        && (c.spec.ports ?? []).some((q) => q.host === p.host && q.proto === p.proto));
      if (holder) throw new ApiError(`port ${p.host}/${p.proto} on node ${node.id} is already published by container ${holder.name}`, 409);
    }
    if (spec.resources) limitsOk(() => validateResources(spec.resources!, node));
    const user = userOf(r);
    const data = check('ContainerRequested', { node: node.id, spec, user });
    const { seq } = await this.log.append(subjects.desired(node.id, id), 'ContainerRequested', id, data);
    await this.keeper.waitFor(seq);
    return { id, name, node: node.id };
  }

  private async desire<T extends 'ContainerStopRequested' | 'ContainerKillRequested' | 'ContainerRemoveRequested' | 'ContainerUpdateRequested'>(
    r: Req, type: T, data: (user: string, c: ContainerView) => unknown,
  ): Promise<{ id: string; name: string; eventId: string; state: string }> {
    const c = this.container(r.ref);
    const state = c.state;
    const payload = check(type, data(userOf(r), c));
    const { seq, id: eventId } = await this.log.append(subjects.desired(c.node, c.id), type, c.id, payload as never);
    await this.keeper.waitFor(seq);
    return { id: c.id, name: c.name, eventId, state };
  }

  private async networkCreate(r: Req): Promise<{ name: string; subnet: string }> {
    const name = str(r.name, 'name');
    if (!NETWORK_RE.test(name)) throw new ApiError(`invalid network name "${name}": lower-case letters, digits, _ and -, at most 32`);
    if (BUILTIN_NETWORKS.includes(name) || this.view.networks[name]) throw new ApiError(`network "${name}" already exists`, 409);
    const nodes = Object.keys(this.view.nodes);
    if (nodes.length === 0) throw new ApiError('no node has joined the cluster (is an agent running? ops/up starts one)');
    const taken = Object.values(this.view.networks).map((n) => parseCidr(n.subnet));
    let subnet: string;
    if (r.subnet !== undefined) {
      subnet = str(r.subnet, 'subnet');
      let c;
      try { c = parseCidr(subnet); } catch (err) { throw new ApiError(`invalid --subnet "${subnet}": ${(err as Error).message}`); }
      if (c.prefix > 29) throw new ApiError(`invalid --subnet "${subnet}": at most /29, a network needs room for a gateway and containers`);
      subnet = formatCidr(c);
      const clash = Object.values(this.view.networks).find((n) => overlaps(parseCidr(n.subnet), c));
      if (clash) throw new ApiError(`subnet ${subnet} overlaps network "${clash.name}" (${clash.subnet}): choose another --subnet`, 409);
    } else {
      subnet = freeSubnet(taken);
    }
    const gateway = r.gateway === undefined ? undefined : str(r.gateway, 'gateway');
    const user = userOf(r);
    let last = 0;
    for (const node of nodes) {
      const data = check('NetworkCreateRequested', { node, name, subnet, ...(gateway ? { gateway } : {}), user });
      last = (await this.log.append(subjects.desired(node, networkEntity(name)), 'NetworkCreateRequested', networkEntity(name), data)).seq;
    }
    await this.keeper.waitFor(last);
    // the nodes answer NetworkCreated, or refuse (e.g. the subnet overlaps a host route)
    await this.keeper.until(() => {
      const n = this.view.networks[name];
      return !n || Object.values(n.nodes).every((x) => x.state === 'ready');
    }, 10000).catch(() => { throw new ApiError(`network "${name}" was asked for, but not every node confirmed it within 10 s (are their agents running? tsctl network ls shows it)`, 504); });
    if (!this.view.networks[name]) throw new ApiError(`network "${name}" was refused: ${this.view.networkErrors[name] ?? 'no reason given'}`, 409);
    return { name, subnet };
  }

  private async networkRm(r: Req): Promise<{ name: string }> {
    const name = str(r.name, 'name');
    if (BUILTIN_NETWORKS.includes(name)) throw new ApiError(`network "${name}" is built in and cannot be removed`, 409);
    const n = this.view.networks[name];
    if (!n) throw new ApiError(`no such network "${name}" (tsctl network ls lists them)`, 404);
    const users = Object.values(this.view.containers).filter((c) => c.spec.network === name);
    if (users.length) throw new ApiError(`network "${name}" is in use by container ${users.map((c) => c.name).join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first`, 409);
    let last = 0;
    for (const node of Object.keys(n.nodes)) {
      last = (await this.log.append(subjects.desired(node, networkEntity(name)), 'NetworkRemoveRequested', networkEntity(name), { node, name, user: userOf(r) })).seq;
    }
    await this.keeper.waitFor(last);
    await this.keeper.until(() => !this.view.networks[name], 10000)
      .catch(() => { throw new ApiError(`network "${name}": not every node confirmed the removal within 10 s (are their agents running?)`, 504); });
    return { name };
  }

  private networkList(): unknown[] {
    const builtin = BUILTIN_NETWORKS.map((name) => ({ name, driver: name === 'bridge' ? 'bridge' : name, subnet: '', builtin: true, nodes: Object.keys(this.view.nodes) }));
    const user = Object.values(this.view.networks).sort((a, b) => a.name.localeCompare(b.name))
      .map((n) => ({ name: n.name, driver: 'bridge', subnet: n.subnet, gateway: n.gateway, builtin: false, nodes: Object.keys(n.nodes), createdAt: n.createdAt }));
    return [...builtin, ...user];
  }

  private networkInspect(r: Req): unknown {
    const name = str(r.name, 'name');
    const n = this.view.networks[name];
    if (!n && !BUILTIN_NETWORKS.includes(name)) throw new ApiError(`no such network "${name}" (tsctl network ls lists them)`, 404);
    const containers = Object.values(this.view.containers).filter((c) => c.spec.network === name)
      .map((c) => ({ id: c.id, name: c.name, node: c.node, ip: c.ip ?? null, state: c.state }));
    return { name, driver: n || name === 'bridge' ? 'bridge' : name, subnet: n?.subnet ?? null, gateway: n?.gateway ?? null, createdBy: n?.createdBy ?? null, nodes: n?.nodes ?? {}, containers };
  }

  private async imageImport(r: Req): Promise<{ name: string; digest: string }> {
    const name = str(r.name, 'name');
    if (!NAME_RE.test(name)) throw new ApiError(`invalid image name "${name}": use letters, digits, _ . -`);
    const digest = str(r.digest, 'digest');
    if (!DIGEST_RE.test(digest)) throw new ApiError(`invalid digest "${digest}"`);
    const info = await this.images.info(digest.replace(':', '-'));
    if (!info) throw new ApiError(`layer ${digest} was not uploaded (tsctl image import uploads it first)`, 404);
    const stored = Buffer.from(info.digest.replace(/^SHA-256=/, ''), 'base64url').toString('hex');
    if (`sha256:${stored}` !== digest) throw new ApiError(`uploaded layer does not match ${digest} (got sha256:${stored.slice(0, 12)}…): upload again`);
    const data = check('ImageImported', { name, digest, size: info.size, user: userOf(r) });
    const { seq } = await this.log.append(subjects.image(digest.slice(7)), 'ImageImported', digest.slice(7), data);
    await this.keeper.waitFor(seq);
    return { name, digest };
  }

  private async imageRm(r: Req): Promise<{ name: string }> {
    const name = str(r.name, 'name');
    const img = this.view.images[name];
    if (!img) throw new ApiError(`no such image "${name}" (tsctl image ls lists them)`, 404);
    const users = Object.values(this.view.containers).filter((c) => c.spec.image === name);
    if (users.length && r.force !== true) throw new ApiError(`image "${name}" is used by container ${users[0].name}: remove it first or use image rm -f`, 409);
    const { seq } = await this.log.append(subjects.image(img.digest.slice(7)), 'ImageRemoved', img.digest.slice(7), { name, digest: img.digest, user: userOf(r) });
    await this.keeper.waitFor(seq);
    if (!Object.values(this.view.images).some((i) => i.digest === img.digest)) await this.images.delete(img.digest.replace(':', '-')).catch(() => undefined);
    return { name };
  }
}

const BUILTIN_NETWORKS = ['bridge', 'host', 'none'];

/** The first 10.89.N.0/24 that overlaps no network (docker picks from its own pools likewise). */
function freeSubnet(taken: Cidr[]): string {
  for (let i = 0; i < 256; i++) {
    const c = parseCidr(`10.89.${i}.0/24`);
    if (!taken.some((t) => overlaps(t, c))) return formatCidr(c);
  }
  throw new ApiError('no free subnet left in 10.89.0.0/16: give one with --subnet');
}

function check<T extends keyof typeof payloadChecks>(type: T, v: unknown): ReturnType<(typeof payloadChecks)[T]> {
  try {
    return (payloadChecks[type] as (v: unknown, f: string) => never)(v, '');
  } catch (err) {
    if (err instanceof ValidationError) throw new ApiError(`invalid request: ${err.message}`);
    throw err;
  }
}

function limitsOk(f: () => unknown): void {
  try { f(); } catch (err) {
    if (err instanceof LimitError) throw new ApiError(err.message);
    throw err;
  }
}

function parseJson(b: Uint8Array): Req {
  if (b.length === 0) return {};
  let v: unknown;
  try { v = JSON.parse(new TextDecoder().decode(b)); } catch { throw new ApiError('request is not JSON'); }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError('request is not a JSON object');
  return v as Req;
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw new ApiError(`${field} must be a non-empty string`);
  return v;
}

function intIn(v: unknown, min: number, max: number, field: string): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw new ApiError(`invalid ${field} ${JSON.stringify(v)}: a whole number from ${min} to ${max}`);
  return n;
}

const SIGNALS = ['HUP', 'INT', 'QUIT', 'ILL', 'TRAP', 'ABRT', 'BUS', 'FPE', 'KILL', 'USR1', 'SEGV', 'USR2', 'PIPE', 'ALRM', 'TERM',
  'STKFLT', 'CHLD', 'CONT', 'STOP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'XCPU', 'XFSZ', 'VTALRM', 'PROF', 'WINCH', 'IO', 'PWR', 'SYS'];

export function signalName(v: unknown): string {
  const s = String(v).toUpperCase().replace(/^SIG/, '');
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= SIGNALS.length) return `SIG${SIGNALS[n - 1]}`;
  } else if (SIGNALS.includes(s)) return `SIG${s}`;
  throw new ApiError(`invalid signal "${String(v)}": use a name like TERM or KILL, or a number`);
}

function userOf(r: Req): string {
  return typeof r.user === 'string' && r.user.length <= 256 ? r.user : 'unknown';
}

export { ID_RE };
