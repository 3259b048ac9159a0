// Network verbs: create, rm, ls, inspect. A network is asked of every node and exists once
// each has answered NetworkCreated (or one refused it, with the reason).
import { networkEntity } from '../../shared/events.js';
import { subjects } from '../../shared/subjects.js';
import { NETWORK_RE } from '../../shared/ids.js';
import { parseCidr, formatCidr, overlaps, type Cidr } from '../../shared/cidr.js';
import { controllerApi as api, type NetworkInspectReply, type NetworkListEntry } from '../../shared/api/controller.js';
import { conflict, invalid, notFound, timedOut } from '../../shared/rpc.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { own } from '../../shared/reducer.js';
import { checked, nonEmpty, userOf, type ApiContext } from './context.js';

export const BUILTIN_NETWORKS = ['bridge', 'host', 'none'];

export function networkVerbs(ctx: ApiContext): Bound[] {
  return [
    bind(api.networkCreate, (r) => create(ctx, r)),
    bind(api.networkRm, (r) => remove(ctx, r)),
    bind(api.networkLs, () => list(ctx)),
    bind(api.networkInspect, (r) => inspect(ctx, r.name)),
  ];
}

async function create(ctx: ApiContext, r: { name: string; subnet?: string; gateway?: string; user?: string }): Promise<{ name: string; subnet: string }> {
  const view = ctx.view();
  const name = nonEmpty(r.name, 'name');
  if (!NETWORK_RE.test(name)) throw invalid(`invalid network name "${name}": lower-case letters, digits, _ and -, at most 32`);
  if (BUILTIN_NETWORKS.includes(name) || own(view.networks, name)) throw conflict(`network "${name}" already exists`);
  const nodes = Object.keys(view.nodes);
  if (nodes.length === 0) throw invalid('no node has joined the cluster (is an agent running? ops/up starts one)');
  const taken = Object.values(view.networks).map((n) => parseCidr(n.subnet));
  let subnet: string;
  if (r.subnet !== undefined) {
    subnet = nonEmpty(r.subnet, 'subnet');
    let c;
    try { c = parseCidr(subnet); } catch (err) { throw invalid(`invalid --subnet "${subnet}": ${(err as Error).message}`); }
    if (c.prefix > 29) throw invalid(`invalid --subnet "${subnet}": at most /29, a network needs room for a gateway and containers`);
    subnet = formatCidr(c);
    const clash = Object.values(view.networks).find((n) => overlaps(parseCidr(n.subnet), c));
    if (clash) throw conflict(`subnet ${subnet} overlaps network "${clash.name}" (${clash.subnet}): choose another --subnet`);
  } else {
    subnet = freeSubnet(taken);
  }
  const gateway = r.gateway === undefined ? undefined : nonEmpty(r.gateway, 'gateway');
  // the name is taken before any node is told (fenced: controller/lease.ts)
  if (ctx.claim) await ctx.claim('network', name, networkEntity(name));
  let last = 0;
  for (const node of nodes) {
    const data = checked('NetworkCreateRequested', { node, name, subnet, ...(gateway ? { gateway } : {}), user: userOf(r) });
    last = (await ctx.append(subjects.desired(node, networkEntity(name)), 'NetworkCreateRequested', networkEntity(name), data)).seq;
  }
  await ctx.waitFor(last);
  // the nodes answer NetworkCreated, or refuse (e.g. the subnet overlaps a host route)
  await ctx.until(() => {
    const n = own(ctx.view().networks, name);
    return !n || Object.values(n.nodes).every((x) => x.state === 'ready');
  }, 10000).catch(() => { throw timedOut(`network "${name}" was asked for, but not every node confirmed it within 10 s (are their agents running? tsctl network ls shows it)`); });
  if (!own(ctx.view().networks, name)) throw conflict(`network "${name}" was refused: ${own(ctx.view().networkErrors, name) ?? 'no reason given'}`);
  return { name, subnet };
}

async function remove(ctx: ApiContext, r: { name: string; user?: string }): Promise<{ name: string }> {
  const name = nonEmpty(r.name, 'name');
  if (BUILTIN_NETWORKS.includes(name)) throw conflict(`network "${name}" is built in and cannot be removed`);
  const n = own(ctx.view().networks, name);
  if (!n) throw notFound(`no such network "${name}" (tsctl network ls lists them)`);
  const users = Object.values(ctx.view().containers).filter((c) => c.spec.network === name);
  if (users.length) throw conflict(`network "${name}" is in use by container ${users.map((c) => c.name).join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first`);
  let last = 0;
  for (const node of Object.keys(n.nodes)) {
    last = (await ctx.append(subjects.desired(node, networkEntity(name)), 'NetworkRemoveRequested', networkEntity(name), { node, name, user: userOf(r) })).seq;
  }
  await ctx.waitFor(last);
  await ctx.until(() => !own(ctx.view().networks, name), 10000)
    .catch(() => { throw timedOut(`network "${name}": not every node confirmed the removal within 10 s (are their agents running?)`); });
  return { name };
}

function list(ctx: ApiContext): NetworkListEntry[] {
  const view = ctx.view();
  const builtin = BUILTIN_NETWORKS.map((name) => ({ name, driver: name === 'bridge' ? 'bridge' : name, subnet: '', builtin: true, nodes: Object.keys(view.nodes) }));
  const user = Object.values(view.networks).sort((a, b) => a.name.localeCompare(b.name))
    .map((n) => ({ name: n.name, driver: 'bridge', subnet: n.subnet, gateway: n.gateway, builtin: false, nodes: Object.keys(n.nodes), createdAt: n.createdAt }));
  return [...builtin, ...user];
}

function inspect(ctx: ApiContext, name: string): NetworkInspectReply {
  const view = ctx.view();
  const n = own(view.networks, name);
  if (!n && !BUILTIN_NETWORKS.includes(name)) throw notFound(`no such network "${name}" (tsctl network ls lists them)`);
  const containers = Object.values(view.containers).filter((c) => c.spec.network === name)
    .map((c) => ({ id: c.id, name: c.name, node: c.node, ip: c.ip ?? null, state: c.state }));
  return { name, driver: n || name === 'bridge' ? 'bridge' : name, subnet: n?.subnet ?? null, gateway: n?.gateway ?? null, createdBy: n?.createdBy ?? null, nodes: n?.nodes ?? {}, containers };
}

/** The first 10.89.N.0/24 that overlaps no network (docker picks from its own pools likewise). */
function freeSubnet(taken: Cidr[]): string {
  for (let i = 0; i < 256; i++) {
    const c = parseCidr(`10.89.${i}.0/24`);
    if (!taken.some((t) => overlaps(t, c))) return formatCidr(c);
  }
  throw conflict('no free subnet left in 10.89.0.0/16: give one with --subnet');
}
