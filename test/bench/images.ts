// Image figures of issue 12 (not a test), each against its baseline in the same run:
// - pull of a 5-layer image (busybox + four 8 MB layers) from a local docker-registry by
//   `tsctl image pull` (process included, cold store: the image is removed between runs)
//   vs `skopeo copy` of it to an OCI layout (goal ≤ 1.2×); tsctl as /usr/local/bin/tsctl runs it
//   (native/build/tsctl, the warm tsctl's C client) and as `node bin/tsctl.cjs`, interleaved;
// - desired event → running (ContainerStarted runningAt - receivedAt) of a 10-layer image vs
//   a 1-layer image, interleaved (goal: within 2 ms, medians);
// - layer import: our untar vs GNU `tar -x` of the same layer (goal ≥ 0.8× its throughput).
//   node dist/test/bench/images.js [N]
//   BENCH_BASE_TSCTL=PATH also times another build's tsctl pull in the same rounds (A/B);
//   BENCH_ONLY=pull stops after the pull figures; BENCH_ONLY=import gives only the import figure
//   (no cluster, no registry), BENCH_IMPORT_ROUNDS=N its rounds (5), BENCH_BASE_UNTAR=PATH times
//   another build's dist/agent/storage/untar.js in the same rounds (A/B).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Cluster, ROOT } from '../helpers/cluster.js';
import { tarball } from '../helpers/tarball.js';
import { Registry, fiveLayerLayout, layersStored, skopeo } from '../helpers/registry.js';
import { untar } from '../../agent/storage/untar.js';
import { Readable } from 'node:stream';
import { StorageType } from 'nats';
import { dial } from '../../tsctl/client.js';
import { readCreds } from '../../shared/nats/trust.js';
import { IMAGE_BUCKET } from '../../shared/subjects.js';

const N = Number(process.argv[2] ?? 15);
const ROUNDS = Number(process.env.BENCH_IMPORT_ROUNDS ?? 5);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const f = (ms: number) => `${ms.toFixed(2)} ms`;
type Ev = { type: string; entity: string; data: { spec?: { image?: string }; runningAt?: number; receivedAt?: number } };

async function main(): Promise<void> {
  if (process.env.BENCH_ONLY === 'import') {
    // no cluster and no registry: only the layout's blobs, in a temp dir
    const dir = mkdtempSync(join(tmpdir(), 'swl-bench-import-'));
    try {
      const { layout, busybox } = fiveLayerLayout(dir, ROOT);
      moreImages(layout, busybox);
      await layerImport(dir);
    } finally { rmSync(dir, { recursive: true, force: true }); }
    return;
  }
  const c = await Cluster.start();
  let reg: Registry | undefined;
  try {
    reg = await Registry.start(join(c.dir, 'registry'));
    const { layout, busybox, big } = fiveLayerLayout(c.dir, ROOT);
    moreImages(layout, busybox);
    for (const tag of ['five', 'one', 'ten']) skopeo([`oci:${layout.dir}:${tag}`, `docker://${reg.host}/bench/${tag}:1`]);

    // pull vs skopeo copy, interleaved, cold each time. A warm pull answers before its layers
    // are in the object store (it fills it after): each round waits for them before going on
    // (an image rm before then would leave the fill's objects for the next round to find)
    const ours: number[] = [], theirs: number[] = [], base: number[] = [], filled: number[] = [];
    const baseTsctl = process.env.BENCH_BASE_TSCTL;
    const fillNc = await dial(c.url, readCreds(c.adminCreds));
    const fillOs = await fillNc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    const allStored = () => layersStored(fillOs, [busybox, ...big]);
    // tsctl as a user runs it: what /usr/local/bin/tsctl links to (ops/setup), the C client of
    // the warm tsctl; and `node bin/tsctl.cjs` (c.ok), what the tests run. Each way once first,
    // to start its warm process (the C client's first call starts one through bin/tsctl.cjs)
    const client = join(ROOT, 'native/build/tsctl');
    const pullOf = async (way: 'client' | 'node'): Promise<number> => {
      const t0 = performance.now();
      if (way === 'node') await c.ok(['image', 'pull', `${reg!.host}/bench/five:1`, '--name', 'five']);
      else {
        const r = spawnSync(client, ['image', 'pull', `${reg!.host}/bench/five:1`, '--name', 'five'], { env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds }, encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`tsctl (${client}) pull: ${r.stderr}`);
      }
      return performance.now() - t0;
    };
    for (const way of ['client', 'node'] as const) { await pullOf(way); await allStored(); await c.ok(['image', 'rm', 'five']); }
    const viaNode: number[] = [], viaNodeFilled: number[] = [];
    for (let i = 0; i < 5; i++) {
      for (const way of i % 2 ? ['client', 'node'] as const : ['node', 'client'] as const) {
        const t0 = performance.now();
        (way === 'client' ? ours : viaNode).push(await pullOf(way));
        await allStored();
        (way === 'client' ? filled : viaNodeFilled).push(performance.now() - t0);
        await c.ok(['image', 'rm', 'five']);
      }
      let t0: number;
      if (baseTsctl) {
        t0 = performance.now();
        const r = spawnSync(process.execPath, [baseTsctl, 'image', 'pull', `${reg.host}/bench/five:1`, '--name', 'five'], { env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds }, encoding: 'utf8' });
        base.push(performance.now() - t0);
        if (r.status !== 0) throw new Error(`base tsctl pull: ${r.stderr}`);
        await c.ok(['image', 'rm', 'five']);
      }
      const dir = mkdtempSync(join(c.dir, 'skopeo-'));
      t0 = performance.now();
      skopeo(['--src-tls-verify=false', `docker://${reg.host}/bench/five:1`, `oci:${dir}:1`]);
      theirs.push(performance.now() - t0);
      rmSync(dir, { recursive: true, force: true });
    }
    console.log(`swarmlite image benchmark, ${new Date().toISOString()}`);
    console.log(`pull, 5 layers (${(big.reduce((n, b) => n + b.length, busybox.length) / 1e6).toFixed(1)} MB): tsctl image pull median ${f(median(ours))}, skopeo copy to an OCI layout ${f(median(theirs))}: ${(median(ours) / median(theirs)).toFixed(2)}x (goal <= 1.2x)`);
    await fillNc.close();
    console.log(`  its layers all in the object store (the fill after the answer) at median ${f(median(filled))} from the pull's start`);
    console.log(`  the same as node bin/tsctl.cjs median ${f(median(viaNode))}: ${(median(viaNode) / median(theirs)).toFixed(2)}x (its layers stored at ${f(median(viaNodeFilled))})`);
    if (baseTsctl) console.log(`  base build (${baseTsctl}) median ${f(median(base))}: ${(median(base) / median(theirs)).toFixed(2)}x; this build is ${(median(base) / median(ours)).toFixed(2)}x faster`);
    if (process.env.BENCH_ONLY === 'pull') return;

    // where a pull's time goes: the same bytes put into the object store with nothing else
    const nc = await dial(c.url, readCreds(c.adminCreds));
    const os = await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    const raw: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      for (const [k, b] of [busybox, ...big].entries()) await os.put({ name: `bench-${k}` }, Readable.toWeb(Readable.from([b])) as ReadableStream<Uint8Array>);
      raw.push(performance.now() - t0);
      for (let k = 0; k < 5; k++) await os.delete(`bench-${k}`);
    }
    await nc.close();
    console.log(`  of which the object store: the same 5 layers put with nothing else, sequentially, median ${f(median(raw))}`);

    // start of a 10-layer vs a 1-layer image
    await c.ok(['image', 'pull', `${reg.host}/bench/one:1`, '--name', 'one']);
    await c.ok(['image', 'pull', `${reg.host}/bench/ten:1`, '--name', 'ten']);
    for (const img of ['one', 'ten', 'one', 'ten']) await c.ok(['run', '--rm', '--network', 'none', img, 'true']);
    const seen = (await c.ok(['events', '--format', 'json'])).trim().split('\n').length;
    for (let i = 0; i < N; i++) for (const img of ['one', 'ten']) await c.ok(['run', '--rm', '--network', 'none', img, 'true']);
    const events = (await c.ok(['events', '--format', 'json'])).trim().split('\n').slice(seen).map((l) => JSON.parse(l) as Ev);
    const imageOf = new Map(events.filter((e) => e.type === 'ContainerRequested').map((e) => [e.entity, e.data.spec!.image!]));
    const one: number[] = [], ten: number[] = [];
    for (const e of events.filter((x) => x.type === 'ContainerStarted')) (imageOf.get(e.entity) === 'ten' ? ten : one).push(e.data.runningAt! - e.data.receivedAt!);
    console.log(`desired event -> running, N=${N} each: 1 layer median ${f(median(one))}, 10 layers ${f(median(ten))}: +${f(median(ten) - median(one))} (goal <= 2 ms)`);

    await layerImport(c.dir);
  } finally {
    await reg?.stop();
    await c.stop();
  }
}

/** The 1-layer and 10-layer images of the start figure (their blobs are in the import figure's tar too). */
function moreImages(layout: ReturnType<typeof fiveLayerLayout>['layout'], busybox: Buffer): void {
  layout.image('one', [busybox]);
  layout.image('ten', [busybox, ...Array.from({ length: 9 }, (_, i) => tarball([{ name: `etc/layer${i}`, body: `${i}\n` }]))]);
}

/**
 * Layer import: untar vs tar -x of one tar of the layout's blobs (busybox, four 8 MB layers and
 * the small ones: the figure of the goal, mostly file data), then of the busybox layer itself
 * (~400 entries, nearly all symlinks: the cost per entry), interleaved. BENCH_BASE_UNTAR=PATH
 * (another build's dist/agent/storage/untar.js) is timed in the same rounds (A/B). CPU is the
 * untar process's own (all its threads).
 */
async function layerImport(dir: string): Promise<void> {
  const mixed = join(dir, 'mixed.tar');
  require_ok(spawnSync('tar', ['-cf', mixed, '-C', dir, 'oci/blobs']));
  const basePath = process.env.BENCH_BASE_UNTAR;
  const baseUntar = basePath ? (await import(basePath) as { untar: typeof untar }).untar : undefined;
  for (const [tar, what] of [[mixed, 'layer import'], [join(dir, 'busybox.tar'), '  busybox layer']]) {
    const size = statSync(tar).size;
    const tx: number[] = [], un: number[] = [], cpu: number[] = [], bx: number[] = [], bcpu: number[] = [];
    const timed = async (f: typeof untar, wall: number[], cpuMs: number[]) => {
      const b = mkdtempSync(join(dir, 'untar-'));
      const c0 = process.cpuUsage(), t0 = performance.now();
      await f(tar, b);
      wall.push(performance.now() - t0);
      const u = process.cpuUsage(c0);
      cpuMs.push((u.user + u.system) / 1000);
      rmSync(b, { recursive: true, force: true });
    };
    for (let i = 0; i < ROUNDS; i++) {
      const a = mkdtempSync(join(dir, 'tar-'));
      const t0 = performance.now();
      require_ok(spawnSync('tar', ['-xf', tar, '-C', a]));
      tx.push(performance.now() - t0);
      rmSync(a, { recursive: true, force: true });
      await timed(untar, un, cpu);
      if (baseUntar) await timed(baseUntar, bx, bcpu);
    }
    const mbs = (ms: number) => `${(size / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
    console.log(`${what} (${(size / 1e6).toFixed(1)} MB), ${ROUNDS} rounds: GNU tar -x ${mbs(median(tx))}, untar ${mbs(median(un))} (CPU ${median(cpu).toFixed(1)} ms): ${(median(tx) / median(un)).toFixed(2)}x its throughput${tar === mixed ? ' (goal >= 0.8x)' : ''}`);
    if (baseUntar) console.log(`  base untar (${basePath}) ${mbs(median(bx))} (CPU ${median(bcpu).toFixed(1)} ms): ${(median(tx) / median(bx)).toFixed(2)}x; this build is ${(median(bx) / median(un)).toFixed(2)}x faster`);
  }
}

function require_ok(r: ReturnType<typeof spawnSync>): void { if (r.status !== 0) throw new Error(String(r.stderr)); }

main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
