// `tsctl image rm` racing a warm pull's fill (the layers it puts into the object store after
// its answer, tsctl/image-pull.ts): the put held mid-way by SWARMLITE_TEST_FILL_GATE while the
// image is removed. Nothing the fill puts after the rm stays in the store, the next layer is
// not put at all, and a layer another image shares survives (that image still runs). Fault:
// the warm process SIGKILLed between a put and its word to the controller (failpoint
// pull.filled) leaves an object no one uses; image prune keeps it while it is younger than
// the grace (a pull in progress puts its layers before it records its image) and takes it
// with --grace 0s; the next pull of the image then records it whole from the spool and the
// registry, and its rm leaves the store as it was. Needs root (the container runs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { Cluster, until } from './helpers/cluster.js';
import { tarball } from './helpers/tarball.js';
import { countingRegistry, imageStoreKeys, imageOrphanChunks } from './helpers/registry.js';
import { WarmHome, warmCall } from './helpers/warm.js';

const home = mkdtempSync(join(tmpdir(), 'swl-fill-rm-'));
chmodSync(home, 0o755);
const gate = join(home, 'gate');
mkdirSync(gate);
let c: Cluster;
const servers: Server[] = [];
const homes: WarmHome[] = [];
const cache = () => join(c.dir, 'pull-cache');
const warm = (name: string, extra: Record<string, string> = {}) => {
  const w = new WarmHome(join(home, name), () => ({ SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds, SWARMLITE_PULL_CACHE: cache(), SWARMLITE_TEST_FILL_GATE: gate, ...extra }));
  homes.push(w);
  return w;
};

test.before(async () => { c = await Cluster.start(); await c.importBusybox(); });
test.after(async () => {
  for (const w of homes) await w.kill().catch(() => undefined);
  for (const s of servers) s.close();
  await c?.stop();
  rmSync(home, { recursive: true, force: true });
});

const busyboxTar = () => readFileSync(join(process.env.SWARMLITE_TEST_CACHE ?? c.dir, 'busybox.tar'));
/** A layer of a few MB of noise and a file saying `says`. */
const layer = (says: string) => tarball([{ name: 'etc/', type: '5' }, { name: `etc/${says}`, body: `${says}\n` }, { name: 'noise', body: randomBytes(2 << 20) }]);
const key = (d: string) => d.replace(':', '-');
const parts = () => (existsSync(cache()) ? readdirSync(cache()).filter((f) => /\.(part|lock)$/.test(f)) : []);

const imageServer = (tars: Buffer[]) => countingRegistry([busyboxTar(), ...tars], servers);

/** A pull served warm (the first, run by tsctl itself, starts the warm process). */
async function warmUp(w: WarmHome, ref: string): Promise<void> {
  await until(async () => warmCall(await w.tsctl(['image', 'pull', '-q', ref])), 20000, 'a pull served warm');
}
const held = (d: string) => join(gate, `${d.slice(7)}.at`);
const release = (ds: string[]) => { for (const d of ds) writeFileSync(join(gate, `${d.slice(7)}.go`), ''); };

test('rm during a fill\'s put: nothing the fill puts after the rm stays in the store, the next layer is not put; a layer another image shares survives and runs', async () => {
  const w = warm('race');
  const shared = layer('shared');
  const keep = await imageServer([shared]);
  // the image that shares a layer: pulled by tsctl itself, its layers put before its answer
  const kept = await w.tsctl(['image', 'pull', '-q', `${keep.host}/team/keep:1`], { TSCTL_WARM: '0' });
  assert.is(kept.code, 0, kept.stderr);
  await warmUp(w, `${keep.host}/team/keep:1`);
  const before = await imageStoreKeys(c);
  const r = await imageServer([shared, layer('first'), layer('second')]);
  const ref = `${r.host}/team/racing:1`;
  const [, , first, second] = r.diffIds as [string, string, string, string];
  const pulled = await w.tsctl(['image', 'pull', '-q', ref]);
  assert.is(pulled.code, 0, pulled.stderr);
  assert.ok(warmCall(pulled), pulled.stderr);
  assert.is(pulled.stdout, `${r.config}\n`);
  // the fill holds mid-put of its first layer: the image is recorded, the layer not yet visible
  await until(() => existsSync(held(first)), 20000, 'the fill mid-put');
  assert.match(await c.ok(['image', 'ls', '-q']), /team\/racing:1/);
  assert.is(await c.ok(['image', 'rm', ref]), `${ref}\n`);
  release([first, second]);
  await until(() => parts().length === 0, 20000, 'the fill done, its spools dropped');
  // the second layer was not wanted any more: never put
  assert.not.ok(existsSync(held(second)), 'a layer of a removed image was put');
  const after = await imageStoreKeys(c);
  assert.equal(after, before, 'the store is as before the pull: no layer of the removed image is left, none other removed');
  for (const d of [first, second, r.config]) assert.not.ok(after.includes(key(d)), d);
  for (const d of keep.diffIds) assert.ok(after.includes(key(d)), `the shared layer ${d} survives`);
  assert.equal(await imageOrphanChunks(c), []);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', `${keep.host}/team/keep:1`, 'cat', '/etc/shared']);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'shared\n');
  // the log says what happened: the image recorded, then removed by the rm
  const log = (await c.ok(['events', '--filter', `entity=${r.config.slice(7)}`])).split('\n').filter((l) => /Image(Imported|Removed)/.test(l));
  assert.is(log.length, 2, log.join('\n'));
  assert.match(log[0]!, /ImageImported/);
  assert.match(log[1]!, /ImageRemoved/);
});

test('fault - the warm process SIGKILLed between a fill\'s put and its word to the controller, after an rm: prune keeps the young orphan, --grace 0s takes it; the next pull records the image whole, its rm leaves the store as it was', async () => {
  const w = warm('killed', { SWARMLITE_FAILPOINTS: 'pull.filled' });
  const wu = await imageServer([layer('warmup')]);
  await warmUp(w, `${wu.host}/team/warmup:1`);
  // the warm-up's layers were put before its answer (the first pull, tsctl's own): its rm takes them
  await c.ok(['image', 'rm', `${wu.host}/team/warmup:1`]);
  const r = await imageServer([layer('third'), layer('fourth')]);
  const before = await imageStoreKeys(c);
  const ref = `${r.host}/team/killed:1`;
  const [, third, fourth] = r.diffIds as [string, string, string];
  rmSync(join(gate, `${third.slice(7)}.go`), { force: true });
  rmSync(join(gate, `${fourth.slice(7)}.go`), { force: true });
  const pulled = await w.tsctl(['image', 'pull', '-q', ref]);
  assert.is(pulled.code, 0, pulled.stderr);
  assert.ok(warmCall(pulled), pulled.stderr);
  await until(() => existsSync(held(third)), 20000, 'the fill mid-put');
  assert.is(await c.ok(['image', 'rm', ref]), `${ref}\n`);
  release([third]);
  await until(() => w.pids().length === 0, 20000, 'the warm process killed between the put and its word');
  // the kill left what it put: an object nothing uses
  const left = await imageStoreKeys(c);
  assert.equal(left.filter((k) => !before.includes(k)), [key(third)], 'the killed fill\'s layer is the one object added');
  assert.not.match(await c.ok(['image', 'ls', '-q']), /team\/killed/);
  // younger than the grace: kept (a pull in progress puts its layers before it records its image)
  const young = await c.ok(['image', 'prune']);
  assert.not.match(young, /Deleted blob/);
  assert.ok((await imageStoreKeys(c)).includes(key(third)));
  const pruned = await c.ok(['image', 'prune', '--grace', '0s']);
  assert.equal(pruned.split('\n').filter((l) => l.startsWith('Deleted blob')), [`Deleted blob: ${third}`], pruned);
  assert.equal(await imageStoreKeys(c), before, 'prune left the store as before the pull');
  // the next pull (tsctl itself) records the image whole: both layers put from their spools (the
  // collected one was spooled still: the kill came before its spool was dropped), the registry not asked again
  release([fourth]);
  const again = await w.tsctl(['image', 'pull', '-q', ref], { TSCTL_WARM: '0' });
  assert.is(again.code, 0, again.stderr);
  assert.is(again.stdout, `${r.config}\n`);
  for (const b of r.blobs.slice(1)) assert.is(r.gets.get(b), 1, `blob ${b} fetched again`);
  const whole = await imageStoreKeys(c);
  for (const d of [r.config, ...r.diffIds]) assert.ok(whole.includes(key(d)), d);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', ref, 'cat', '/etc/third', '/etc/fourth']);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'third\nfourth\n');
  assert.equal(await imageOrphanChunks(c), []);
  assert.equal(parts(), [], 'no spool left');
  await c.ok(['image', 'rm', ref]);
  assert.equal(await imageStoreKeys(c), before, 'the rm left the store as before the pull');
  // nothing else was orphaned along the way
  assert.not.match(await c.ok(['image', 'prune', '--grace', '0s']), /Deleted blob/);
});

/**
 * Image `first` pulled (tsctl itself), then a pull of `second`, which shares its layer `tag`
 * and adds `slow-<tag>`, held by the registry at that new layer: it has looked at the store and
 * taken its hold. `before`: the store's keys before that pull; `go` lets the held layer through.
 */
async function pullHeldBehind(tag: string) {
  let go!: () => void;
  const slowly = new Promise<void>((r) => (go = r));
  const shared = layer(tag);
  const a = await imageServer([shared]);
  const refA = `${a.host}/team/first-${tag}:1`;
  assert.is((await c.tsctl(['image', 'pull', '-q', refA], { env: { TSCTL_WARM: '0' } })).code, 0);
  const before = await imageStoreKeys(c);
  let asked = false;
  const b = await countingRegistry([busyboxTar(), shared, layer(`slow-${tag}`)], servers, { stall: (d) => (d === b.blobs[2] ? (asked = true, slowly) : undefined) });
  const refB = `${b.host}/team/second-${tag}:1`;
  const pulling = c.tsctl(['image', 'pull', '-q', refB], { env: { TSCTL_WARM: '0' } });
  await until(() => asked, 20000, 'the pull asking for its new layer');
  return { a, b, refA, refB, before, pulling, go, sharedKey: key(a.diffIds[1]!) };
}

test('rm of an image while a pull of another that shares a layer is under way: the pull found the layer in the store and its import still names it (image.hold); the rm after the import takes it', async () => {
  const { a, b, refA, refB, before, pulling, go, sharedKey } = await pullHeldBehind('held');
  assert.is(await c.ok(['image', 'rm', refA]), `${refA}\n`);
  assert.ok((await imageStoreKeys(c)).includes(sharedKey), 'the rm took the layer the pull holds');
  go();
  const pulled = await pulling;
  assert.is(pulled.code, 0, pulled.stderr);
  assert.is(pulled.stdout, `${b.config}\n`);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', refB, 'cat', '/etc/held', '/etc/slow-held']);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'held\nslow-held\n');
  // the import ended the hold: the next rm takes the image's blobs, the shared one with them
  await c.ok(['image', 'rm', refB]);
  const after = await imageStoreKeys(c);
  for (const d of [b.config, b.diffIds[1]!, b.diffIds[2]!]) assert.not.ok(after.includes(key(d)), `${d} left after the last image using it went`);
  assert.equal(after, before.filter((k) => k !== key(a.config) && k !== sharedKey));
  assert.equal(await imageOrphanChunks(c), []);
});

test('fault - a pull SIGKILLed between its hold and its import: the layer it held stays through an rm and a prune until its hold lapses; pulling again records the image', async () => {
  const { a, b, refA, refB, pulling, go, sharedKey } = await pullHeldBehind('kheld');
  // killed after its hold, before its import: nothing ends the hold but its time
  assert.is(spawnSync('pkill', ['-KILL', '-f', refB]).status, 0, 'no pull process to kill');
  const killed = await pulling;
  assert.is.not(killed.code, 0, killed.stdout);
  assert.not.match(await c.ok(['image', 'ls', '-q']), /second-kheld/);
  await c.ok(['image', 'rm', refA]);
  assert.not.match(await c.ok(['image', 'prune', '--grace', '0s']), new RegExp(a.diffIds[1]!), 'prune took a blob a hold names');
  assert.ok((await imageStoreKeys(c)).includes(sharedKey), 'the held layer went while its hold lasts');
  // the restart: the same pull again records the image whole and runs it
  go();
  const again = await c.tsctl(['image', 'pull', '-q', refB], { env: { TSCTL_WARM: '0' } });
  assert.is(again.code, 0, again.stderr);
  assert.is(again.stdout, `${b.config}\n`);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', refB, 'cat', '/etc/kheld', '/etc/slow-kheld']);
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'kheld\nslow-kheld\n');
  assert.equal(await imageOrphanChunks(c), []);
  await c.ok(['image', 'rm', refB]);
});

test('attacks - image prune refuses a grace that is not a duration; image.fill refuses a layer that is not a digest', async () => {
  for (const g of ['-1s', 'soon', '1y', '']) {
    const r = await c.tsctl(['image', 'prune', '--grace', g]);
    assert.is.not(r.code, 0, g);
    assert.match(r.stderr, /invalid --grace|argument missing|duration/, r.stderr);
  }
});

test.run();
