// `tsctl image pull` served by the warm tsctl (tsctl/warm.ts; bin/tsctl.cjs asks it, as for
// run): the same digest, progress lines, exit code and errors as a pull tsctl does itself; an
// image that runs. A pull whose password comes on stdin is run by the client itself. Faults:
// the warm process SIGKILLed mid-pull (the client says so with 125, nothing recorded, the next
// pull resumes the blob and completes), the client SIGKILLed mid-pull (the warm process
// abandons the pull as a killed tsctl would: no image, no object, no chunk left, the spool kept
// for the next pull's Range). A warm pull answers once its layers are verified and spooled and
// fills the object store afterwards: SIGKILLed between the two, the image is recorded, a
// container started then waits for its layer, and the next pull puts it from the spool without
// the registry. Attacks: the warm socket serves run, image pull and rm alone, any other command
// sent on it changes nothing; a spooled blob changed before its fill is refused and fetched
// again; a blob whose bytes are not its digest is refused by a deferring pull, nothing kept.
// Needs root (the container run).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Cluster, freePort, until } from './helpers/cluster.js';
import { tarball } from './helpers/tarball.js';
import { countingRegistry, sha, served, haveRegistryTools, imageStoreKeys, imageOrphanChunks, registryWithApp, type Registry, type BuiltImage } from './helpers/registry.js';
import { WarmHome, askWarm, untraced, warmCall } from './helpers/warm.js';

const home = mkdtempSync(join(tmpdir(), 'swl-pull-warm-'));
chmodSync(home, 0o755);
let c: Cluster;
let reg: Registry;
let app: BuiltImage;
const servers: Server[] = [];
const w = new WarmHome(join(home, 'run'), () => ({ SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds, SWARMLITE_PULL_CACHE: join(c.dir, 'pull-cache') }));
const missing = haveRegistryTools();

test.before(async () => {
  if (missing) throw new Error(`pull-warm needs ${missing}`);
  c = await Cluster.start();
  ({ reg, app } = await registryWithApp(c.dir, 'pulled warm\n'));
});
test.after(async () => {
  await w.kill().catch(() => undefined);
  for (const s of servers) s.close();
  await reg?.stop();
  await c?.stop();
  rmSync(home, { recursive: true, force: true });
});

/** A pull served warm (the first one, run by tsctl itself, starts the warm process). */
async function warmUp(ref: string): Promise<void> {
  await until(async () => warmCall(await w.tsctl(['image', 'pull', '-q', ref])), 20000, 'a pull served warm');
}
const sortedLines = (s: string) => s.trim().split('\n').sort();

test('warm pull - served by the warm process: the same digest, progress lines, exit code and errors as a pull tsctl does itself; the image runs', async () => {
  const ref = `${reg.host}/team/app:1`;
  await warmUp(ref);
  for (const k of ['warm', 'direct']) {
    assert.is(await c.ok(['image', 'rm', ref]), `${ref}\n`);
    const r = await w.tsctl(['image', 'pull', ref], k === 'direct' ? { TSCTL_WARM: '0' } : {});
    assert.is(r.code, 0, r.stderr);
    assert.is(warmCall(r), k === 'warm', r.stderr);
    assert.is(r.stdout, `${app.configDigest}\n`, k);
    // not a terminal: one plain line per layer
    assert.is(sortedLines(untraced(r)).length, 2, r.stderr);
    assert.ok(sortedLines(untraced(r)).every((l) => /^[0-9a-f]{12}: Pull complete$/.test(l)), r.stderr);
    // served warm, the layers are put after the answer: an image rm before then would leave the
    // fill's objects for the next pull to find ("Already exists")
    await until(() => parts().length === 0, 20000, 'the fill done');
  }
  // through tsctl's C client (the command users run): served with no node started, the same answer
  assert.is(await c.ok(['image', 'rm', ref]), `${ref}\n`);
  const cl = await w.client(['image', 'pull', ref]);
  assert.is(cl.code, 0, cl.stderr);
  assert.not.ok(cl.nodeStarted, 'no node started for the pull');
  assert.is(cl.stdout.toString(), `${app.configDigest}\n`);
  assert.ok(sortedLines(cl.stderr).every((l) => /^[0-9a-f]{12}: Pull complete$/.test(l)), cl.stderr);
  await until(() => parts().length === 0, 20000, 'the fill done');
  const again = await w.tsctl(['image', 'pull', ref]);
  assert.ok(warmCall(again));
  assert.ok(sortedLines(untraced(again)).every((l) => /: Already exists$/.test(l)), again.stderr);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', ref, 'cat', '/etc/greeting']);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'pulled warm\n');
  for (const args of [['image', 'pull', `${reg.host}/team/none:1`], ['image', 'pull', 'UPPER/case:x'], ['image', 'pull'], ['image', 'pull', '--bogus', ref]]) {
    const wr = await w.tsctl(args), d = await w.tsctl(args, { TSCTL_WARM: '0' });
    assert.ok(warmCall(wr), `${args.join(' ')}: ${wr.stderr}`);
    assert.is(wr.code, d.code, args.join(' '));
    assert.is.not(wr.code, 0, args.join(' '));
    assert.is(untraced(wr), untraced(d), args.join(' '));
    assert.is(untraced(wr).trim().split('\n').length, 1, wr.stderr);
  }
});

test('warm pull - a password on stdin: tsctl pulls itself (the warm process never reads a client\'s stdin)', async () => {
  const ref = `${reg.host}/team/app:1`;
  await warmUp(ref);
  const r = await w.tsctl(['image', 'pull', '-q', '-u', 'someone', '--password-stdin', ref], {}, (p) => p.stdin!.end('secret\n'));
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, `${app.configDigest}\n`);
  assert.not.ok(warmCall(r), r.stderr);
  // asked on the socket anyway, the warm process hands the call back before doing anything
  const [sock] = w.sockets();
  const frames = await askWarm(sock!, { v: 1, argv: ['image', 'pull', '-u', 'x', '--password-stdin', ref], env: { SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds }, cwd: '/', tty: [false, false] });
  assert.equal(frames, [{ direct: true }]);
});

test('attacks - the warm socket serves run, image pull and rm alone: any other command sent on it is refused and changes nothing', async () => {
  const ref = `${reg.host}/team/app:1`;
  await warmUp(ref);
  const [sock] = w.sockets();
  const env = { SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds };
  const before = await c.ok(['image', 'ls', '-q']);
  assert.match(before, /team\/app:1/);
  for (const argv of [['image', 'rm', ref], ['image', 'load', '-i', '/etc/passwd'], ['image', 'prune', '-a'], ['kill', 'x'], ['stop', 'x'], ['ps'], ['image', 'pull', '--name']]) {
    const frames = await askWarm(sock!, { v: 1, argv, env, cwd: '/', tty: [false, false] });
    const exit = frames.find((f) => 'exit' in f);
    assert.ok(exit && exit.exit !== 0, `${argv.join(' ')}: ${JSON.stringify(frames)}`);
    assert.not.ok(frames.some((f) => 'o' in f), `${argv.join(' ')}: nothing on stdout`);
  }
  assert.is(await c.ok(['image', 'ls', '-q']), before, 'no image removed or added');
});

/**
 * A registry serving one gzip layer of `tar` that stalls after 60% of the blob while `stall()`
 * (the pull is then mid-put when a test kills something), else serves it (from a Range).
 */
async function stallingRegistry(tar: Buffer, stall: () => boolean): Promise<{ host: string; ranges: string[]; sent: number; gz: Buffer }> {
  const routes = served([tar]);
  const gz = gzipSync(tar);
  const ranges: string[] = [];
  const port = await freePort();
  const s = createServer((req, res) => {
    const p = new URL(req.url!, 'http://x').pathname;
    if (!p.endsWith(`/blobs/${sha(gz)}`)) { const r = routes(p); res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/octet-stream' }).end(r.body); return; }
    ranges.push(String(req.headers.range ?? ''));
    const m = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    const from = m ? Number(m[1]) : 0;
    const body = gz.subarray(from);
    res.writeHead(m ? 206 : 200, { 'content-length': String(body.length), ...(m ? { 'content-range': `bytes ${from}-${gz.length - 1}/${gz.length}` } : {}) });
    if (stall()) res.write(body.subarray(0, Math.floor(body.length * 0.6)));
    else res.end(body);
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  servers.push(s);
  return { host: `127.0.0.1:${port}`, ranges, sent: Math.floor(gz.length * 0.6), gz };
}

/** Waits until the pull kept `sent` bytes of `gz` in its spool (it is then stalled mid-put). */
async function spooled(gz: Buffer, sent: number): Promise<string> {
  const part = join(c.dir, 'pull-cache', `${sha(gz).slice(7)}.part`);
  await until(() => existsSync(part) && statSync(part).size >= sent, 30000, 'the stalled blob spooled');
  assert.is(statSync(part).size, sent);
  return part;
}

/** The second pull after a killed one: asks for the rest only, completes, leaves no chunk and no spool. */
async function resumes(host: string, repo: string, r: { ranges: string[]; sent: number; gz: Buffer }, part: string): Promise<void> {
  const again = await w.tsctl(['image', 'pull', `${host}/${repo}:1`]);
  assert.is(again.code, 0, again.stderr);
  assert.equal(r.ranges, ['', `bytes=${r.sent}-`], 'the second pull asked for the rest only');
  // a warm pull puts its layers after its answer
  await until(() => !existsSync(part), 20000, 'the spool emptied once the layer is stored');
  assert.equal(await imageOrphanChunks(c), [], 'no chunk of the killed put is left');
  assert.match(await c.ok(['image', 'ls', '-q']), new RegExp(`${host}/${repo}:1`));
}

test('fault - the warm process SIGKILLed mid-pull: the client ends with 125 and says so, nothing is recorded; the next pull resumes the blob and completes', async () => {
  await warmUp(`${reg.host}/team/app:1`);
  let stall = true;
  const r = await stallingRegistry(tarball([{ name: 'big', body: randomBytes(3 << 20) }]), () => stall);
  const before = await imageStoreKeys(c);
  const pulling = w.tsctl(['image', 'pull', `${r.host}/team/cut:1`]);
  const part = await spooled(r.gz, r.sent);
  for (const p of w.pids()) process.kill(p, 'SIGKILL');
  const cut = await pulling;
  assert.is(cut.code, 125);
  assert.ok(warmCall(cut), cut.stderr);
  assert.match(untraced(cut), /^tsctl: the warm tsctl process \(.*\) went away during the call; the image was not recorded \(pulling again resumes its layers\)\n$/);
  assert.equal(await imageStoreKeys(c), before, 'no object of the killed pull is visible');
  assert.not.match(await c.ok(['image', 'ls', '-q']), /team\/cut/);
  stall = false;
  await resumes(r.host, 'team/cut', r, part);
});

test('fault - the client SIGKILLed mid-pull: the warm process abandons the pull (no image, no object, no chunk), keeps the spool, serves on; the next pull resumes', async () => {
  await warmUp(`${reg.host}/team/app:1`);
  const [pid] = w.pids();
  let stall = true;
  const r = await stallingRegistry(tarball([{ name: 'big', body: randomBytes(3 << 20) }]), () => stall);
  const before = await imageStoreKeys(c);
  let client: { kill(sig: NodeJS.Signals): boolean } | undefined;
  const pulling = w.tsctl(['image', 'pull', `${r.host}/team/orphan:1`], {}, (p) => { client = p; });
  const part = await spooled(r.gz, r.sent);
  client!.kill('SIGKILL');
  const killed = await pulling;
  assert.is(killed.signal, 'SIGKILL');
  // the warm process lets go of the blob (its lock) once it has dropped the put
  await until(() => !existsSync(part.replace(/\.part$/, '.lock')), 10000, 'the abandoned pull let go of its spool');
  assert.equal(await imageOrphanChunks(c), [], 'the abandoned put\'s chunks were purged');
  assert.equal(await imageStoreKeys(c), before, 'no object of the abandoned pull');
  assert.is(statSync(part).size, r.sent, 'the bytes received are kept for the next pull');
  // a stalled registry would have let it record the image later: it must not, ever
  stall = false;
  await new Promise((res) => setTimeout(res, 500));
  assert.not.match(await c.ok(['image', 'ls', '-q']), /team\/orphan/);
  assert.equal(w.pids(), [pid], 'the same warm process serves on');
  await resumes(r.host, 'team/orphan', r, part);
});

const imageServer = (tars: Buffer[], o: { flip?: boolean } = {}) => countingRegistry([readFileSync(join(c.dir, 'busybox.tar')), ...tars], servers, o);
const key = (d: string) => d.replace(':', '-');
const cache = () => join(c.dir, 'pull-cache');
const parts = () => (existsSync(cache()) ? readdirSync(cache()).filter((f) => f.endsWith('.part')).sort() : []);
/** A layer that is a few MB of noise (a put that takes a moment) and a file saying `says`. */
const layer = (says: string) => tarball([{ name: 'etc/', type: '5' }, { name: `etc/${says}`, body: `${says}\n` }, { name: 'noise', body: randomBytes(2 << 20) }]);

test('deferred fill - a warm pull answers with its layers verified and spooled, fills the store after: a container started at once runs, the spool empties', async () => {
  await warmUp(`${reg.host}/team/app:1`);
  const r = await imageServer([layer('soon'), layer('later')]);
  const ref = `${r.host}/team/soon:1`;
  const pulled = await w.tsctl(['image', 'pull', ref]);
  assert.is(pulled.code, 0, pulled.stderr);
  assert.ok(warmCall(pulled), pulled.stderr);
  assert.is(pulled.stdout, `${r.config}\n`);
  assert.is(sortedLines(untraced(pulled)).length, 3, pulled.stderr);
  // started before the fill may have ended: the agent waits for the layers it lacks
  const run = await c.tsctl(['run', '--rm', '--network', 'none', ref, 'cat', '/etc/soon', '/etc/later']);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'soon\nlater\n');
  await until(() => !parts().some((f) => r.blobs.some((b) => f === `${b.slice(7)}.part`)), 20000, 'the spool emptied by the fill');
  const keys = await imageStoreKeys(c);
  for (const d of r.diffIds) assert.ok(keys.includes(key(d)), d);
  assert.equal(await imageOrphanChunks(c), []);
  for (const b of r.blobs.slice(1)) assert.is(r.gets.get(b), 1, 'each blob fetched once');
});

test('fault - the warm process SIGKILLed between its answer and its fill\'s end: the image is recorded, a layer only spooled; a container started then waits for it, the next pull puts it from the spool without the registry', async () => {
  const wf = new WarmHome(join(home, 'run-fill'), () => ({ SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds, SWARMLITE_PULL_CACHE: cache(), SWARMLITE_FAILPOINTS: 'pull.fill' }));
  try {
    await until(async () => warmCall(await wf.tsctl(['image', 'pull', '-q', `${reg.host}/team/app:1`])), 20000, 'a pull served warm');
    const r = await imageServer([layer('first'), layer('second')]);
    const ref = `${r.host}/team/killed:1`;
    const pulled = await wf.tsctl(['image', 'pull', '-q', ref]);
    assert.is(pulled.code, 0, pulled.stderr);
    assert.ok(warmCall(pulled), pulled.stderr);
    assert.is(pulled.stdout, `${r.config}\n`);
    // the failpoint: killed after the first deferred layer's put, before the second's
    await until(() => wf.pids().length === 0, 20000, 'the warm process killed mid-fill');
    assert.match(await c.ok(['image', 'ls', '-q']), /team\/killed:1/);
    const keys = await imageStoreKeys(c);
    const stored = r.diffIds.slice(1).filter((d) => keys.includes(key(d)));
    assert.is(stored.length, 1, 'one layer put, one not');
    const left = r.blobs.slice(1).filter((b) => parts().includes(`${b.slice(7)}.part`));
    assert.is(left.length, 1, 'the layer not put is spooled whole');
    // a container started now waits for the missing layer; the next pull (tsctl itself) puts it
    const running = c.tsctl(['run', '--rm', '--network', 'none', ref, 'cat', '/etc/first', '/etc/second']);
    await new Promise((res) => setTimeout(res, 1500));
    const again = await w.tsctl(['image', 'pull', '-q', ref], { TSCTL_WARM: '0' });
    assert.is(again.code, 0, again.stderr);
    assert.is(again.stdout, `${r.config}\n`);
    const run = await running;
    assert.is(run.code, 0, run.stderr);
    assert.is(run.stdout, 'first\nsecond\n');
    for (const b of r.blobs.slice(1)) assert.is(r.gets.get(b), 1, 'the registry was not asked again for a spooled blob');
    assert.not.ok(parts().includes(`${left[0]!.slice(7)}.part`), 'the spool emptied');
    const after = await imageStoreKeys(c);
    for (const d of r.diffIds) assert.ok(after.includes(key(d)), d);
    assert.equal(await imageOrphanChunks(c), []);

    // the same kill, then the spooled blob changed on disk: the next pull refuses those bytes and fetches the blob again
    await until(async () => warmCall(await wf.tsctl(['image', 'pull', '-q', `${reg.host}/team/app:1`])), 20000, 'a pull served warm again');
    const t = await imageServer([layer('third'), layer('fourth')]);
    const tref = `${t.host}/team/tampered:1`;
    assert.is((await wf.tsctl(['image', 'pull', '-q', tref])).code, 0);
    await until(() => wf.pids().length === 0, 20000, 'the warm process killed mid-fill');
    const spooled = t.blobs.slice(1).find((b) => parts().includes(`${b.slice(7)}.part`))!;
    const file = join(cache(), `${spooled.slice(7)}.part`);
    const bytes = readFileSync(file);
    bytes[700] ^= 1;
    writeFileSync(file, bytes);
    const fixed = await w.tsctl(['image', 'pull', '-q', tref], { TSCTL_WARM: '0' });
    assert.is(fixed.code, 0, fixed.stderr);
    assert.is(t.gets.get(spooled), 2, 'the changed blob was fetched again');
    const trun = await c.tsctl(['run', '--rm', '--network', 'none', tref, 'cat', '/etc/third', '/etc/fourth']);
    assert.is(trun.code, 0, trun.stderr);
    assert.is(trun.stdout, 'third\nfourth\n');
    assert.equal(await imageOrphanChunks(c), []);
  } finally {
    await wf.kill().catch(() => undefined);
  }
});

test('attacks - a deferring pull refuses a blob whose bytes are not its digest: one line, no image, no object, no spool', async () => {
  await warmUp(`${reg.host}/team/app:1`);
  const r = await imageServer([layer('honest'), layer('forged')], { flip: true });
  const before = await imageStoreKeys(c);
  const pulled = await w.tsctl(['image', 'pull', '-q', `${r.host}/team/forged:1`]);
  assert.ok(warmCall(pulled), pulled.stderr);
  assert.is.not(pulled.code, 0);
  assert.match(untraced(pulled), new RegExp(`^tsctl: .*blob ${r.blobs[2]} arrived with digest sha256:[0-9a-f]{64}: refused\n$`));
  assert.not.match(await c.ok(['image', 'ls', '-q']), /team\/forged/);
  assert.not.ok(parts().includes(`${r.blobs[2]!.slice(7)}.part`), 'the forged bytes are not kept');
  await until(async () => !existsSync(join(cache(), `${r.blobs[1]!.slice(7)}.lock`)), 10000, 'the verified blob let go');
  assert.equal(await imageStoreKeys(c), before, 'no object of the refused pull');
  assert.equal(await imageOrphanChunks(c), []);
});

test.run();
