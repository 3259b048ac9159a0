// `tsctl image tag | save | push` against a real registry (docker-registry, started here) and
// skopeo as the independent reader: a saved archive is read by `skopeo copy docker-archive:`
// and `oci-archive:`, and by `tsctl image load` after the cluster forgot the image; a pushed
// image is read by skopeo and pulled back, digest for digest. Attacks: an edited object store
// (save and push refuse, leaving no file and no manifest), a failing registry, and an upload
// location on another origin (the registry's credentials do not follow it). Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { StorageType } from 'nats';
import { Cluster, ROOT } from './helpers/cluster.js';
import { tarball } from './helpers/tarball.js';
import { Registry, OciLayout, skopeo, sha, haveRegistryTools, registryWithApp, type BuiltImage } from './helpers/registry.js';
import { dial } from '../tsctl/client.js';
import { readCreds } from '../shared/nats/trust.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { importedConfig } from '../tsctl/image-blobs.js';

const t = suite('image-transfer');
let c: Cluster;
let reg: Registry;
let app: BuiltImage;
let ref: string;
const servers: Server[] = [];

t.before(async () => {
  const missing = haveRegistryTools();
  if (missing) throw new Error(`image-transfer needs ${missing}`);
  c = await Cluster.start();
  ({ reg, app, ref } = await registryWithApp(c.dir, 'hello from layer 2\n'));
  const r = await c.tsctl(['image', 'pull', ref]);
  assert.is(r.code, 0, r.stderr);
});

t.after(async () => {
  for (const s of servers) s.close();
  await reg?.stop();
  await c?.stop();
});

function oneLineError(r: { code: number; stdout: string; stderr: string }, why: RegExp): void {
  assert.is.not(r.code, 0, `must fail: ${r.stdout}`);
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
}

async function store<T>(f: (os: Awaited<ReturnType<ReturnType<Awaited<ReturnType<typeof dial>>['jetstream']>['views']['os']>>) => Promise<T>): Promise<T> {
  const nc = await dial(c.url, readCreds(c.adminCreds));
  try { return await f(await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File })); } finally { await nc.close(); }
}

const inspect = async (name: string) => (JSON.parse(await c.ok(['image', 'inspect', name])) as { digest: string; layers: string[]; source: string }[])[0]!;

/** The config digest of the one image in an OCI layout skopeo wrote. */
function layoutConfig(dir: string): string {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const m = JSON.parse(readFileSync(join(dir, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { config: { digest: string } };
  return m.config.digest;
}

t('tag - a second name for the same config and layers, which runs', async () => {
  await c.ok(['image', 'tag', ref, 'app:2']);
  const [a, b] = [await inspect(ref), await inspect('app:2')];
  assert.is(b.digest, a.digest);
  assert.equal(b.layers, a.layers);
  assert.is(b.source, `tag:${ref}`);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'app:2', 'cat', '/etc/greeting']);
  assert.is(run.stdout, 'hello from layer 2\n', run.stderr);
  oneLineError(await c.tsctl(['image', 'tag', 'nosuch:1', 'x:1']), /no such image "nosuch:1"/);
  oneLineError(await c.tsctl(['image', 'tag', ref, 'Bad Name']), /invalid image name/);
});

t('save - skopeo reads the archive as docker-archive and oci-archive; load gives the images back after the cluster forgot them', async () => {
  const file = join(c.dir, 'saved.tar');
  await c.ok(['image', 'save', '-o', file, ref, 'app:2']);
  const d1 = join(c.dir, 'from-docker-archive'), d2 = join(c.dir, 'from-oci-archive');
  skopeo([`docker-archive:${file}:app:2`, `oci:${d1}:x`]);
  assert.is(layoutConfig(d1), app.configDigest, 'skopeo read the same image from the docker-save part');
  skopeo([`oci-archive:${file}:2`, `oci:${d2}:x`]);
  assert.is(layoutConfig(d2), app.configDigest, 'skopeo read the same image from the OCI layout part');
  // the cluster forgets both: the layers leave its store
  await c.ok(['image', 'rm', ref, 'app:2']);
  const keys = await store(async (os) => (await os.list()).map((i) => i.name));
  for (const d of app.diffIds) assert.not.ok(keys.includes(d.replace(':', '-')), `${d} still stored`);
  const load = await c.tsctl(['image', 'load', '-i', file]);
  assert.is(load.code, 0, load.stderr);
  assert.match(load.stdout, `Loaded image: ${ref} (${app.configDigest})`);
  assert.match(load.stdout, `Loaded image: app:2 (${app.configDigest})`);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'app:2', 'cat', '/etc/greeting']);
  assert.is(run.stdout, 'hello from layer 2\n', run.stderr);
  // to stdout, the same bytes (a save is deterministic)
  const piped = spawnSync('bash', ['-c', `${join(ROOT, 'bin/tsctl.cjs')} image save ${ref} app:2 | sha256sum`], { encoding: 'utf8', env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds } });
  assert.is(piped.stdout.split(' ')[0], sha(readFileSync(file)).slice(7), piped.stderr);
});

t('push - skopeo reads the pushed image; a pull of it is the same image; a second push sends no layer', async () => {
  const r = await c.tsctl(['image', 'push', 'app:2', `${reg.host}/team/copy:7`]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, `${reg.host}/team/copy:7: digest: sha256:`);
  assert.match(r.stdout, '(2 layer(s) pushed');
  const s = spawnSync('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/team/copy:7`], { encoding: 'utf8' });
  assert.is(s.status, 0, s.stderr);
  assert.equal((JSON.parse(s.stdout) as { Layers: string[] }).Layers, app.diffIds);
  const back = await c.tsctl(['image', 'pull', `${reg.host}/team/copy:7`, '--name', 'again:1']);
  assert.is(back.stdout.trim(), app.configDigest, back.stderr);
  const again = await c.tsctl(['image', 'push', 'app:2', `${reg.host}/team/copy:8`]);
  assert.match(again.stdout, '(0 layer(s) pushed', again.stderr);
  // the pulled image's layers are in team/copy: a push to another repository of that registry mounts them
  const mounted = await c.tsctl(['image', 'push', 'again:1', `${reg.host}/team/other:1`]);
  assert.match(mounted.stdout, '(0 layer(s) pushed, 0.0 MB, 2 mounted from another repository)', mounted.stderr);
  const m = spawnSync('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/team/other:1`], { encoding: 'utf8' });
  assert.is(m.status, 0, m.stderr);
  assert.equal((JSON.parse(m.stdout) as { Layers: string[] }).Layers, app.diffIds);
  const blob = await fetch(`http://${reg.host}/v2/team/other/blobs/${app.diffIds[0]}`, { method: 'HEAD' });
  assert.is(blob.status, 200, 'the mounted layer is served from the new repository');
  oneLineError(await c.tsctl(['image', 'push', 'app:2']), /names no registry/);
  oneLineError(await c.tsctl(['image', 'push', 'app:2', `${reg.host}/team/copy@sha256:${'0'.repeat(64)}`]), /not a digest/);
});

t('save and push - an image made from one rootfs tar gets the config docker import writes, and runs after the round trip', async () => {
  const tarFile = join(c.dir, 'one.tar');
  spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [tarFile]);
  await c.ok(['image', 'import', tarFile, '--name', 'flat']);
  const flat = await inspect('flat');
  const file = join(c.dir, 'flat.tar');
  await c.ok(['image', 'save', '-o', file, 'flat']);
  const d = join(c.dir, 'flat-oci');
  skopeo([`docker-archive:${file}`, `oci:${d}:x`]);
  assert.is(layoutConfig(d), sha(importedConfig(flat.digest)));
  await c.ok(['image', 'push', 'flat', `${reg.host}/team/flat:1`]);
  const pulled = await c.tsctl(['image', 'pull', `${reg.host}/team/flat:1`]);
  assert.is(pulled.stdout.trim(), sha(importedConfig(flat.digest)), pulled.stderr);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', `${reg.host}/team/flat:1`, 'echo', 'ok']);
  assert.is(run.stdout, 'ok\n', run.stderr);
});

t('attack - an edited store: save leaves no file, push leaves no manifest; an unknown image is one line', async () => {
  const tarFile = join(c.dir, 'victim.tar');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(tarFile, tarball([{ name: 'etc/', type: '5' }, { name: 'etc/v', body: 'victim\n' }]));
  await c.ok(['image', 'import', tarFile, '--name', 'victim']);
  const v = await inspect('victim');
  // someone with the store's write rights swaps the blob's bytes under its name
  await store((os) => os.putBlob({ name: v.digest.replace(':', '-') }, tarball([{ name: 'evil', body: 'x' }])));
  const out = join(c.dir, 'out', 'victim-save.tar');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(c.dir, 'out'));
  oneLineError(await c.tsctl(['image', 'save', '-o', out, 'victim']), /the store was edited/);
  assert.equal(readdirSync(join(c.dir, 'out')), [], 'save left something behind');
  oneLineError(await c.tsctl(['image', 'push', 'victim', `${reg.host}/team/victim:1`]), /the store was edited/);
  const m = await fetch(`http://${reg.host}/v2/team/victim/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.is(m.status, 404, 'a manifest was pushed over an edited blob');
  oneLineError(await c.tsctl(['image', 'save', '-o', join(c.dir, 'out', 'x.tar'), 'nosuch:1']), /no such image "nosuch:1"/);
  assert.not.ok(existsSync(join(c.dir, 'out', 'x.tar')));
  oneLineError(await c.tsctl(['image', 'save', '-o', join(c.dir, 'no-dir', 'x.tar'), 'app:2']), /no-dir.*ENOENT/);
});

t('attack - a registry that fails uploads is one line; one that sends the upload elsewhere does not get the credentials sent there', async () => {
  const listen = (h: (req: IncomingMessage, res: import('node:http').ServerResponse) => void) => new Promise<number>((resolve) => {
    const s = createServer(h); servers.push(s); s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port));
  });
  const failing = await listen((req, res) => { req.resume(); res.writeHead(req.method === 'HEAD' ? 404 : 500, { 'content-type': 'application/json' }); res.end(req.method === 'HEAD' ? '' : '{"errors":[{"code":"UNKNOWN","message":"disk full"}]}'); });
  oneLineError(await c.tsctl(['image', 'push', 'app:2', `127.0.0.1:${failing}/team/x:1`]), /UNKNOWN disk full \(HTTP 500\)/);
  const elsewhere: (string | undefined)[] = [];
  const other = await listen((req, res) => { elsewhere.push(req.headers.authorization); req.resume(); req.on('end', () => { res.writeHead(201); res.end(); }); });
  const main = await listen((req, res) => {
    req.resume();
    if (!req.headers.authorization) { res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }); res.end(); return; }
    if (req.method === 'HEAD') { res.writeHead(404); res.end(); return; }
    if (req.method === 'POST') { res.writeHead(202, { location: `http://127.0.0.1:${other}/upload/1` }); res.end(); return; }
    res.writeHead(201); res.end();
  });
  const r = await c.tsctl(['image', 'push', '--username', 'u', '--password-stdin', 'app:2', `127.0.0.1:${main}/team/x:1`], { input: 'secret\n' });
  assert.is(r.code, 0, r.stderr);
  assert.ok(elsewhere.length >= 3, `the uploads went to the other origin (${elsewhere.length})`);
  assert.equal(elsewhere.filter((a) => a !== undefined), [], 'the registry\'s credentials were sent to another origin');
});

t('config - Entrypoint, Cmd, Env and WorkingDir as docker run uses them; the command line overrides each', async () => {
  const layout = new OciLayout(join(c.dir, 'oci-cfg'));
  const bb = readFileSync(join(c.dir, 'busybox.tar'));
  layout.image('cfg', [bb], { config: { Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo $GREET from $(pwd)'], Env: ['GREET=hello', 'PATH=/bin:/usr/bin'], WorkingDir: '/etc' } });
  const file = join(c.dir, 'cfg.tar');
  assert.is(spawnSync('tar', ['-C', layout.dir, '-cf', file, '.']).status, 0);
  await c.ok(['image', 'load', '-i', file, '--name', 'cfg:1']);
  const run = (args: string[]) => c.tsctl(['run', '--rm', '--network', 'none', ...args]);
  assert.is((await run(['cfg:1'])).stdout, 'hello from /etc\n', 'the image\'s entrypoint, cmd, env and workdir');
  assert.is((await run(['-e', 'GREET=bye', '-w', '/tmp', 'cfg:1'])).stdout, 'bye from /tmp\n', '-e and -w over the image\'s');
  assert.is((await run(['cfg:1', 'echo other'])).stdout, 'other\n', 'a command replaces Cmd, keeps Entrypoint');
  assert.is((await run(['--entrypoint', '/bin/echo', 'cfg:1', 'plain'])).stdout, 'plain\n', '--entrypoint replaces it and drops Cmd');
  const none = await run(['--entrypoint', '', 'cfg:1']);
  assert.is.not(none.code, 0);
  assert.match(none.stderr, /no command specified: image cfg:1 has no Entrypoint or Cmd/);
});

t.run();
