// Where a pull's time goes (not a test): wall and CPU of `tsctl image pull` and of the
// processes it makes work (nats-server, the registry, the controller), against `skopeo copy`
// to an OCI layout, interleaved, cold each time. CPU is what a loaded machine cannot hide.
// Also the floor of a pull done by the agent (as Docker's daemon pulls, tsctl only asking):
// `tsctl image ls` (what any tsctl command costs before its work: node's start, the bundle,
// the TLS connection, one request) plus the five blobs fetched in this already running process
// with the project's registry client, 3 at a time, each hashed against its digest as it
// streams, either kept as content-addressed files (an agent that unpacks only when a container
// needs the layer) or unpacked by the agent's own LayerStore (one that unpacks at pull time).
// No RPC, progress or event in it: an agent-side pull costs at least that. And the object
// store alone: the same bytes put by the pull's writer (any path that puts them before it
// answers pays that). And a pull that fetches no layer (the manifest and config alone: the
// floor of a design that leaves the layers to the agents). And the receive alone (the blobs
// hashed, nothing kept) through the registry client (wire.ts) and through a plain socket read into one reused
// buffer: what a leaner receive would save. And the agent-side floor with a warm tsctl
// (bin/tsctl.cjs asking tsctl/warm.ts over its socket): node's start instead of `image ls`.
// `tsctl image pull` itself is served by the warm tsctl from the second round on: its CPU is
// then the client's ("tsctl cpu") plus the warm process's ("warm tsctl cpu").
//   node dist/test/bench/pull-profile.js [rounds]
//   PROFILE_BASE_TSCTL=PATH also pulls with another build's tsctl in the same rounds (A/B).
import { createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { once } from 'node:events';
import net from 'node:net';
import { Transform, pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Cluster, ROOT } from '../helpers/cluster.js';
import { Registry, fiveLayerLayout, layersStored, skopeo } from '../helpers/registry.js';
import { RegistryClient } from '../../tsctl/registry/client.js';
import { parseManifest } from '../../tsctl/registry/manifest.js';
import { configLayers, MAX_CONFIG_BYTES } from '../../shared/image-config.js';
import { LayerStore } from '../../agent/storage/layers.js';
import { StorageType } from 'nats';
import { dial } from '../../tsctl/client.js';
import { readCreds } from '../../shared/nats/trust.js';
import { putObject } from '../../shared/nats/object-put.js';
import { IMAGE_BUCKET } from '../../shared/subjects.js';

const N = Number(process.argv[2] ?? 5);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const tick = 1000 / 100;
/** CPU ms (user+sys) of the processes whose command line (or, with `file` environ, environment) contains `needle`. */
function cpuOf(needle: string, also = '', file = 'cmdline'): number {
  let ms = 0;
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cl = readFileSync(`/proc/${p}/${file}`, 'utf8');
      if (!cl.includes(needle) || !cl.includes(also)) continue;
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      ms += (Number(f[11]) + Number(f[12])) * tick;
    } catch { /* gone */ }
  }
  return ms;
}
function timed(cmd: string[], env?: NodeJS.ProcessEnv): { wall: number; cpu: number; out: string } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', ...cmd], { encoding: 'utf8', env: env ?? process.env });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
  const [u, s] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return { wall, cpu: (u + s) * 1000, out: r.stdout };
}

/** Manifest, config, then every layer through `each`, 3 at a time. */
async function fetchAll(host: string, each: (reg: RegistryClient, digest: string, size: number, diffId: string) => Promise<void>): Promise<void> {
  const reg = new RegistryClient(host, 'bench/five', { insecure: true });
  const top = await reg.manifest('1');
  const m = parseManifest(top.bytes, top.mediaType);
  if (typeof m === 'string' || m.kind !== 'image') throw new Error(`manifest: ${String(m)}`);
  const diffIds = configLayers(await reg.blobBytes(m.config.digest, MAX_CONFIG_BYTES));
  if (typeof diffIds === 'string') throw new Error(diffIds);
  const todo = m.layers.map((l, i) => [l, diffIds[i]] as const);
  await Promise.all([0, 1, 2].map(async () => {
    for (let j = todo.shift(); j; j = todo.shift()) await each(reg, j[0].digest, j[0].size, j[1]);
  }));
}

/** A blob's body hashed and counted as it streams; a mismatch is an error at its end. */
function checked(body: Readable, digest: string, size: number): Readable {
  const h = createHash('sha256');
  let n = 0;
  const t = new Transform({
    transform(c: Buffer, _e, cb) { n += c.length; if (n > size) return cb(new Error(`${digest}: too long`)); h.update(c); cb(null, c); },
    flush(cb) { cb(n === size && `sha256:${h.digest('hex')}` === digest ? null : new Error(`${digest}: wrong bytes`)); },
  });
  pipeline(body, t, () => undefined);
  return t;
}

async function toFiles(host: string, dir: string): Promise<void> {
  await fetchAll(host, async (reg, digest, size) => {
    const res = await reg.blob(digest);
    const out = createWriteStream(join(dir, digest.slice(7)), { mode: 0o600 });
    const src = checked(res.body, digest, size);
    src.pipe(out);
    await Promise.race([once(out, 'close'), once(src, 'error').then(([e]) => { throw e; })]);
  });
}

/** The same, each piece written as it comes (awaited: the write is the back-pressure) with no stream between. */
async function toFilesLoop(host: string, dir: string): Promise<void> {
  await fetchAll(host, async (reg, digest, size) => {
    const res = await reg.blob(digest);
    const h = createHash('sha256');
    const fh = await open(join(dir, digest.slice(7)), 'w', 0o600);
    let n = 0;
    try {
      for await (const c of res.body as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > size) throw new Error(`${digest}: too long`);
        h.update(c);
        await fh.write(c);
      }
    } finally { await fh.close(); }
    if (n !== size || `sha256:${h.digest('hex')}` !== digest) throw new Error(`${digest}: wrong bytes`);
  });
}

/** Receive only: each blob's body hashed, through the registry client (wire.ts) ... */
async function receiveHttp(host: string): Promise<void> {
  await fetchAll(host, async (reg, digest) => {
    const h = createHash('sha256');
    for await (const c of (await reg.blob(digest)).body) h.update(c as Buffer);
    if (`sha256:${h.digest('hex')}` !== digest) throw new Error(`${digest}: wrong bytes`);
  });
}

/**
 * ... and through a plain socket read into one reused 1 MiB buffer (net's `onread`): no
 * buffer allocated per read, no stream per chunk. A probe of what a leaner receive path would
 * save, not a client: one GET, the reply's head skipped, the rest hashed until the close.
 */
async function receiveRaw(host: string): Promise<void> {
  const [hostname, port] = host.split(':');
  await fetchAll(host, (_reg, digest) => new Promise<void>((resolve, reject) => {
    const h = createHash('sha256');
    let head: Buffer | undefined = Buffer.alloc(0);
    const s = net.connect({
      host: hostname, port: Number(port),
      onread: {
        buffer: Buffer.allocUnsafe(1 << 20),
        callback: (len: number, b: Uint8Array) => {
          let body = b.subarray(0, len);
          if (head) {
            head = Buffer.concat([head, body]);
            const end = head.indexOf('\r\n\r\n');
            if (end < 0) return true;
            if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 200')) { s.destroy(); reject(new Error(`${digest}: ${head.subarray(0, 40).toString()}`)); return false; }
            body = head.subarray(end + 4);
            head = undefined;
          }
          h.update(body);
          return true;
        },
      },
    });
    s.on('connect', () => s.write(`GET /v2/bench/five/blobs/${digest} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.on('error', reject);
    s.on('close', () => (`sha256:${h.digest('hex')}` === digest ? resolve() : reject(new Error(`${digest}: wrong bytes`))));
  }));
}

async function toLayerStore(host: string, dir: string): Promise<void> {
  const store = new LayerStore(dir);
  await fetchAll(host, async (reg, digest, size, diffId) => {
    await store.ensure(diffId, async () => {
      const res = await reg.blob(digest);
      const gz = createGunzip({ chunkSize: 256 << 10 });
      pipeline(checked(res.body, digest, size), gz, () => undefined);
      return gz;
    });
  });
}

async function main(): Promise<void> {
  const c = await Cluster.start();
  let reg: Registry | undefined;
  try {
    reg = await Registry.start(join(c.dir, 'registry'));
    const { layout, busybox, big } = fiveLayerLayout(c.dir, ROOT);
    const nc = await dial(c.url, readCreds(c.adminCreds));
    await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    skopeo([`oci:${layout.dir}:five`, `docker://${reg.host}/bench/five:1`]);
    const env = { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds };
    const tsctl = process.env.PROFILE_TSCTL ?? join(ROOT, 'bin/tsctl.cjs');
    const baseTsctl = process.env.PROFILE_BASE_TSCTL;
    const imgOs = await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    const allStored = () => layersStored(imgOs, [busybox, ...big]);
    const rows: Record<string, number[]> = {};
    const add = (k: string, v: number) => (rows[k] ??= []).push(v);
    for (let i = 0; i < N; i++) {
      // the warm tsctl (bin/tsctl.cjs asks it for run and image pull): a pull it serves spends its CPU there
      const warmCpu = () => cpuOf('TSCTL_WARM_SERVE=', '', 'environ');
      const before = { nats: cpuOf(join(c.dir, 'nats.conf')), reg: cpuOf(join(reg.dir, 'config.yml')), ctl: cpuOf('controller/main.js', c.dir), warm: warmCpu() };
      const prof = process.env.PROFILE_CPU ? ['--cpu-prof', '--cpu-prof-dir', process.env.PROFILE_CPU] : [];
      // a warm tsctl's client costs at least node's start (the call then goes over a socket)
      const ns = timed([process.execPath, '-e', '0']);
      add('node start cpu', ns.cpu); add('node start wall', ns.wall);
      const ls = timed([process.execPath, tsctl, 'image', 'ls'], env);
      add('tsctl image ls cpu', ls.cpu); add('tsctl image ls wall', ls.wall);
      const t = timed([process.execPath, ...prof, tsctl, 'image', 'pull', `${reg.host}/bench/five:1`, '--name', 'five'], env);
      add('pull wall', t.wall); add('tsctl cpu', t.cpu); add('warm tsctl cpu', warmCpu() - before.warm);
      add('nats-server cpu', cpuOf(join(c.dir, 'nats.conf')) - before.nats);
      add('registry cpu (pull)', cpuOf(join(reg.dir, 'config.yml')) - before.reg);
      add('controller cpu', cpuOf('controller/main.js', c.dir) - before.ctl);
      // a warm pull answers before its layers are in the object store and puts them after: its
      // fill's time and CPU, apart, before the image rm (else the next round finds the layers)
      const f0 = performance.now(), w0 = warmCpu(), n0 = cpuOf(join(c.dir, 'nats.conf'));
      await allStored();
      add('fill after answer wall', performance.now() - f0); add('fill warm tsctl cpu', warmCpu() - w0); add('fill nats-server cpu', cpuOf(join(c.dir, 'nats.conf')) - n0);
      await c.ok(['image', 'rm', 'five']);
      if (baseTsctl) {
        const n0 = cpuOf(join(c.dir, 'nats.conf')), w0 = warmCpu();
        const b = timed([process.execPath, baseTsctl, 'image', 'pull', `${reg.host}/bench/five:1`, '--name', 'five'], env);
        // the base build's own warm process serves it (one per bundle): its CPU to the answer
        add('base pull wall', b.wall); add('base tsctl cpu', b.cpu); add('base warm tsctl cpu', warmCpu() - w0);
        add('base nats-server cpu', cpuOf(join(c.dir, 'nats.conf')) - n0);
        await allStored();
        await c.ok(['image', 'rm', 'five']);
      }
      const dir = mkdtempSync(join(c.dir, 'skopeo-'));
      const r0 = cpuOf(join(reg.dir, 'config.yml'));
      const s = timed(['skopeo', '--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${reg.host}/bench/five:1`, `oci:${dir}:1`]);
      add('skopeo wall', s.wall); add('skopeo cpu', s.cpu);
      add('registry cpu (skopeo)', cpuOf(join(reg.dir, 'config.yml')) - r0);
      rmSync(dir, { recursive: true, force: true });
      // the manifest and config alone: what a pull reads that records the image and leaves
      // its layers to be fetched later (by the agents, from the registry)
      const metaOnly = (host: string) => fetchAll(host, async () => undefined);
      for (const [k, into] of [['blobs -> files', toFiles], ['blobs -> files (loop)', toFilesLoop], ['blobs -> layer store', toLayerStore], ['receive client', receiveHttp], ['receive raw socket', receiveRaw], ['manifest and config', metaOnly]] as const) {
        const d = mkdtempSync(join(c.dir, 'direct-'));
        const c0 = process.cpuUsage(), t0 = performance.now();
        await into(reg.host, d);
        const wall = performance.now() - t0, cu = process.cpuUsage(c0);
        add(`${k} wall`, wall); add(`${k} cpu`, (cu.user + cu.system) / 1000);
        rmSync(d, { recursive: true, force: true });
      }
      // the object store alone: the same bytes put by the pull's own writer, 3 at a time,
      // over a connection already made (what any path that puts them before answering pays)
      const blobs = [busybox, ...big].map((b, k) => [`pull-profile-${k}`, b] as const);
      const c0 = process.cpuUsage(), t0 = performance.now();
      await Promise.all([0, 1, 2].map(async () => { for (let j = blobs.shift(); j; j = blobs.shift()) await putObject(nc, IMAGE_BUCKET, { name: j[0] }, (async function* () { yield j[1]; })()); }));
      const cu = process.cpuUsage(c0);
      add('object store put wall', performance.now() - t0); add('object store put cpu', (cu.user + cu.system) / 1000);
      const os = await nc.jetstream().views.os(IMAGE_BUCKET);
      for (let k = 0; k < 5; k++) await os.delete(`pull-profile-${k}`);
    }
    await nc.close();
    for (const [k, v] of Object.entries(rows)) console.log(`${k.padEnd(24)} median ${median(v).toFixed(0).padStart(6)} ms   [${v.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`ratio ${(median(rows['pull wall']) / median(rows['skopeo wall'])).toFixed(2)}x wall`);
    if (baseTsctl) console.log(`base build (${baseTsctl}): ${(median(rows['base pull wall']) / median(rows['skopeo wall'])).toFixed(2)}x wall; tsctl CPU ${median(rows['base tsctl cpu']).toFixed(0)} ▸ ${median(rows['tsctl cpu']).toFixed(0)} ms, warm tsctl CPU ${median(rows['base warm tsctl cpu']).toFixed(0)} ▸ ${median(rows['warm tsctl cpu']).toFixed(0)} ms, nats-server CPU ${median(rows['base nats-server cpu']).toFixed(0)} ▸ ${median(rows['nats-server cpu']).toFixed(0)} ms`);
    console.log(`the object store alone (5 layers put, 3 at a time, connection made): ${(median(rows['object store put wall']) / median(rows['skopeo wall'])).toFixed(2)}x skopeo wall`);
    const floor = (k: string, m: 'wall' | 'cpu') => `${((median(rows[`tsctl image ls ${m}`]) + median(rows[`${k} ${m}`])) / median(rows[`skopeo ${m}`])).toFixed(2)}x ${m}`;
    console.log(`agent-side pull floor (tsctl image ls + the data path) against skopeo: keeping blobs ${floor('blobs -> files', 'wall')}, ${floor('blobs -> files', 'cpu')}; unpacking at pull ${floor('blobs -> layer store', 'wall')}, ${floor('blobs -> layer store', 'cpu')} (goal <= 1.2x)`);
    const warm = (k: string, m: 'wall' | 'cpu') => `${((median(rows[`node start ${m}`]) + median(rows[`${k} ${m}`])) / median(rows[`skopeo ${m}`])).toFixed(2)}x ${m}`;
    console.log(`the same with a warm tsctl (node's start + the data path; no RPC, no event): keeping blobs ${warm('blobs -> files', 'wall')}, ${warm('blobs -> files', 'cpu')}; written by a plain loop ${warm('blobs -> files (loop)', 'wall')}, ${warm('blobs -> files (loop)', 'cpu')}`);
    console.log(`tsctl's own floor for any pull that receives the layers (tsctl image ls + the receive, hashed, nothing kept): ${floor('receive client', 'wall')}, ${floor('receive client', 'cpu')}`);
    console.log(`a pull that records the image and leaves the layers for later (tsctl image ls + manifest and config): ${floor('manifest and config', 'wall')}, ${floor('manifest and config', 'cpu')}`);
  } finally {
    await reg?.stop();
    await c.stop();
  }
}
main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
