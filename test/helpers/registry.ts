// A real registry for tests (Debian's docker-registry, the distribution project's server) on
// 127.0.0.1 and a free port, with its storage in a temp dir; images pushed to it by skopeo
// from an OCI image layout the test writes itself.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { gzipSync } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { StorageType, type ObjectStore } from 'nats';
import { tarball } from './tarball.js';
import { dial } from '../../tsctl/client.js';
import { readCreds } from '../../shared/nats/trust.js';
import { IMAGE_BUCKET } from '../../shared/subjects.js';
import { ociArch } from '../../tsctl/registry/manifest.js';
import { ROOT, freePort, sleep } from './cluster.js';

export const haveRegistryTools = (): string | undefined => {
  for (const [bin, pkg] of [['/usr/bin/docker-registry', 'docker-registry'], ['/usr/bin/skopeo', 'skopeo'], ['/usr/bin/htpasswd', 'apache2-utils']]) {
    if (!existsSync(bin)) return `${bin} is missing (apt-get install ${pkg}; ops/setup installs it)`;
  }
  return undefined;
};

export class Registry {
  private constructor(readonly dir: string, readonly port: number, private proc: ChildProcess) {}

  get host(): string { return `127.0.0.1:${this.port}`; }

  /** Starts docker-registry; `users` turns on its htpasswd (bcrypt) basic auth. */
  static async start(dir: string, users?: Record<string, string>): Promise<Registry> {
    mkdirSync(join(dir, 'storage'), { recursive: true });
    const port = await freePort();
    let auth = '';
    if (users) {
      const file = join(dir, 'htpasswd');
      for (const [u, p] of Object.entries(users)) {
        const r = spawnSync('htpasswd', ['-bB', ...(existsSync(file) ? [] : ['-c']), file, u, p], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`htpasswd: ${r.stderr}`);
      }
      auth = `auth:\n  htpasswd:\n    realm: test\n    path: ${file}\n`;
    }
    writeFileSync(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`);
    // its log (every 404 a push probes for) goes to a file, read when it fails to start
    const log = openSync(join(dir, 'registry.log'), 'a');
    const proc = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', log, log] });
    closeSync(log);
    const r = new Registry(dir, port, proc);
    for (let i = 0; i < 200; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((x) => x.status === 200 || x.status === 401, () => false);
      if (ok) return r;
      if (proc.exitCode !== null) break;
      await sleep(50);
    }
    await r.stop();
    throw new Error(`docker-registry did not listen on ${port}: ${readFileSync(join(dir, 'registry.log'), 'utf8').slice(-500)}`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await Promise.race([gone, sleep(5000)]);
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/** skopeo copy; throws with skopeo's own words when it fails. */
export function skopeo(args: string[]): void {
  const r = spawnSync('skopeo', ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false', ...args], { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) throw new Error(`skopeo copy ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

export const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface BuiltImage { manifest: Buffer; manifestDigest: string; config: Buffer; configDigest: string; diffIds: string[] }

/** An OCI image layout writer: blobs by digest, index.json listing tagged manifests. */
export class OciLayout {
  private index: { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: object }[] = [];

  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  }

  blob(b: Buffer): { digest: string; size: number } {
    const digest = sha(b);
    writeFileSync(join(this.dir, 'blobs', 'sha256', digest.slice(7)), b);
    return { digest, size: b.length };
  }

  /** An image of plain tar layers (bottom first), gzipped, tagged `tag`. */
  image(tag: string | undefined, tars: Buffer[], o: { arch?: string; gzip?: boolean; config?: object } = {}): BuiltImage {
    const gz = o.gzip ?? true;
    const diffIds = tars.map(sha);
    const layers = tars.map((t) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${gz ? '+gzip' : ''}`, ...this.blob(gz ? gzipSync(t) : t) }));
    const config = Buffer.from(JSON.stringify({ architecture: o.arch ?? 'amd64', os: 'linux', config: o.config ?? {}, rootfs: { type: 'layers', diff_ids: diffIds } }));
    const cfg = this.blob(config);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers }));
    const m = this.blob(manifest);
    if (tag !== undefined) this.index.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': tag } });
    this.write();
    return { manifest, manifestDigest: m.digest, config, configDigest: cfg.digest, diffIds };
  }

  /** A multi-platform index tagged `tag` over images already written. */
  multi(tag: string, images: [BuiltImage, string][]): string {
    const idx = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: images.map(([i, arch]) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: i.manifestDigest, size: i.manifest.length, platform: { os: 'linux', architecture: arch } })),
    }));
    const d = this.blob(idx);
    this.index.push({ mediaType: 'application/vnd.oci.image.index.v1+json', ...d, annotations: { 'org.opencontainers.image.ref.name': tag } });
    this.write();
    return d.digest;
  }

  private write(): void {
    writeFileSync(join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: this.index }));
  }
}

/**
 * The image benches' fixture in an OCI layout under DIR: the busybox rootfs (built by
 * ops/build-busybox-rootfs) and four 8 MiB layers of random bytes, tagged "five". The busybox
 * layer and the four are returned for benches that make more images from them.
 */
export function fiveLayerLayout(dir: string, root: string): { layout: OciLayout; busybox: Buffer; big: Buffer[] } {
  const bb = join(dir, 'busybox.tar');
  if (spawnSync(join(root, 'ops/build-busybox-rootfs'), [bb]).status !== 0) throw new Error('build-busybox-rootfs failed');
  const busybox = readFileSync(bb);
  const layout = new OciLayout(join(dir, 'oci'));
  const big = Array.from({ length: 4 }, (_, i) => tarball([{ name: `data${i}`, body: randomBytes(8 << 20) }]));
  layout.image('five', [busybox, ...big]);
  return { layout, busybox, big };
}

/** A cluster's address and admin credentials (test/helpers/cluster.ts's Cluster has both). */
interface ClusterAccess { url: string; adminCreds: string }

/** The names of the objects in a cluster's image store, sorted. */
export async function imageStoreKeys(c: ClusterAccess): Promise<string[]> {
  const nc = await dial(c.url, readCreds(c.adminCreds));
  try {
    const os = await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    const keys: string[] = [];
    for (const i of await os.list()) keys.push(i.name);
    return keys.sort();
  } finally {
    await nc.close();
  }
}

/** Chunk subjects in the image store that no object names: what a put that did not finish left. */
export async function imageOrphanChunks(c: ClusterAccess): Promise<string[]> {
  const nc = await dial(c.url, readCreds(c.adminCreds));
  try {
    const os = await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    const named = new Set<string>();
    for (const i of await os.list()) named.add(i.nuid);
    const si = await (await nc.jetstreamManager()).streams.info(`OBJ_${IMAGE_BUCKET}`, { subjects_filter: `$O.${IMAGE_BUCKET}.C.>` });
    return Object.keys(si.state.subjects ?? {}).map((x) => x.split('.').pop()!).filter((id) => !named.has(id));
  } finally {
    await nc.close();
  }
}

/**
 * The routes of a registry serving one image of `tars` as gzip layers (OCI manifest), for a
 * test's own HTTP server: path -> reply. `lie` makes one part of it hostile.
 */
export function served(tars: Buffer[], o: { lie?: 'blob-digest' | 'longer' | 'diffid' | 'gzip' } = {}) {
  const blobs = new Map<string, Buffer>();
  // the lying blob is a plain tar: same length, one byte changed, so only its digest tells
  const plain = o.lie === 'blob-digest';
  // the non-gzip blob is junk with its true digest: only gunzip can tell
  const gz = tars.map((t) => (plain ? t : o.lie === 'gzip' ? Buffer.alloc(gzipSync(t).length, 0x41) : gzipSync(t)));
  const layers = gz.map((g) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${plain ? '' : '+gzip'}`, digest: sha(g), size: g.length }));
  const diffIds = o.lie === 'diffid' ? tars.map(() => sha(Buffer.from('not this'))) : tars.map(sha);
  const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: ociArch(), rootfs: { type: 'layers', diff_ids: diffIds } }));
  blobs.set(sha(config), config);
  const lie = (g: Buffer): Buffer => {
    if (o.lie === 'longer') return Buffer.concat([g, Buffer.alloc(1 << 20)]);
    if (o.lie === 'blob-digest') { const b = Buffer.from(g); b[600] ^= 1; return b; }
    return g;
  };
  gz.forEach((g, i) => blobs.set(layers[i].digest, lie(g)));
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers });
  return (path: string) => {
    if (path.includes('/manifests/')) return { type: 'application/vnd.oci.image.manifest.v1+json', body: manifest };
    const d = path.split('/blobs/')[1];
    const b = d ? blobs.get(d) : undefined;
    return b ? { body: b } : { status: 404, body: '{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}' };
  };
}

/**
 * A registry started under `dir` holding `team/app:1`: the busybox rootfs (ops/build-busybox-rootfs)
 * and a layer with /etc/greeting saying `greeting`, pushed by skopeo from an OCI layout.
 */
export async function registryWithApp(dir: string, greeting: string): Promise<{ reg: Registry; app: BuiltImage; ref: string }> {
  const reg = await Registry.start(join(dir, 'registry'));
  const bb = join(dir, 'busybox.tar');
  const b = spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [bb], { encoding: 'utf8' });
  if (b.status !== 0) { await reg.stop(); throw new Error(`ops/build-busybox-rootfs: ${b.stderr}`); }
  const layout = new OciLayout(join(dir, 'oci'));
  const app = layout.image('1', [readFileSync(bb), tarball([{ name: 'etc/', type: '5' }, { name: 'etc/greeting', body: greeting }])]);
  skopeo([`oci:${layout.dir}:1`, `docker://${reg.host}/team/app:1`]);
  return { reg, app, ref: `${reg.host}/team/app:1` };
}

/**
 * Resolves once every one of `tars` is a layer object in the store: a pull served by the warm
 * tsctl answers before it puts its layers (tsctl/image-pull.ts), and a bench round waits for
 * that fill before its image rm (else the next round finds the layers stored).
 */
export async function layersStored(os: ObjectStore, tars: Buffer[]): Promise<void> {
  const keys = tars.map((b) => `sha256-${createHash('sha256').update(b).digest('hex')}`);
  for (;;) {
    const infos = await Promise.all(keys.map((k) => os.info(k)));
    if (infos.every((i) => i && !i.deleted)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A registry of its own on loopback serving one image of `all` (gzip layers), counting each
 * blob's GETs; with `flip`, the last layer's bytes are served with one bit changed (a lying
 * blob). Pushed to `servers` for the test to close.
 */
/** `stall`: a blob's GET waits for the promise it returns (a test acts while the pull is under way). */
export async function countingRegistry(all: Buffer[], servers: Server[], o: { flip?: boolean; stall?: (blob: string) => Promise<void> | undefined } = {}): Promise<{ host: string; gets: Map<string, number>; config: string; blobs: string[]; diffIds: string[] }> {
  const routes = served(all);
  const manifest = JSON.parse(String(routes('/v2/x/manifests/1').body)) as { config: { digest: string }; layers: { digest: string }[] };
  const blobs = manifest.layers.map((l) => l.digest);
  const gets = new Map<string, number>();
  const port = await freePort();
  const s = createServer(async (req, res) => {
    const p = new URL(req.url!, 'http://x').pathname;
    const d = p.split('/blobs/')[1];
    if (d) gets.set(d, (gets.get(d) ?? 0) + 1);
    if (d) await o.stall?.(d);
    const r = routes(p);
    let body = r.body as string | Buffer;
    if (o.flip && d === blobs[blobs.length - 1]) { body = Buffer.from(body); body[600] ^= 1; }
    res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  servers.push(s);
  return { host: `127.0.0.1:${port}`, gets, config: manifest.config.digest, blobs, diffIds: all.map(sha) };
}
