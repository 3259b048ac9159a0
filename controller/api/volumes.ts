// Volume verbs: create, ls, inspect, rm, prune. A named volume belongs to one node (docker's
// local driver: a directory there); the node makes and removes it and says so in the log
// (VolumeCreated / VolumeRemoved), so the view and the audit know every volume. A volume a
// container of its node uses (running or stopped) is never removed: refused here, and by the
// node again (a request written by hand does not get past it).
import { controllerApi as api, type VolumeEntry, type VolumeRef } from '../../shared/api/controller.js';
import { conflict, invalid, notFound, timedOut } from '../../shared/rpc.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { own, type ClusterView, type VolumeView } from '../../shared/reducer.js';
import { subjects } from '../../shared/subjects.js';
import { LABEL_KEY_RE } from '../../shared/schema.js';
import { VOLUME_NAME_RE, volumeEntity, volumeKey, volumesOf } from '../../shared/volumes.js';
import { checked, nonEmpty, userOf, type ApiContext } from './context.js';

const WAIT_MS = 10_000;

export function volumeVerbs(ctx: ApiContext): Bound[] {
  return [
    bind(api.volumeCreate, (r) => create(ctx, r)),
    bind(api.volumeLs, (r) => list(ctx.view(), r.node)),
    bind(api.volumeInspect, (r) => entry(ctx.view(), find(ctx.view(), r))),
    bind(api.volumeRm, (r) => remove(ctx, r)),
    bind(api.volumePrune, (r) => prune(ctx, r)),
  ];
}

/** Pure: the volume's name checked, in one line that shows no control bytes. */
export function volumeName(v: string | undefined): string {
  const name = nonEmpty(v, 'name');
  if (!VOLUME_NAME_RE.test(name)) {
    throw invalid(`invalid volume name "${name.slice(0, 64).replace(/[^\x20-\x7e]/g, '?')}${name.length > 64 ? '…' : ''}": letters, digits, _ . - (at most 128, the first a letter or digit)`);
  }
  return name;
}

/** The containers of the volume's node that name it (any state but gone). */
export function usersOf(view: ClusterView, v: { name: string; node: string }): { id: string; name: string; state: string }[] {
  return Object.values(view.containers).filter((c) => c.node === v.node && volumesOf(c.spec.mounts).includes(v.name))
    .map((c) => ({ id: c.id, name: c.name, state: c.state }));
}

function entry(view: ClusterView, v: VolumeView): VolumeEntry {
  return {
    name: v.name, node: v.node, driver: 'local', state: v.state, mountpoint: v.mountpoint ?? null, labels: v.labels ?? {},
    createdAt: v.createdAt, createdBy: v.createdBy, containers: usersOf(view, v), ...(v.anonymous ? { anonymous: true } : {}),
  };
}

function list(view: ClusterView, node?: string): VolumeEntry[] {
  return Object.values(view.volumes ?? {}).filter((v) => !node || v.node === node)
    .sort((a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name)).map((v) => entry(view, v));
}

function find(view: ClusterView, r: VolumeRef): VolumeView {
  const name = volumeName(r.name);
  if (r.node !== undefined) {
    const v = own(view.volumes ?? {}, volumeKey(r.node, name));
    if (!v) throw notFound(`no such volume "${name}" on node ${r.node} (tsctl volume ls lists them)`);
    return v;
  }
  const hits = Object.values(view.volumes ?? {}).filter((v) => v.name === name);
  if (!hits.length) throw notFound(`no such volume "${name}" (tsctl volume ls lists them)`);
  if (hits.length > 1) throw invalid(`volume "${name}" is on nodes ${hits.map((v) => v.node).join(', ')}: say which with --node`);
  return hits[0]!;
}

/** Pure: key=value labels as a record (docker's --label). */
export function parseLabels(list: string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const l of list) {
    const eq = l.indexOf('=');
    const k = eq < 0 ? l : l.slice(0, eq);
    if (!LABEL_KEY_RE.test(k)) throw invalid(`invalid --label "${l.slice(0, 64)}": KEY=VALUE, the key letters, digits, . _ - /`);
    out[k] = eq < 0 ? '' : l.slice(eq + 1);
  }
  return out;
}

/** The node a request names, or the cluster's only one. */
function nodeFor(view: ClusterView, node: string | undefined): string {
  if (node !== undefined) {
    if (!own(view.nodes, node)) throw notFound(`no such node "${node.slice(0, 64)}" (tsctl node ls lists them)`);
    return node;
  }
  const nodes = Object.keys(view.nodes);
  if (nodes.length === 0) throw invalid('no node has joined the cluster (is an agent running? ops/up starts one)');
  if (nodes.length > 1) throw invalid(`a volume lives on one node and this cluster has ${nodes.length}: say which with --node`);
  return nodes[0]!;
}

/**
 * Asks `node` for the volume unless the view has it there; does not wait (a run's -v NAME:DST
 * asks before its ContainerRequested, which the node applies after it).
 */
export async function requestVolume(ctx: ApiContext, node: string, name: string, user: string, labels?: Record<string, string>, anonymous = false): Promise<number | undefined> {
  const v = own(ctx.view().volumes ?? {}, volumeKey(node, name));
  if (v?.state === 'removing') throw conflict(`volume "${name}" on node ${node} is being removed: try again when it is gone`);
  if (v) return undefined;
  const data = checked('VolumeCreateRequested', { node, name, ...(labels ? { labels } : {}), ...(anonymous ? { anonymous } : {}), user });
  return (await ctx.append(subjects.desired(node, volumeEntity(name)), 'VolumeCreateRequested', volumeEntity(name), data)).seq;
}

async function create(ctx: ApiContext, r: { name: string; node?: string; labels?: string[]; user?: string }): Promise<{ name: string; node: string }> {
  const name = volumeName(r.name);
  const labels = parseLabels(r.labels);
  const node = nodeFor(ctx.view(), r.node);
  const seq = await requestVolume(ctx, node, name, userOf(r), labels);
  if (seq === undefined) return { name, node }; // docker: creating an existing volume is not an error
  await ctx.waitFor(seq);
  const key = volumeKey(node, name);
  await ctx.until(() => own(ctx.view().volumes ?? {}, key)?.state !== 'requested', WAIT_MS)
    .catch(() => { throw timedOut(`volume "${name}" was asked of node ${node}, which did not confirm it within ${WAIT_MS / 1000} s (is its agent running?)`); });
  if (!own(ctx.view().volumes ?? {}, key)) throw conflict(`volume "${name}" was refused by node ${node}: ${own(ctx.view().volumeErrors ?? {}, key) ?? 'no reason given'}`);
  return { name, node };
}

/** Appends the removal of `v` after the in-use check; the position to wait for. */
async function requestRemoval(ctx: ApiContext, v: VolumeView, user: string): Promise<number> {
  const users = usersOf(ctx.view(), v);
  if (users.length) throw conflict(`volume "${v.name}" on node ${v.node} is in use by container ${users.map((c) => c.name).join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first`);
  if (v.state === 'requested') throw conflict(`volume "${v.name}" on node ${v.node} is still being made: try again shortly`);
  const data = checked('VolumeRemoveRequested', { node: v.node, name: v.name, user });
  return (await ctx.append(subjects.desired(v.node, volumeEntity(v.name)), 'VolumeRemoveRequested', volumeEntity(v.name), data)).seq;
}

/** Waits until every volume of `keys` is gone or back (refused); the refusals by key. */
async function settled(ctx: ApiContext, keys: string[], last: number): Promise<Map<string, string>> {
  await ctx.waitFor(last);
  await ctx.until(() => keys.every((k) => own(ctx.view().volumes ?? {}, k)?.state !== 'removing'), WAIT_MS)
    .catch(() => { throw timedOut(`not every node confirmed the removal within ${WAIT_MS / 1000} s (are their agents running? tsctl volume ls shows what is left)`); });
  const refused = new Map<string, string>();
  for (const k of keys) if (own(ctx.view().volumes ?? {}, k)) refused.set(k, own(ctx.view().volumeErrors ?? {}, k) ?? 'no reason given');
  return refused;
}

async function remove(ctx: ApiContext, r: VolumeRef): Promise<{ name: string; node: string }> {
  const v = find(ctx.view(), r);
  const seq = await requestRemoval(ctx, v, userOf(r));
  const refused = (await settled(ctx, [volumeKey(v.node, v.name)], seq)).values().next().value;
  if (refused !== undefined) throw conflict(`node ${v.node} refused to remove volume "${v.name}": ${refused}`);
  return { name: v.name, node: v.node };
}

// docker 23+: only anonymous volumes unless `all` (a named volume is kept data someone chose a name for)
async function prune(ctx: ApiContext, r: { node?: string; all?: boolean; user?: string }): Promise<{ removed: { name: string; node: string }[] }> {
  const view = ctx.view();
  const unused = Object.values(view.volumes ?? {}).filter((v) => (!r.node || v.node === r.node) && (r.all === true || v.anonymous === true) && v.state === 'ready' && !usersOf(view, v).length);
  let last = 0;
  for (const v of unused) last = await requestRemoval(ctx, v, userOf(r));
  if (!unused.length) return { removed: [] };
  const refused = await settled(ctx, unused.map((v) => volumeKey(v.node, v.name)), last);
  return { removed: unused.filter((v) => !refused.has(volumeKey(v.node, v.name))).map((v) => ({ name: v.name, node: v.node })) };
}
