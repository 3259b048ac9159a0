// The view's indices (shared/reducer.ts ViewIndex) kept by the fold must always equal indices
// built afresh from the containers; ps (controller/api/ps.ts) pages, filters and stays under
// its byte budget; placement weighs the index's per-node load.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deferredIndexOf, emptyView, indexOf, reduce, ViewIndex, type ClusterView } from '../shared/reducer.js';
import { psPage } from '../controller/api/ps.js';
import { place } from '../controller/placement.js';
import { PS_PAGE_BYTES, type PsRequest } from '../shared/api/controller.js';
import type { ContainerSpec } from '../shared/events.js';
import { MemLog } from './helpers/memlog.js';

const spec = (name: string, over: Partial<ContainerSpec> = {}): ContainerSpec => ({
  name, image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'bridge', autoRemove: false, ...over,
});
const cid = (i: number) => i.toString(16).padStart(64, '0');

/** What an index says, in plain data (to compare a kept index with a rebuilt one). */
function dump(ix: ViewIndex, view: ClusterView) {
  const sets = (m: ReadonlyMap<string, Set<string>>) => Object.fromEntries([...m].filter(([, s]) => s.size).map(([k, s]) => [k, [...s].sort()]).sort());
  return {
    byNode: sets(ix.byNode), byState: sets(ix.byState as ReadonlyMap<string, Set<string>>),
    load: Object.fromEntries([...ix.load].filter(([, l]) => l.count !== 0).sort()), size: ix.size,
    names: Object.values(view.containers).map((c) => [c.name, ix.named(c.name) !== undefined]).sort(),
  };
}

// a small deterministic random walk through a container's life on three nodes
function walk(log: MemLog, steps: number, seed = 7): void {
  let x = seed;
  const rnd = (n: number) => { x = (x * 1103515245 + 12345) % 2147483648; return x % n; };
  const nodes = ['n1', 'n2', 'n3'];
  for (let i = 0; i < steps; i++) {
    const id = cid(rnd(40)), node = nodes[rnd(3)];
    const c = log.view.containers[id];
    switch (rnd(8)) {
      case 0: case 1:
        log.append('controller', `ev.desired.${node}.${id}`, 'ContainerRequested', id, { node, spec: spec(`c${rnd(30)}`, rnd(2) ? { resources: { cpus: 0.5, memory: 1 << 20 } } : {}), user: 'u' });
        break;
      case 2: if (c) log.append(`node:${c.node}`, `ev.state.${c.node}.${id}`, 'ContainerStarted', id, { pid: 10, receivedAt: 1, runningAt: 2 }); break;
      case 3: if (c) log.append(`node:${c.node}`, `ev.state.${c.node}.${id}`, 'ContainerExited', id, { exitCode: 1, oomKilled: false, exitedAt: 3 }); break;
      case 4: if (c) log.append('controller', `ev.desired.${c.node}.${id}`, 'ContainerRemoveRequested', id, { force: rnd(2) === 1, user: 'u' }); break;
      case 5: if (c) log.append(`node:${c.node}`, `ev.state.${c.node}.${id}`, 'ContainerRemoved', id, { reason: 'rm' }); break;
      case 6: if (c) log.append(`node:${c.node}`, `ev.state.${c.node}.${id}`, 'ContainerUpdated', id, { resources: { cpus: 1 } }); break;
      case 7:
        if (rnd(10) === 0) { log.append('controller', `ev.cluster.${node}`, 'NodeRemoved', node, { force: true, user: 'u' }); log.join(node); }
        else if (c) log.append(`node:${c.node}`, `ev.state.${c.node}.${id}`, 'EventRejected', id, { rejectedType: 'ContainerRequested', reason: 'no', gone: rnd(4) === 0 } as never);
        break;
    }
  }
}

test('view index - kept by the fold, equal to one rebuilt from the containers at every step', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  const kept = indexOf(log.view); // made before the events: reduce() keeps it from here on
  for (let round = 0; round < 40; round++) {
    walk(log, 50, round + 1);
    assert.equal(dump(kept, log.view), dump(new ViewIndex(log.view), log.view), `round ${round}`);
  }
  assert.ok(Object.keys(log.view.containers).length > 5, 'the walk left containers to compare');
});

test('view index - deferred through a catch-up: its size and trackers kept, its maps built on first use equal a rebuilt one', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  walk(log, 100, 99);
  const ix = deferredIndexOf(log.view); // a catch-up's: the maps wait
  const seen = { containers: new Set<string>(), nodes: new Set<string>() };
  ix.trackers.add(seen);
  for (let round = 0; round < 40; round++) {
    const before = new Set(Object.keys(log.view.containers));
    const version = ix.version;
    walk(log, 50, round + 1);
    assert.ok(ix.deferred, `round ${round}: still deferred`);
    assert.is(ix.size, Object.keys(log.view.containers).length, `round ${round}: size`);
    // every container that came, went or changed is in the tracker; one that came or went moved the version
    const now = new Set(Object.keys(log.view.containers));
    const moved = [...now].some((id) => !before.has(id)) || [...before].some((id) => !now.has(id));
    for (const id of [...now].filter((id) => !before.has(id)).concat([...before].filter((id) => !now.has(id)))) assert.ok(seen.containers.has(id), `round ${round}: ${id} tracked`);
    if (moved) assert.ok(ix.version > version, `round ${round}: version moved`);
    seen.containers.clear();
    if (round % 10 === 9) {
      // first use: built from the containers, then kept by the fold again
      assert.equal(dump(ix, log.view), dump(new ViewIndex(log.view), log.view), `round ${round}`);
      assert.not.ok(ix.deferred);
      walk(log, 50, round + 100);
      assert.equal(dump(ix, log.view), dump(new ViewIndex(log.view), log.view), `round ${round}, kept after`);
      ix.defer();
    }
  }
  ix.complete();
  assert.equal(dump(ix, log.view), dump(new ViewIndex(log.view), log.view));
});

test('view index - deferred, NodeDown and a forced NodeRemoved find a node\'s containers as a fold without an index does', () => {
  // the deferred index's per-node map is made at the first NodeDown and kept from then on by the
  // fold: a NodeDown later must strand exactly the containers a scan of the view finds
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  walk(log, 100, 5);
  const start = log.events.length;
  const ix = deferredIndexOf(log.view);
  let x = 11;
  const rnd = (n: number) => { x = (x * 1103515245 + 12345) % 2147483648; return x % n; };
  for (let round = 0; round < 40; round++) {
    walk(log, 30, round + 200);
    // a container asked for and never started: what a NodeDown strands
    const id = cid(100 + round), node = `n${rnd(3) + 1}`;
    log.append('controller', `ev.desired.${node}.${id}`, 'ContainerRequested', id, { node, spec: spec(`w${round}`), user: 'u' });
    log.append('controller', `ev.cluster.${node}`, 'NodeDown', node, { silenceMs: 3000 });
    log.join(node);
    assert.ok(ix.deferred, `round ${round}: still deferred`);
  }
  assert.ok(Object.values(log.view.containers).some((c) => c.error !== undefined), 'some container was stranded');
  // the same events folded without an index (the scan of every container)
  const replayed = emptyView();
  for (const s of log.events) reduce(replayed, s);
  assert.equal(replayed.containers, log.view.containers);
  assert.ok(log.events.length > start + 100);
  ix.complete();
  assert.equal(dump(ix, log.view), dump(new ViewIndex(log.view), log.view));
});

function fleet(running: number, exited: number, nodes = 4) {
  const log = new MemLog();
  for (let n = 1; n <= nodes; n++) log.join(`n${n}`);
  let i = 0;
  for (; i < running + exited; i++) {
    const node = `n${(i % nodes) + 1}`, id = cid(i + 1);
    log.append('controller', `ev.desired.${node}.${id}`, 'ContainerRequested', id, { node, spec: spec(i % 2 ? `odd${i}` : `even${i}`), user: 'u' });
    log.append(`node:${node}`, `ev.state.${node}.${id}`, 'ContainerStarted', id, { pid: 10, receivedAt: 1, runningAt: 2 });
    if (i >= running) log.append(`node:${node}`, `ev.state.${node}.${id}`, 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: 3 });
  }
  return log;
}

const all = (view: ClusterView, r: PsRequest) => {
  const out = [];
  for (let offset: number | undefined = 0; offset !== undefined;) { const p = psPage(view, { ...r, offset }); out.push(...p.items); offset = p.next; }
  return out;
};

test('ps - running by default, every state with all, newest first, pages that join up', () => {
  const { view } = fleet(250, 300);
  const running = all(view, {});
  assert.is(running.length, 250);
  assert.ok(running.every((c) => c.state === 'running'));
  const every = all(view, { all: true });
  assert.is(every.length, 550);
  assert.is(new Set(every.map((c) => c.id)).size, 550, 'no container twice across pages');
  for (let k = 1; k < every.length; k++) assert.ok(every[k - 1].createdAt >= every[k].createdAt);
  assert.is(psPage(view, { all: true }).items.length, 200, 'a page is at most PS_PAGE_MAX');
});

test('ps - filters: name part, node, status, id prefix; last N of any state', () => {
  const { view } = fleet(20, 20);
  assert.ok(all(view, { all: true, filter: { name: ['odd'] } }).every((c) => c.name.startsWith('odd')));
  assert.is(all(view, { all: true, filter: { name: ['odd'] } }).length, 20);
  assert.is(all(view, { filter: { node: ['n2'] } }).length, 5, 'running on n2');
  assert.is(all(view, { all: true, filter: { node: ['n2', 'n3'] } }).length, 20);
  assert.is(all(view, { filter: { status: ['exited'] } }).length, 20, 'a status filter needs no -a, as docker');
  assert.is(all(view, { filter: { status: ['exited'], node: ['n1'] } }).length, 5);
  assert.equal(all(view, { filter: { id: [cid(5)] } }).map((c) => c.id), [cid(5)]);
  assert.is(all(view, { filter: { id: [cid(5).slice(0, 63)] } }).length, 15, 'a prefix: cid(1)..cid(15) run');
  const last = all(view, { last: 3 });
  assert.is(last.length, 3);
  assert.equal(last.map((c) => c.id), all(view, { all: true }).slice(0, 3).map((c) => c.id));
  assert.is(all(view, { filter: { name: ['nothing'] } }).length, 0);
});

test('ps - a page stops at its byte budget: big containers never make a reply over the payload limit', () => {
  const log = new MemLog();
  log.join('n1');
  const big = ['sh', '-c', 'x'.repeat(60000)];
  for (let i = 1; i <= 40; i++) log.append('controller', `ev.desired.n1.${cid(i)}`, 'ContainerRequested', cid(i), { node: 'n1', spec: spec(`b${i}`, { args: big }), user: 'u' });
  const p = psPage(log.view, {});
  assert.ok(p.items.length < 40 && p.next === p.items.length, `${p.items.length} items, next ${p.next}`);
  assert.ok(Buffer.byteLength(JSON.stringify(p)) <= PS_PAGE_BYTES + 1024);
  assert.is(all(log.view, {}).length, 40);
});

test('placement - the index\'s load: fewest active containers, exited and removed ones free their node', () => {
  const log = fleet(0, 0, 3);
  const node = () => place(log.view, spec('x')).id;
  assert.is(node(), 'n1');
  log.append('controller', `ev.desired.n1.${cid(1)}`, 'ContainerRequested', cid(1), { node: 'n1', spec: spec('a'), user: 'u' });
  assert.is(node(), 'n2');
  log.append('controller', `ev.desired.n2.${cid(2)}`, 'ContainerRequested', cid(2), { node: 'n2', spec: spec('b'), user: 'u' });
  log.append('controller', `ev.desired.n3.${cid(3)}`, 'ContainerRequested', cid(3), { node: 'n3', spec: spec('c', { resources: { memory: 1 << 30 } }), user: 'u' });
  assert.is(node(), 'n1', 'equal counts: most memory left, then the first by id');
  log.append('node:n3', `ev.state.n3.${cid(3)}`, 'ContainerExited', cid(3), { exitCode: 0, oomKilled: false, exitedAt: 3 });
  assert.is(node(), 'n3', 'an exited container does not count');
  log.append('controller', `ev.desired.n3.${cid(4)}`, 'ContainerRequested', cid(4), { node: 'n3', spec: spec('d'), user: 'u' });
  log.append('controller', `ev.desired.n3.${cid(4)}`, 'ContainerRemoveRequested', cid(4), { force: true, user: 'u' });
  assert.is(node(), 'n3', 'one being removed does not count');
  assert.is(place(log.view, spec('x'), undefined, ['n2']).id, 'n2', 'only the nodes given');
});



test('ps --filter - tsctl turns KEY=VALUE[,KEY=VALUE] into the controller\'s filter; a bad one is one line', async () => {
  const { psFilter } = await import('../tsctl/requests.js');
  assert.equal(psFilter(['name=web,node=n1', 'name=db', 'status=exited']), { name: ['web', 'db'], node: ['n1'], status: ['exited'] });
  assert.is(psFilter([]), undefined);
  assert.throws(() => psFilter(['colour=red']), /invalid --filter "colour=red": name\|node\|status\|id\|label=VALUE/);
  assert.equal(psFilter(['label=team=a,b', 'label=solo']), { label: ['team=a,b', 'solo'] }, 'a label filter is one, commas and all');
  assert.throws(() => psFilter(['status=sleeping']), /status is one of created, running/);
  assert.throws(() => psFilter(['name=']), /invalid --filter/);
});
test.run();
