// `ps` over the indexed view: the page costs what it returns. The containers asked for come
// from the smallest index that holds them all (running ones, a state, a node), and only a
// listing of everything walks the whole view, in an order sorted once per change of the set.
import { indexOf, type ClusterView, type ContainerState, type ContainerView } from '../../shared/reducer.js';
import { PS_PAGE_BYTES, PS_PAGE_MAX, type PsRequest } from '../../shared/api/controller.js';

export interface PsPage { items: ContainerView[]; next?: number }

const newestFirst = (a: ContainerView, b: ContainerView) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

// The last whole listing asked for (newest first, filtered by what never changes in a
// container: name, node, id), for the view's current set of containers: the pages of one
// `ps -a` are slices of it instead of walks from the start.
const listings = new WeakMap<ClusterView, { version: number; key: string; list: ContainerView[] }>();

function everything(view: ClusterView, key: string, keep: (c: ContainerView) => boolean): ContainerView[] {
  const ix = indexOf(view);
  const hit = listings.get(view);
  if (hit && hit.version === ix.version && hit.key === key) return hit.list;
  const list = Object.values(view.containers).filter(keep).sort(newestFirst);
  listings.set(view, { version: ix.version, key, list });
  return list;
}

/** One page of `ps`: filters, `last`, then `offset`/`limit`, at most PS_PAGE_BYTES of JSON. */
export function psPage(view: ClusterView, r: PsRequest): PsPage {
  const ix = indexOf(view);
  const f = r.filter ?? {};
  const states = f.status?.length ? (f.status as ContainerState[]) : r.all === true || r.last !== undefined ? undefined : (['running', 'created'] as ContainerState[]);
  const fixed = (c: ContainerView): boolean =>
    (!f.node?.length || f.node.includes(c.node))
    // as docker: a name filter matches part of the name, an id filter the start of the id
    && (!f.name?.length || f.name.some((n) => c.name.includes(n)))
    && (!f.id?.length || f.id.some((p) => c.id.startsWith(p)))
    && (!f.label?.length || f.label.every((l) => hasLabel(c, l)));
  const match = (c: ContainerView): boolean => (!states || states.includes(c.state)) && fixed(c);

  // the smallest index that holds every match, if any is smaller than the view
  let source: ReadonlySet<string>[] | undefined;
  let size = ix.size;
  const consider = (sets: ReadonlySet<string>[]) => {
    const n = sets.reduce((a, s) => a + s.size, 0);
    if (n < size) { source = sets; size = n; }
  };
  if (states) consider(states.map((s) => ix.ids(s)));
  if (f.node?.length) consider(f.node.map((n) => ix.onNode(n)));

  const from = r.offset ?? 0;
  const limit = Math.min(r.limit ?? PS_PAGE_MAX, PS_PAGE_MAX);
  const end = r.last ?? Number.MAX_SAFE_INTEGER;
  const items: ContainerView[] = [];
  let bytes = 0;
  let k = 0; // matches seen, in order
  let more = false;
  const take = (c: ContainerView): boolean => {
    if (k >= end) return false;
    if (k++ < from) return true;
    if (items.length >= limit) { more = true; return false; }
    const b = Buffer.byteLength(JSON.stringify(c));
    if (items.length > 0 && bytes + b > PS_PAGE_BYTES) { more = true; return false; }
    items.push(c); bytes += b;
    return true;
  };
  if (source) {
    const picked: ContainerView[] = [];
    for (const s of source) for (const id of s) { const c = view.containers[id]; if (c && match(c)) picked.push(c); }
    picked.sort(newestFirst);
    for (const c of picked) if (!take(c)) break;
  } else {
    const list = everything(view, JSON.stringify([f.node, f.name, f.id, f.label]), fixed);
    if (!states) { k = from; for (let i = from; i < list.length; i++) if (!take(list[i])) break; }
    else for (const c of list) if (match(c) && !take(c)) break;
  }
  return { items, ...(more ? { next: from + items.length } : {}) };
}

/** docker's label filter: KEY (present) or KEY=VALUE (that value). */
function hasLabel(c: ContainerView, filter: string): boolean {
  const i = filter.indexOf('=');
  const labels = c.spec.labels;
  if (!labels) return false;
  if (i < 0) return Object.hasOwn(labels, filter);
  return Object.hasOwn(labels, filter.slice(0, i)) && labels[filter.slice(0, i)] === filter.slice(i + 1);
}
