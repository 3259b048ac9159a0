// Anonymous volumes and docker's copy-up without a cluster: an image's VOLUME paths cleaned as
// docker cleans them (a hostile one is one line), `-v /path`, the controller's choice of
// anonymous volumes beside the request's mounts; the copy of the image's content into an
// empty volume (owners, modes, links kept; a volume with data left alone), what a crash cut
// (a staging dir dropped, a complete copy finished), and the attacks: links and '..' that
// point out of the container's root never make the copy read the host's files; the removal
// of a container's anonymous volumes (never a named one, never one another container uses);
// forged payloads of the new fields refused before anything acts.
// Needs root for the owners (lchown).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync, chownSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyUp, recoverCopyUp } from '../agent/storage/copy-up.js';
import { NodeVolumes, checkVolumeName } from '../agent/storage/volumes.js';
import * as actions from '../agent/pipeline/actions.js';
import { imageVolumeTargets, parseVolumeFlag, mountCheck, mountProblem, anonymousOf, type VolumeMount } from '../shared/volumes.js';
import { payloadChecks } from '../shared/schema.js';
import { withImageVolumes, configDefaults } from '../controller/api/containers.js';
import { unless } from './helpers/skip.js';

/** Tests that set owners (lchown): root only, skipped (and counted so) elsewhere. */
const rt = unless(test, process.getuid?.() === 0 ? undefined : 'copy-up keeps owners: needs root (lchown)');

function tmp() {
  const dir = mkdtempSync(join(tmpdir(), 'swl-copyup-'));
  const rootfs = join(dir, 'rootfs'), vol = join(dir, 'volumes', 'v1');
  mkdirSync(rootfs, { recursive: true });
  mkdirSync(vol, { recursive: true });
  return { dir, rootfs, vol, data: join(vol, '_data'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('image volumes - cleaned as docker cleans them; hostile keys are one line naming them', () => {
  assert.equal(imageVolumeTargets(['/data', '/a/../b', '/../../../etc', '/x/', '/data']), ['/data', '/b', '/etc', '/x']);
  for (const [bad, why] of [['data', /not an absolute path/], ['/a\0b', /not an absolute path/], ['/proc/self', /container's own proc/], ['/..', /not a clean absolute path below \//],
    ['/sys/../dev/x', /container's own dev/]] as const) {
    let msg = '';
    try { imageVolumeTargets([bad]); } catch (err) { msg = (err as Error).message; }
    assert.match(msg, why, bad);
    assert.is(msg.split('\n').length, 1);
    assert.not.match(msg, /\0/);
  }
  assert.throws(() => imageVolumeTargets(Array.from({ length: 65 }, (_, i) => `/v${i}`)), /more than 64/);
  // the config's Volumes keys reach the run as they are, the check is the run's
  assert.equal(configDefaults(Buffer.from(JSON.stringify({ config: { Volumes: { '/data': {}, 'rel': {} } } }))).volumes, ['/data', 'rel']);
  assert.is(configDefaults(Buffer.from(JSON.stringify({ config: { Volumes: ['/data'] } }))).volumes, undefined);
});

test('anonymous volumes - -v /path is one; the image\'s VOLUME paths a mount covers get none; names are 64 hex, fresh each run', () => {
  assert.equal(parseVolumeFlag('/cache'), { type: 'volume', target: '/cache', anonymous: true });
  assert.throws(() => parseVolumeFlag('/proc'), /invalid -v "\/proc"/);
  assert.throws(() => parseVolumeFlag('cache'), /invalid -v "cache"/);
  const ms: VolumeMount[] = [{ type: 'volume', source: 'named', target: '/data' }, { type: 'volume', target: '/cache', anonymous: true }, { type: 'tmpfs', target: '/tmp' }];
  const { mounts } = withImageVolumes(ms, ['/data', '/logs', '/tmp', '/a/../logs'], 'img');
  assert.equal(mounts!.map((m) => [m.target, m.type, m.anonymous === true]), [['/data', 'volume', false], ['/cache', 'volume', true], ['/tmp', 'tmpfs', false], ['/logs', 'volume', true]]);
  assert.equal(mounts![0]!.source, 'named');
  for (const m of mounts!.filter((x) => x.anonymous)) assert.match(m.source!, /^[0-9a-f]{64}$/);
  assert.is(mountProblem(mounts!), undefined);
  assert.equal(anonymousOf(mounts), [mounts![1]!.source, mounts![3]!.source]);
  const again = withImageVolumes([], ['/logs'], 'img').mounts!;
  assert.is.not(again[0]!.source, mounts![3]!.source, 'a fresh name each run');
  assert.equal(withImageVolumes([], [], 'img'), {});
  // a request may not name an anonymous volume (it could claim another's for rm -v)
  assert.throws(() => withImageVolumes([{ type: 'volume', source: 'a'.repeat(64), target: '/x', anonymous: true }], [], 'img'), /has no name in the request/);
  assert.throws(() => withImageVolumes([], ['/proc'], 'evil'), /image evil: the image declares volume "\/proc"/);
});

test('forged - the new fields are checked before anything acts; an anonymous bind, or a volume without a name, is refused', () => {
  const ok = { force: true, volumes: true, user: 'u' };
  assert.equal(payloadChecks.ContainerRemoveRequested(ok, 'data'), ok);
  assert.throws(() => payloadChecks.ContainerRemoveRequested({ force: true, volumes: 'yes', user: 'u' }, 'data'), /volumes/);
  assert.throws(() => payloadChecks.VolumeCreateRequested({ node: 'n1', name: 'v', anonymous: 1, user: 'u' }, 'data'), /anonymous/);
  assert.throws(() => mountCheck({ type: 'volume', source: 'v', target: '/x', anonymous: 'true' }, 'm'), /anonymous/);
  assert.match(mountProblem([{ type: 'bind', source: '/srv', target: '/x', anonymous: true }]) ?? '', /only a volume is anonymous/);
  assert.match(mountProblem([{ type: 'volume', target: '/x' }]) ?? '', /invalid volume name ""/, 'a named volume needs its name');
  // what reaches a node without a name (a hand-made event) never becomes a path
  assert.throws(() => checkVolumeName(undefined), /invalid volume name "undefined"/);
  assert.throws(() => checkVolumeName('../etc'), /invalid volume name/);
});

rt('copy-up - an empty volume takes the image\'s content: owners, modes, links, hard links kept; the dir\'s own owner and mode too', async () => {
  const s = tmp();
  try {
    const src = join(s.rootfs, 'data');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'sub', 'f'), 'from the image\n');
    chownSync(join(src, 'sub', 'f'), 1234, 99);
    chmodSync(join(src, 'sub', 'f'), 0o4750);
    symlinkSync('../etc/passwd', join(src, 'link'));
    chownSync(src, 1000, 1000);
    chmodSync(src, 0o770);
    assert.is(await copyUp(s.vol, s.rootfs, '/data'), true);
    const f = lstatSync(join(s.data, 'sub', 'f'));
    assert.equal([f.uid, f.gid, f.mode & 0o7777], [1234, 99, 0o4750]);
    assert.is(readFileSync(join(s.data, 'sub', 'f'), 'utf8'), 'from the image\n');
    assert.is(readlinkSync(join(s.data, 'link')), '../etc/passwd', 'a link stays a link');
    const d = lstatSync(s.data);
    assert.equal([d.uid, d.gid, d.mode & 0o7777], [1000, 1000, 0o770]);
    assert.equal(readdirSync(s.vol).sort(), ['_data'], 'nothing staged is left');
    // a volume with anything in it is left alone (docker copies only into an empty one)
    writeFileSync(join(src, 'later'), 'x');
    assert.is(await copyUp(s.vol, s.rootfs, '/data'), false);
    assert.not.ok(existsSync(join(s.data, 'later')));
    // nothing in the image there: an empty volume, no error
    const t2 = tmp();
    try { assert.is(await copyUp(t2.vol, t2.rootfs, '/nothing/here'), false); assert.equal(readdirSync(t2.data), []); } finally { t2.done(); }
  } finally { s.done(); }
});

rt('copy-up crash - an incomplete staging dir is dropped and the copy made again; a complete one is finished', async () => {
  const s = tmp();
  try {
    mkdirSync(join(s.rootfs, 'data'));
    for (let i = 0; i < 20; i++) writeFileSync(join(s.rootfs, 'data', `f${i}`), `${i}`);
    // cut while copying: half a copy in .copyup, _data empty
    mkdirSync(join(s.vol, '.copyup'));
    writeFileSync(join(s.vol, '.copyup', 'f0'), 'half');
    mkdirSync(s.data);
    assert.is(await copyUp(s.vol, s.rootfs, '/data'), true);
    assert.is(readdirSync(s.data).length, 20);
    assert.is(readFileSync(join(s.data, 'f0'), 'utf8'), '0');
    assert.equal(readdirSync(s.vol), ['_data']);
    // cut while moving a complete copy in: the rest is moved, what _data has stays
    const t2 = tmp();
    try {
      mkdirSync(join(t2.vol, '.copied'));
      writeFileSync(join(t2.vol, '.copied', 'b'), 'copied b');
      writeFileSync(join(t2.vol, '.copied', 'a'), 'copied a');
      chmodSync(join(t2.vol, '.copied'), 0o711);
      mkdirSync(t2.data);
      writeFileSync(join(t2.data, 'a'), 'moved a');
      assert.is(await recoverCopyUp(t2.vol), true);
      assert.equal(readdirSync(t2.data).sort(), ['a', 'b']);
      assert.is(readFileSync(join(t2.data, 'a'), 'utf8'), 'moved a');
      assert.is(lstatSync(t2.data).mode & 0o777, 0o711);
      assert.equal(readdirSync(t2.vol), ['_data']);
      assert.is(await recoverCopyUp(t2.vol), false, 'twice is once');
      // the agent's start finishes what it finds, in every volume
      const t3 = tmp();
      try {
        mkdirSync(join(t3.vol, '.copyup'));
        const vols = new NodeVolumes(join(t3.dir, 'volumes'), () => []);
        await vols.sweep();
        assert.equal(readdirSync(t3.vol), []);
      } finally { t3.done(); }
    } finally { t2.done(); }
  } finally { s.done(); }
});

rt('copy-up attack - VOLUME paths through links and ".." out of the root read only the image; a file or the root is one line', async () => {
  const s = tmp();
  try {
    // the host's secret, where a link that escaped the root would lead
    const host = join(s.dir, 'host-secret');
    mkdirSync(host);
    writeFileSync(join(host, 'secret'), 'host only');
    mkdirSync(join(s.rootfs, 'etc'));
    writeFileSync(join(s.rootfs, 'etc', 'image-file'), 'image');
    const up = '../'.repeat(12);
    symlinkSync(`${up}${host.slice(1)}`, join(s.rootfs, 'rel'));  // ../../..../tmp/x/host-secret
    symlinkSync(host, join(s.rootfs, 'abs'));                        // /tmp/x/host-secret
    symlinkSync(`${up}etc`, join(s.rootfs, 'toetc'));                // climbs, stops at the root: the image's /etc
    for (const target of ['/rel', '/abs', `/..${host}`]) {
      const v = join(s.dir, 'volumes', `t${target.length}`);
      mkdirSync(v, { recursive: true });
      await copyUp(v, s.rootfs, target).catch(() => false);
      const got = existsSync(join(v, '_data')) ? readdirSync(join(v, '_data')) : [];
      assert.not.ok(got.includes('secret'), `${target}: the host's file was copied`);
    }
    const v = join(s.dir, 'volumes', 'etc');
    mkdirSync(v, { recursive: true });
    assert.is(await copyUp(v, s.rootfs, '/toetc'), true);
    assert.equal(readdirSync(join(v, '_data')), ['image-file'], 'the image\'s /etc, not the host\'s');
    assert.equal(readdirSync(host), ['secret'], 'nothing written on the host');
    // refused in one line: a file at the path, a link to the root, a loop
    writeFileSync(join(s.rootfs, 'file'), 'x');
    symlinkSync('/', join(s.rootfs, 'toroot'));
    symlinkSync('loop', join(s.rootfs, 'loop'));
    for (const [target, why] of [['/file', /volume \/file: the image has a file there, not a directory/], ['/toroot', /resolves to the image's root/], ['/loop/x', /more than 40 symbolic links/]] as const) {
      const w = join(s.dir, 'volumes', `r${target.slice(1)}`);
      mkdirSync(w, { recursive: true });
      let msg = '';
      try { await copyUp(w, s.rootfs, target); } catch (err) { msg = (err as Error).message; }
      assert.match(msg, why, target);
      assert.is(msg.split('\n').length, 1);
      assert.equal(readdirSync(w), ['_data'], `${target}: nothing staged left`);
    }
  } finally { s.done(); }
});

test('removal - rm -v and --rm take the container\'s anonymous volumes, never a named one nor one another container uses', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'swl-anon-'));
  try {
    const id = 'c'.repeat(64), other = 'd'.repeat(64);
    const anon = 'a'.repeat(64), shared = 'b'.repeat(64);
    const mounts: VolumeMount[] = [{ type: 'volume', source: anon, target: '/x', anonymous: true }, { type: 'volume', source: shared, target: '/y', anonymous: true }, { type: 'volume', source: 'named', target: '/z' }];
    const users: Record<string, string[]> = { [anon]: [id], [shared]: [id, other], named: [id] };
    const volumes = new NodeVolumes(join(dir, 'volumes'), (n) => [...(users[n] ?? [])]);
    for (const n of [anon, shared, 'named']) volumes.create(n);
    const removed: string[] = [];
    const ctx = { host: { remove: async (x: string) => { removed.push(x); } }, volumes, record: () => ({ spec: { mounts } }) } as unknown as actions.ActionContext;
    const kept = await actions.removal(ctx, id, 'requested', 'cause-1');
    assert.equal(kept.events.map((e) => e.type), ['ContainerRemoved'], 'a plain rm keeps every volume');
    assert.equal(volumes.list().sort(), [anon, shared, 'named'].sort());
    const o = await actions.removal(ctx, id, 'requested', 'cause-2', true);
    assert.equal(o.events.map((e) => [e.type, (e.data as { name?: string }).name]), [['VolumeRemoved', anon], ['ContainerRemoved', undefined]]);
    assert.equal(volumes.list().sort(), [shared, 'named'].sort());
    // --rm: the same without asking
    const id2 = 'e'.repeat(64), anon2 = 'f'.repeat(64);
    users[anon2] = [id2];
    volumes.create(anon2);
    const ctx2 = { ...ctx, record: () => ({ spec: { mounts: [{ type: 'volume', source: anon2, target: '/x', anonymous: true }, mounts[1], mounts[2]] } }) } as unknown as actions.ActionContext;
    const auto = await actions.removal(ctx2, id2, 'auto-remove on exit', 'cause-3');
    assert.equal(auto.events.map((e) => [e.type, (e.data as { name?: string }).name]), [['VolumeRemoved', anon2], ['ContainerRemoved', undefined]]);
    assert.equal(volumes.list().sort(), [shared, 'named'].sort());
    assert.equal(removed, [id, id, id2]);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
