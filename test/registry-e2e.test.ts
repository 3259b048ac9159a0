// `tsctl image pull` against a real registry (docker-registry, started here) holding a
// layered image the test pushed with skopeo: OCI and docker schema 2 manifests, an index
// with two platforms, basic auth (the registry's htpasswd) and token auth (a token service
// in front of it); then a container runs on the pulled layers and sees the upper layer's
// file, whiteout and opaque dir. Hostile registries (oversize manifest, junk, a blob whose
// digest lies, a layer longer than declared, a tar escaping its root) give one-line errors
// and leave nothing in the cluster's store or the node's layers. A pull killed mid-blob
// resumes it with a Range request: the registry serves only the rest. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, writeFileSync, statSync, existsSync } from 'node:fs';
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { StorageType } from 'nats';
import { Cluster, ROOT, freePort, until } from './helpers/cluster.js';
import { tarball } from './helpers/tarball.js';
import { Registry, OciLayout, skopeo, sha, haveRegistryTools, served, imageStoreKeys, imageOrphanChunks, type BuiltImage } from './helpers/registry.js';
import { dial } from '../tsctl/client.js';
import { readCreds } from '../shared/nats/trust.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { gzipLayerMetadata, objectDigest } from '../shared/layer-object.js';
import { ociArch } from '../tsctl/registry/manifest.js';

const t = suite('registry-e2e');
let c: Cluster;
let reg: Registry;
let layout: OciLayout;
let app: BuiltImage;
const servers: Server[] = [];
const registries: Registry[] = [];

const missing = haveRegistryTools();

t.before(async () => {
  if (missing) throw new Error(`registry-e2e needs ${missing}`);
  c = await Cluster.start();
  // every tsctl of this file spools its pulls in the cluster's temp dir, not the user's cache
  process.env.SWARMLITE_PULL_CACHE = join(c.dir, 'pull-cache');
  reg = await Registry.start(join(c.dir, 'registry'));
  registries.push(reg);
  const bb = join(c.dir, 'busybox.tar');
  const b = spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [bb], { encoding: 'utf8' });
  assert.is(b.status, 0, b.stderr);
  layout = new OciLayout(join(c.dir, 'oci'));
  // layer 2 adds a file, deletes /etc/group (whiteout) and hides /usr/sbin's applets (opaque)
  const upper = tarball([
    { name: 'etc/', type: '5' }, { name: 'etc/greeting', body: 'hello from layer 2\n' }, { name: 'etc/.wh.group', body: '' },
    { name: 'usr/', type: '5' }, { name: 'usr/sbin/', type: '5' }, { name: 'usr/sbin/.wh..wh..opq', body: '' }, { name: 'usr/sbin/mine', body: 'x', mode: 0o755 },
  ]);
  app = layout.image('1', [readFileSync(bb), upper]);
  skopeo([`oci:${layout.dir}:1`, `docker://${reg.host}/team/app:1`]);
});

t.after(async () => {
  for (const s of servers) s.close();
  for (const r of registries) await r.stop();
  await c?.stop();
});

const layersDir = () => join(c.dir, 'nodes', c.node, 'layers');
const storeKeys = () => imageStoreKeys(c);
const orphanChunks = () => imageOrphanChunks(c);

/** The layer blob digests of a manifest, as the registry serves it. */
async function manifestLayers(host: string, repo: string, tag: string): Promise<string[]> {
  const m = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return ((await m.json()) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
}

function oneLineError(r: { code: number; stdout: string; stderr: string }, why: RegExp): void {
  assert.is.not(r.code, 0, `must fail: ${r.stdout}`);
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
}

t('pull - an OCI image of two gzip layers runs with the upper layer\'s file, whiteout and opaque dir', async () => {
  const ref = `${reg.host}/team/app:1`;
  const t0 = Date.now();
  const r = await c.tsctl(['image', 'pull', ref]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), app.configDigest, 'the image id is its config digest');
  // not a terminal: one plain line per layer on stderr, nothing per chunk
  assert.equal(r.stderr.trim().split('\n').sort(), (await manifestLayers(reg.host, 'team/app', '1')).map((d) => `${d.slice(7, 19)}: Pull complete`).sort(), r.stderr);
  console.log(`  pull of a 2-layer image (${(app.diffIds.length)} layers) from a local registry: ${Date.now() - t0} ms (tsctl process included)`);
  const [img] = JSON.parse(await c.ok(['image', 'inspect', ref])) as { digest: string; layers: string[]; source: string }[];
  assert.equal(img.layers, app.diffIds);
  assert.is(img.source, ref);
  // served warm, the layers are put after the answer (tsctl/image-pull.ts)
  const all = [app.configDigest, ...app.diffIds].map((d) => d.replace(':', '-'));
  await until(async () => { const k = await storeKeys(); return all.every((d) => k.includes(d)); }, 20000, 'the layers in the store').catch(() => undefined);
  const keys = await storeKeys();
  for (const d of [app.configDigest, ...app.diffIds]) assert.ok(keys.includes(d.replace(':', '-')), `${d} in the store`);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', ref, 'sh', '-c', 'cat /etc/greeting; test -e /etc/group && echo group-present || echo group-gone; ls /usr/sbin; test -x /bin/busybox && echo busybox']);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'hello from layer 2\ngroup-gone\nmine\nbusybox\n');
  assert.equal(readdirSync(layersDir()).sort(), app.diffIds.map((d) => d.slice(7)).sort());
});

t('pull - four layers that replace, delete (whiteout) and hide (opaque) lower files show docker\'s view', async () => {
  const bb = readFileSync(join(c.dir, 'busybox.tar'));
  const four = layout.image('four', [
    bb,
    tarball([{ name: 'srv/', type: '5' }, { name: 'srv/a', body: 'a2\n' }, { name: 'srv/b', body: 'b2\n' }, { name: 'srv/d/', type: '5' }, { name: 'srv/d/x', body: 'x2\n' }]),
    tarball([{ name: 'srv/a', body: 'a3\n' }, { name: 'srv/.wh.b', body: '' }, { name: 'srv/d/', type: '5' }, { name: 'srv/d/.wh..wh..opq', body: '' }, { name: 'srv/d/y', body: 'y3\n' }]),
    tarball([{ name: 'srv/b', body: 'b4\n' }, { name: 'bin/.wh.vi', body: '' }]),
  ]);
  skopeo([`oci:${layout.dir}:four`, `docker://${reg.host}/team/four:1`]);
  const r = await c.tsctl(['image', 'pull', `${reg.host}/team/four:1`]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), four.configDigest);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', `${reg.host}/team/four:1`, 'sh', '-c', 'cat /srv/a /srv/b; ls /srv/d; test -e /bin/vi && echo vi || echo no-vi']);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'a3\nb4\ny\nno-vi\n');
});

t('pull - docker schema 2 of the same image: same id, no layer fetched again; image rm keeps shared layers', async () => {
  skopeo(['--format', 'v2s2', `oci:${layout.dir}:1`, `docker://${reg.host}/team/app:v2s2`]);
  const dirsBefore = readdirSync(layersDir()).length;
  const m = await fetch(`http://${reg.host}/v2/team/app/manifests/v2s2`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  assert.is(m.headers.get('content-type'), 'application/vnd.docker.distribution.manifest.v2+json');
  const r = await c.tsctl(['image', 'pull', `${reg.host}/team/app:v2s2`, '--name', 'app-v2s2']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), app.configDigest);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'app-v2s2', 'cat', '/etc/greeting']);
  assert.is(run.stdout, 'hello from layer 2\n', run.stderr);
  assert.is(readdirSync(layersDir()).length, dirsBefore, 'the layers are shared, unpacked once');
  await c.ok(['image', 'rm', 'app-v2s2']);
  const keys = await storeKeys();
  for (const d of app.diffIds) assert.ok(keys.includes(d.replace(':', '-')), 'still used by the first image');
});

t('pull - after image rm, a pull again keeps the registry\'s gzip blob (a delete\'s marker is not a copy)', async () => {
  const bb = readFileSync(join(c.dir, 'busybox.tar'));
  const again = layout.image('again', [bb, tarball([{ name: 'again', body: randomBytes(64 << 10).toString('hex') }])]);
  skopeo([`oci:${layout.dir}:again`, `docker://${reg.host}/team/again:1`]);
  const ref = `${reg.host}/team/again:1`;
  // busybox's layer is the first image's too: the second is this image's alone
  const blob = (await manifestLayers(reg.host, 'team/again', '1'))[1];
  const form = async () => {
    const nc = await dial(c.url, readCreds(c.adminCreds));
    try {
      const os = await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
      const i = await os.info(again.diffIds[1].replace(':', '-'));
      return i && { deleted: i.deleted, metadata: i.metadata ?? {}, digest: objectDigest(i.digest) };
    } finally {
      await nc.close();
    }
  };
  const kept = { deleted: false, metadata: gzipLayerMetadata(blob), digest: blob };
  // a pull served by the warm tsctl answers first and puts its layers after (tsctl/image-pull.ts)
  const stored = async (what: string) => {
    await until(async () => (await form())?.deleted === false, 20000, what).catch(() => undefined);
    assert.equal(await form(), kept, what);
  };
  await c.ok(['image', 'pull', ref]);
  await stored('the first pull keeps the blob');
  await c.ok(['image', 'rm', ref]);
  assert.is((await form())?.deleted, true, 'the layer left with its image: a marker stays');
  await c.ok(['image', 'pull', ref]);
  await stored('the second pull keeps the blob too, not a gunzipped tar');
  const run = await c.tsctl(['run', '--rm', '--network', 'none', ref, 'sh', '-c', 'wc -c < /again']);
  assert.is(run.stdout.trim(), String(128 << 10), run.stderr);
  assert.equal(await orphanChunks(), [], 'no chunks left behind');
  await c.ok(['image', 'rm', ref]);
});

t('pull - an index with two platforms gives this host\'s; a digest reference is checked', async () => {
  const other = layout.image(undefined, [tarball([{ name: 'wrong-arch', body: 'x' }])], { arch: ociArch() === 'amd64' ? 'arm64' : 'amd64' });
  const mine = layout.image(undefined, [tarball([{ name: 'right-arch', body: 'y' }])]);
  const idx = layout.multi('multi', [[other, ociArch() === 'amd64' ? 'arm64' : 'amd64'], [mine, ociArch()]]);
  skopeo(['--all', `oci:${layout.dir}:multi`, `docker://${reg.host}/team/multi:1`]);
  const r = await c.tsctl(['image', 'pull', `${reg.host}/team/multi:1`]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), mine.configDigest);
  const byDigest = await c.tsctl(['image', 'pull', `${reg.host}/team/multi@${idx}`, '--name', 'multi-by-digest']);
  assert.is(byDigest.code, 0, byDigest.stderr);
  assert.is(byDigest.stdout.trim(), mine.configDigest);
  oneLineError(await c.tsctl(['image', 'pull', `${reg.host}/team/multi@sha256:${'0'.repeat(64)}`]), /MANIFEST_UNKNOWN|manifest unknown|HTTP 404/);
});

t('auth - basic (the registry\'s htpasswd): no login, a wrong password, then the right one', async () => {
  const sec = await Registry.start(join(c.dir, 'registry-basic'), { alice: 's3cret' });
  registries.push(sec);
  skopeo(['--dest-creds', 'alice:s3cret', `oci:${layout.dir}:1`, `docker://${sec.host}/team/app:1`]);
  const ref = `${sec.host}/team/app:1`;
  oneLineError(await c.tsctl(['image', 'pull', ref]), /needs a login/);
  oneLineError(await c.tsctl(['image', 'pull', ref, '-u', 'alice', '--password-stdin'], { input: 'wrong\n' }), /access denied \(HTTP 401\)/);
  const ok = await c.tsctl(['image', 'pull', ref, '-u', 'alice', '--password-stdin', '--name', 'app-basic'], { input: 's3cret\n' });
  assert.is(ok.code, 0, ok.stderr);
  assert.is(ok.stdout.trim(), app.configDigest);
});

/** A token service in front of the open registry, as docker hub works: 401 → realm → Bearer. */
async function tokenFront(upstream: string): Promise<{ host: string; issued: () => number }> {
  let issued = 0;
  const token = 'tok-' + Math.random().toString(36).slice(2);
  const port = await freePort();
  const s = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url!, `http://127.0.0.1:${port}`);
    if (u.pathname === '/token') {
      const want = `Basic ${Buffer.from('bob:pw').toString('base64')}`;
      if (req.headers.authorization !== want || u.searchParams.get('service') !== 'test-registry' || u.searchParams.get('scope') !== 'repository:team/app:pull') {
        res.writeHead(401).end();
        return;
      }
      issued++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
      return;
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="test-registry",scope="repository:team/app:pull"` }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const up = await fetch(`http://${upstream}${req.url}`, { headers: { accept: String(req.headers.accept ?? '*/*') } });
    const headers: Record<string, string> = {};
    up.headers.forEach((v, k) => { if (k !== 'content-encoding' && k !== 'transfer-encoding') headers[k] = v; });
    res.writeHead(up.status, headers);
    res.end(Buffer.from(await up.arrayBuffer()));
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  servers.push(s);
  return { host: `127.0.0.1:${port}`, issued: () => issued };
}

t('auth - token: anonymous refused by the token service, the login gets a Bearer token', async () => {
  const front = await tokenFront(reg.host);
  oneLineError(await c.tsctl(['image', 'pull', `${front.host}/team/app:1`]), /token service refused an anonymous pull/);
  const ok = await c.tsctl(['image', 'pull', `${front.host}/team/app:1`, '--name', 'app-token'], { env: { SWARMLITE_REGISTRY_USER: 'bob', SWARMLITE_REGISTRY_PASSWORD: 'pw' } });
  assert.is(ok.code, 0, ok.stderr);
  assert.is(ok.stdout.trim(), app.configDigest);
  assert.is(front.issued(), 1, 'one token for the whole pull');
});

/** A registry that lies: serves whatever `routes` says for each path. */
async function fake(routes: (path: string) => { status?: number; type?: string; body: Buffer | string; headers?: Record<string, string> }): Promise<string> {
  const port = await freePort();
  const s = createServer((req, res) => {
    const r = routes(new URL(req.url!, 'http://x').pathname);
    res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream', ...r.headers });
    res.end(r.body);
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  servers.push(s);
  return `127.0.0.1:${port}`;
}

t('attacks - oversize manifest, junk, a lying blob, a longer blob, a blob that is not gzip: one line each, nothing stored', async () => {
  const before = await storeKeys();
  const cases: [string, (p: string) => ReturnType<Parameters<typeof fake>[0]>, RegExp][] = [
    ['oversize', () => ({ type: 'application/vnd.oci.image.manifest.v1+json', body: Buffer.alloc(5 << 20, 0x20) }), /larger than 4194304 bytes: refused/],
    ['junk', () => ({ type: 'application/vnd.oci.image.manifest.v1+json', body: Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x0a, 0x00]) }), /the manifest is not JSON/],
    ['http-500', () => ({ status: 500, type: 'text/html', body: '<html>\n<h1>oops</h1>\n</html>' }), /HTTP 500 .*with no registry error/],
    ['lying-blob', served([tarball([{ name: 'f', body: 'x'.repeat(5000) }])], { lie: 'blob-digest' }), /blob sha256:[0-9a-f]{64} arrived with digest sha256:[0-9a-f]{64}: refused/],
    ['longer-blob', served([tarball([{ name: 'g', body: 'y'.repeat(5000) }])], { lie: 'longer' }), /longer than the \d+ bytes its manifest says: refused/],
    ['not-gzip', served([tarball([{ name: 'i', body: 'w'.repeat(5000) }])], { lie: 'gzip' }), /layer sha256:[0-9a-f]{64} is not valid gzip: incorrect header check/],
  ];
  for (const [name, routes, why] of cases) {
    const host = await fake(routes);
    const r = await c.tsctl(['image', 'pull', `${host}/evil/${name}:1`]);
    oneLineError(r, why);
    assert.match(r.stderr, new RegExp(`^tsctl: registry ${host.replace(/\./g, '\\.')}: `), r.stderr);
  }
  assert.equal(await storeKeys(), before, 'no blob of a refused pull stays in the store');
  assert.not.match(await c.ok(['image', 'ls']), /evil/);
  oneLineError(await c.tsctl(['image', 'pull', `127.0.0.1:${await freePort()}/nobody/here:1`]), /cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  oneLineError(await c.tsctl(['image', 'pull', 'UPPER/Case:1']), /invalid image reference/);
});

t('attacks - a wrong diff_id: the pull keeps the blob (as skopeo would), run refuses the layer in one line, the node keeps nothing', async () => {
  // the pull hashes the registry's bytes against the manifest only (shared/layer-object.ts):
  // the config's diff_id is a claim checked where the tar is unpacked, so the node refuses it
  const host = await fake(served([tarball([{ name: 'h', body: 'z'.repeat(5000) }])], { lie: 'diffid' }));
  const pull = await c.tsctl(['image', 'pull', `${host}/evil/wrong-diffid:1`]);
  assert.is(pull.code, 0, pull.stderr);
  const before = readdirSync(layersDir()).sort();
  const r = await c.tsctl(['run', '--rm', '--network', 'none', `${host}/evil/wrong-diffid:1`, 'true']);
  oneLineError(r, /layer sha256:[0-9a-f]{64} arrived with digest sha256:[0-9a-f]{64}: refused/);
  assert.equal(readdirSync(layersDir()).sort(), before, 'no layer dir, no temp dir');
  // save unpacks the kept blob too, and refuses it the same way: no file is left
  const out = join(c.dir, 'wrong-diffid.tar');
  oneLineError(await c.tsctl(['image', 'save', '-o', out, `${host}/evil/wrong-diffid:1`]), /unpacks to sha256:[0-9a-f]{64}: refused/);
  assert.not.ok(existsSync(out));
  assert.is((await c.tsctl(['image', 'rm', `${host}/evil/wrong-diffid:1`])).code, 0);
});

t('fault - tsctl SIGKILLed mid-layer: no image, no layer object; the next pull completes and runs', async () => {
  const big = tarball([{ name: 'big', body: randomBytes(4 << 20) }, { name: 'marker', body: 'complete\n' }]);
  const routes = served([big]);
  let sent = 0;
  let stall = true;
  const port = await freePort();
  const seen: string[] = [];
  const s = createServer((req, res) => {
    seen.push(req.url!);
    const r = routes(new URL(req.url!, 'http://x').pathname);
    res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' });
    const body = Buffer.from(r.body);
    if (!stall || !req.url!.includes('/blobs/') || body.length < 100000) { res.end(body); return; }
    // half the layer, then nothing: the pull is mid-stream when it is killed
    res.write(body.subarray(0, body.length >> 1));
    sent = body.length >> 1;
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  servers.push(s);
  const before = await storeKeys();
  const p = c.tsctl(['image', 'pull', `127.0.0.1:${port}/team/slow:1`], { timeout: 8000 });
  for (let i = 0; i < 280 && !sent; i++) await new Promise((r) => setTimeout(r, 25));
  if (!sent) { const r = await p; assert.ok(sent > 0, `the layer was half sent: ${r.code} ${r.stderr} ${seen.join(' ')}`); }
  await new Promise((r) => setTimeout(r, 300));
  const killed = await p; // the helper SIGKILLs it after its 8 s
  assert.is.not(killed.code, 0);
  assert.equal(await storeKeys(), before, 'no object of the killed pull is visible');
  assert.not.match(await c.ok(['image', 'ls']), /team\/slow/);
  stall = false;
  const again = await c.tsctl(['image', 'pull', `127.0.0.1:${port}/team/slow:1`]);
  assert.is(again.code, 0, again.stderr);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', `127.0.0.1:${port}/team/slow:1`, '/bin/busybox', 'true']);
  // the image has no busybox: what matters is that the node unpacked the layer and tried
  assert.match(run.stderr, /bin\/busybox|no such file|not found|127/i, run.stderr);
  assert.ok(readdirSync(layersDir()).includes(sha(big).slice(7)), 'the layer is unpacked on the node');
  assert.is(readFileSync(join(layersDir(), sha(big).slice(7), 'marker'), 'utf8'), 'complete\n');
});

/** A registry whose replies the test writes by hand (headers, partial bodies, endless bodies, redirects). */
async function raw(handler: (req: IncomingMessage, res: ServerResponse, path: string) => void): Promise<string> {
  const port = await freePort();
  const s = createServer((req, res) => handler(req, res, new URL(req.url!, 'http://x').pathname));
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  servers.push(s);
  return `127.0.0.1:${port}`;
}

t('attacks - a Content-Length lie, a body cut short, an endless body, endless and lying manifests, a redirect off the host: one line each, nothing stored', async () => {
  const before = await storeKeys();
  const tar = tarball([{ name: 'f', body: randomBytes(300000) }]);
  const routes = served([tar]);
  const gz = gzipSync(tar);
  const blobReply = (path: string) => routes(path);
  const cases: [string, (req: IncomingMessage, res: ServerResponse, path: string) => void, RegExp][] = [
    // the header says more than the manifest's size
    ['cl-longer', (_q, res, p) => {
      if (!p.includes('/blobs/') || !p.endsWith(sha(gz))) { const r = blobReply(p); res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' }).end(r.body); return; }
      res.writeHead(200, { 'content-length': String(gz.length + 10) }); res.write(gz); setTimeout(() => res.destroy(), 3000);
    }, /is longer than the \d+ bytes its manifest says \(Content-Length \d+\): refused/],
    // the header says the right size, the body stops half-way and the connection closes
    ['cut-short', (_q, res, p) => {
      if (!p.includes('/blobs/') || !p.endsWith(sha(gz))) { const r = blobReply(p); res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' }).end(r.body); return; }
      res.writeHead(200, { 'content-length': String(gz.length) }); res.write(gz.subarray(0, gz.length >> 1), () => res.destroy());
    }, /the transfer broke off after \d+ of \d+ bytes/],
    // no Content-Length: the blob, then bytes that never end
    ['endless', (_q, res, p) => {
      if (!p.includes('/blobs/') || !p.endsWith(sha(gz))) { const r = blobReply(p); res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' }).end(r.body); return; }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(gz);
      const junk = Buffer.alloc(64 << 10, 0x5a);
      const more = () => { while (!res.destroyed && res.write(junk)); if (!res.destroyed) res.once('drain', more); };
      res.on('close', () => res.destroy());
      more();
    }, /longer than the \d+ bytes its manifest says: refused/],
    ['manifest-endless', (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      const junk = Buffer.alloc(64 << 10, 0x20);
      const more = () => { while (!res.destroyed && res.write(junk)); if (!res.destroyed) res.once('drain', more); };
      res.on('close', () => res.destroy());
      more();
    }, /larger than 4194304 bytes: refused/],
    ['manifest-huge-length', (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(1e12) });
      res.write('{'); setTimeout(() => res.destroy(), 2000);
    }, /larger than 4194304 bytes: refused/],
    // a loopback registry sends the client to another host (never contacted: refused first)
    ['redirect-out', (_q, res, p) => {
      if (p.includes('/blobs/') && p.endsWith(sha(gz))) { res.writeHead(307, { location: `http://203.0.113.7/blobs/${sha(gz)}` }).end(); return; }
      const r = blobReply(p); res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' }).end(r.body);
    }, /a loopback registry redirected to http:\/\/203\.0\.113\.7, off this host: refused/],
    ['redirect-scheme', (_q, res, p) => {
      if (p.includes('/manifests/')) { res.writeHead(302, { location: 'file:///etc/passwd' }).end(); return; }
      res.writeHead(404).end();
    }, /redirect to file: refused \(http or https only\)/],
  ];
  for (const [name, handler, why] of cases) {
    const host = await raw(handler);
    const r = await c.tsctl(['image', 'pull', `${host}/evil/${name}:1`]);
    oneLineError(r, why);
    assert.match(r.stderr, new RegExp(`^tsctl: registry ${host.replace(/\./g, '\\.')}: `), r.stderr);
  }
  assert.equal(await storeKeys(), before, 'no blob of a refused pull stays in the store');
  assert.equal(await orphanChunks(), [], 'no chunk of a refused put stays in the store');
  // a redirect within the host is followed
  const host = await raw((_q, res, p) => {
    if (p.includes('/blobs/') && p.endsWith(sha(gz)) && !p.startsWith('/moved')) { res.writeHead(307, { location: `/moved${p}` }).end(); return; }
    const r = blobReply(p.replace(/^\/moved/, '')); res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' }).end(r.body);
  });
  const ok = await c.tsctl(['image', 'pull', `${host}/team/moved:1`]);
  assert.is(ok.code, 0, ok.stderr);
});

t('fault - a pull SIGKILLed mid-blob resumes it: the second pull asks for the rest with a Range and gets only that', async () => {
  const tar = tarball([{ name: 'big', body: randomBytes(6 << 20) }, { name: 'marker', body: 'resumed\n' }]);
  const routes = served([tar]);
  const gz = gzipSync(tar);
  const blobPath = `/blobs/${sha(gz)}`;
  let bytesOut = 0, stall = true;
  const ranges: string[] = [];
  const host = await raw((req, res, p) => {
    if (!p.endsWith(blobPath)) { const r = routes(p); res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' }).end(r.body); return; }
    ranges.push(String(req.headers.range ?? ''));
    const m = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    const from = m ? Number(m[1]) : 0;
    const body = gz.subarray(from);
    res.writeHead(m ? 206 : 200, { 'content-length': String(body.length), ...(m ? { 'content-range': `bytes ${from}-${gz.length - 1}/${gz.length}` } : {}) });
    if (!stall) { bytesOut += body.length; res.end(body); return; }
    // 60% of the blob, then nothing: the pull is killed while it waits for more
    const part = body.subarray(0, Math.floor(body.length * 0.6));
    bytesOut += part.length;
    res.write(part);
  });
  const spool = process.env.SWARMLITE_PULL_CACHE!;
  const part = join(spool, `${sha(gz).slice(7)}.part`);
  const p = spawn(process.execPath, [join(ROOT, 'bin/tsctl.cjs'), 'image', 'pull', `${host}/team/resume:1`], { env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds }, stdio: 'ignore' });
  const exited = new Promise((r) => p.once('exit', r));
  const sent = Math.floor(gz.length * 0.6);
  for (let i = 0; i < 1200 && !(existsSync(part) && statSync(part).size >= sent); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(existsSync(part) && statSync(part).size === sent, `the pull kept the ${sent} bytes it got (${existsSync(part) ? statSync(part).size : 'no part file'})`);
  p.kill('SIGKILL');
  await exited;
  assert.not.match(await c.ok(['image', 'ls']), /team\/resume/);
  assert.is(bytesOut, sent);
  stall = false;
  const again = await c.tsctl(['image', 'pull', `${host}/team/resume:1`]);
  assert.is(again.code, 0, again.stderr);
  assert.equal(ranges, ['', `bytes=${sent}-`], 'the second pull asked for the rest only');
  assert.is(bytesOut, gz.length, 'the registry served each byte of the blob once over both pulls');
  // served warm, the layer is put after the answer: its spool goes once it is stored
  await until(() => !existsSync(part), 20000, 'the spool emptied once the layer is stored');
  assert.equal(await orphanChunks(), [], 'the killed put\'s chunks were purged');
  const run = await c.tsctl(['run', '--rm', '--network', 'none', `${host}/team/resume:1`, '/bin/busybox', 'true']);
  assert.match(run.stderr, /bin\/busybox|no such file|not found|127/i, run.stderr);
  assert.is(readFileSync(join(layersDir(), sha(tar).slice(7), 'marker'), 'utf8'), 'resumed\n', 'the resumed layer unpacks whole');
});

t('attacks - a layer escaping its root through the registry: run refuses it, the node keeps nothing', async () => {
  const evil = layout.image('evil', [tarball([{ name: 'bin/', type: '5' }, { name: '../../../../tmp/swl-registry-pwned', body: 'x' }])]);
  skopeo([`oci:${layout.dir}:evil`, `docker://${reg.host}/team/evil:1`]);
  const pull = await c.tsctl(['image', 'pull', `${reg.host}/team/evil:1`]);
  assert.is(pull.code, 0, pull.stderr);
  const before = readdirSync(layersDir()).sort();
  const r = await c.tsctl(['run', '--rm', '--network', 'none', `${reg.host}/team/evil:1`, 'true']);
  oneLineError(r, /layer sha256:[0-9a-f]{64} refused: entry "\.\.\/\.\.\/\.\.\/\.\.\/tmp\/swl-registry-pwned": path has a "\.\." component/);
  assert.equal(readdirSync(layersDir()).sort(), before, 'no layer dir, no temp dir');
  assert.not.ok(readdirSync('/tmp').includes('swl-registry-pwned'));
  assert.ok(evil.diffIds.length === 1);
});

t('load - an OCI layout tar and a gzipped docker-save archive (skopeo\'s) give the pulled image', async () => {
  const oci = join(c.dir, 'oci.tar');
  const tr = spawnSync('tar', ['-C', layout.dir, '-cf', oci, '.'], { encoding: 'utf8' });
  assert.is(tr.status, 0, tr.stderr);
  oneLineError(await c.tsctl(['image', 'load', '-i', oci]), /has no tag: give --name|holds \d+ images: --name names one/);
  const one = join(c.dir, 'oci-one');
  skopeo([`oci:${layout.dir}:1`, `oci:${one}:1`]);
  const oneTar = join(c.dir, 'oci-one.tar');
  assert.is(spawnSync('tar', ['-C', one, '-cf', oneTar, '.']).status, 0);
  const r = await c.tsctl(['image', 'load', '-i', oneTar, '--name', 'app-oci']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, `Loaded image: app-oci (${app.configDigest})\n`);
  const saved = join(c.dir, 'saved.tar');
  skopeo([`oci:${layout.dir}:1`, `docker-archive:${saved}:saved/app:2`]);
  assert.is(spawnSync('gzip', ['-f', saved]).status, 0);
  const d = await c.tsctl(['image', 'load', '-i', `${saved}.gz`]);
  assert.is(d.code, 0, d.stderr);
  assert.is(d.stdout, `Loaded image: saved/app:2 (${app.configDigest})\n`);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'saved/app:2', 'cat', '/etc/greeting']);
  assert.is(run.stdout, 'hello from layer 2\n', run.stderr);
});

t('load - hostile archives: paths out of the archive, a symlinked layer, a lying layer; nothing stored', async () => {
  const before = await storeKeys();
  const layer = tarball([{ name: 'f', body: 'load me' }]);
  const config = (ids: string[]) => JSON.stringify({ os: 'linux', rootfs: { type: 'layers', diff_ids: ids } });
  const save = (entries: Parameters<typeof tarball>[0]) => { const f = join(c.dir, `hostile-${Math.random().toString(36).slice(2)}.tar`); writeFileSync(f, tarball(entries)); return f; };
  const cases: [string, RegExp][] = [
    [save([{ name: 'manifest.json', body: JSON.stringify([{ Config: '../../../etc/passwd', RepoTags: ['x:1'], Layers: [] }]) }]), /names "\.\.\/\.\.\/\.\.\/etc\/passwd", which the archive does not hold|leads outside the archive/],
    [save([{ name: 'c.json', body: config([sha(layer)]) }, { name: 'l.tar', type: '2', linkname: '/etc/passwd' }, { name: 'manifest.json', body: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['l.tar'] }]) }]), /"l\.tar" leads outside the archive: refused|names "l\.tar", which the archive does not hold/],
    [save([{ name: 'c.json', body: config([sha(Buffer.from('other'))]) }, { name: 'l.tar', body: layer }, { name: 'manifest.json', body: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['l.tar'] }]) }]), /unpacks to sha256:[0-9a-f]{64}, not the sha256:[0-9a-f]{64} its config lists: refused/],
    [save([{ name: 'junk', body: 'x' }]), /neither a docker save archive/],
    [join(c.dir, 'no-such.tar'), /cannot read/],
  ];
  for (const [file, why] of cases) oneLineError(await c.tsctl(['image', 'load', '-i', file]), why);
  assert.equal(await storeKeys(), before);
  assert.not.match(await c.ok(['image', 'ls']), /\bx:1\b/);
});

t.run();
