// Placement and ps benchmark (not a test): the controller's view at scale, pure (no server).
//   node dist/test/bench/placement.js [NODES] [RUNNING] [HISTORY]
// 1. NODES nodes and RUNNING running containers: place() alone, and a whole placement as run
//    does it (name check, place, the ContainerRequested folded into the view), median and rate.
// 2. HISTORY containers in the view of which 1,000 run: one ps page of the running ones,
//    and every page of ps -a (as tsctl pages it), server side.
import { emptyView, indexOf, reduce, type ClusterView } from '../../shared/reducer.js';
import type { AnyEvent, ContainerSpec, StoredEvent } from '../../shared/events.js';
import { place } from '../../controller/placement.js';
import { psPage } from '../../controller/api/ps.js';

const NODES = Number(process.argv[2] ?? 1000);
const RUNNING = Number(process.argv[3] ?? 100_000);
const HISTORY = Number(process.argv[4] ?? 100_000);

const spec = (name: string): ContainerSpec => ({
  name, image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['sleep', '1000'], env: ['A=1'], hostname: name.slice(0, 12), workdir: '/', network: 'bridge', autoRemove: false,
  resources: { cpus: 0.01, memory: 4 << 20 },
});
const cid = (i: number) => i.toString(16).padStart(64, '0');

// events go straight into the reducer (the codec has its own benchmark), each source's srcSeq
// counting up (hashes left empty: the links agree, so the fold sees whole chains)
let seq = 0;
let srcSeqs = new Map<string, number>();
const ev = (src: string, type: AnyEvent['type'], entity: string, data: unknown): StoredEvent => {
  const n = (srcSeqs.get(src) ?? 0) + 1;
  srcSeqs.set(src, n);
  return { seq: ++seq, hash: '', event: { v: 1, id: `e${seq}`, type, ts: seq, src, srcSeq: n, prev: '', entity, data } as AnyEvent };
};

function build(nodes: number, total: number, running: number): ClusterView {
  const v = emptyView();
  indexOf(v);
  for (let n = 0; n < nodes; n++) reduce(v, ev(`node:n${n}`, 'NodeJoined', `n${n}`, { hostname: `n${n}`, cpus: 64, memory: 2 ** 40, kernel: '6.1', features: [], version: 'b' }));
  for (let i = 0; i < total; i++) {
    const node = `n${i % nodes}`, id = cid(i + 1);
    reduce(v, ev('controller', 'ContainerRequested', id, { node, spec: spec(`c${i}`), user: 'u' }));
    reduce(v, ev(`node:${node}`, 'ContainerStarted', id, { pid: 100, receivedAt: 1, runningAt: 2 }));
    if (i >= running) reduce(v, ev(`node:${node}`, 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: 3 }));
  }
  return v;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function main(): void {
  let t0 = performance.now();
  const v = build(NODES, RUNNING, RUNNING);
  console.log(`placement benchmark, ${NODES} nodes, ${RUNNING} running containers (view built in ${Math.round(performance.now() - t0)} ms), ${new Date().toISOString()}`);
  const s = spec('new');
  const pure: number[] = [];
  for (let r = 0; r < 2000; r++) { const t = performance.now(); place(v, s); pure.push(performance.now() - t); }
  const ix = indexOf(v);
  const whole: number[] = [];
  for (let r = 0; r < 2000; r++) {
    const t = performance.now();
    const name = `new${r}`;
    if (ix.named(name) !== undefined) throw new Error('name taken');
    const n = place(v, s);
    reduce(v, ev('controller', 'ContainerRequested', cid(RUNNING + r + 1), { node: n.id, spec: spec(name), user: 'u' }));
    whole.push(performance.now() - t);
  }
  const p = median(pure), w = median(whole);
  console.log(`place()                         median ${(p * 1000).toFixed(1)} us  ${Math.round(1000 / p)} placements/s`);
  console.log(`name check + place + fold       median ${(w * 1000).toFixed(1)} us  ${Math.round(1000 / w)} placements/s (goal >= 10000)`);

  seq = 0; srcSeqs = new Map();
  t0 = performance.now();
  const h = build(Math.min(NODES, 100), HISTORY, 1000);
  console.log(`ps, ${HISTORY} containers in the view, 1000 running (built in ${Math.round(performance.now() - t0)} ms)`);
  const runningPs: number[] = [];
  for (let r = 0; r < 50; r++) {
    const t = performance.now();
    let n = 0;
    for (let off: number | undefined = 0; off !== undefined;) { const pg = psPage(h, { offset: off }); JSON.stringify(pg); n += pg.items.length; off = pg.next; }
    if (n !== 1000) throw new Error(`ps saw ${n}`);
    runningPs.push(performance.now() - t);
  }
  console.log(`ps (1000 running, every page)   median ${median(runningPs).toFixed(2)} ms (goal <= 20 ms)`);
  t0 = performance.now();
  let pagesN = 0, n = 0;
  const first = performance.now();
  let firstMs = 0;
  for (let off: number | undefined = 0; off !== undefined;) {
    const pg = psPage(h, { all: true, offset: off }); JSON.stringify(pg); n += pg.items.length; off = pg.next; pagesN += 1;
    if (pagesN === 1) firstMs = performance.now() - first;
  }
  const allMs = performance.now() - t0;
  console.log(`ps -a (${n} containers)        ${pagesN} pages in ${Math.round(allMs)} ms (${(allMs / pagesN).toFixed(2)} ms a page; the first, which sorts: ${firstMs.toFixed(1)} ms)`);
}

main();
