// Layered images on overlayfs: the layer format's whiteouts and opaque dirs become
// overlay's, xattrs (file capabilities too) are kept, a 4-layer stack gives docker's view,
// a stack deeper than one mount(2) option page still mounts, and a layer in use is never
// removed. Needs root (mknod, trusted.* xattrs, mounts).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync, lstatSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { untar, UnsafeEntryError } from '../agent/storage/untar.js';
import { whiteoutOf, xattrPolicy } from '../agent/storage/tar-header.js';
import { OverlaySnapshotter, mountPlan, overlayMount, MOUNT_DATA_MAX } from '../agent/storage/snapshotter.js';
import { mountAll, unmount, isMounted } from '../agent/storage/mounts.js';
import { readMounts } from '../agent/mountinfo.js';
import { rootfsStorage, lowerOrder } from '../agent/storage/rootfs.js';
import { LayerError } from '../agent/storage/layers.js';
import { lgetxattr } from '../native/libc.js';
import { tarball, pax, sha256, type TarEntry } from './helpers/tarball.js';
import type { NodeLayout } from '../agent/layout.js';

const t = suite('layers-overlay');
let dir: string;
const mounted: string[] = [];

t.before(() => { dir = mkdtempSync(join(tmpdir(), 'swl-ovl-')); });
t.after(() => {
  for (const m of mounted.reverse()) if (isMounted(m)) unmount(m);
  rmSync(dir, { recursive: true, force: true });
});

async function extract(entries: TarEntry[]): Promise<{ root: string; err?: Error }> {
  const base = mkdtempSync(join(dir, 'x-'));
  const root = join(base, 'root');
  mkdirSync(root);
  writeFileSync(join(base, 'l.tar'), tarball(entries));
  try { await untar(join(base, 'l.tar'), root); return { root }; } catch (err) { return { root, err: err as Error }; }
}

const isWhiteout = (p: string) => { const st = lstatSync(p); return st.isCharacterDevice() && st.rdev === 0; };

t('pure - whiteout names, xattr policy, lower order, mount plan', () => {
  assert.equal(whiteoutOf('a'), { kind: 'plain' });
  assert.equal(whiteoutOf('.wh.a'), { kind: 'whiteout', name: 'a' });
  assert.equal(whiteoutOf('.wh..wh..opq'), { kind: 'opaque' });
  assert.equal(whiteoutOf('.wh..wh.plnk'), { kind: 'meta' });
  assert.type(whiteoutOf('.wh..'), 'string');
  assert.type(whiteoutOf('.wh.'), 'string');
  assert.is(xattrPolicy('user.a'), 'keep');
  assert.is(xattrPolicy('security.capability'), 'keep');
  assert.is(xattrPolicy('security.selinux'), 'drop');
  assert.match(xattrPolicy('trusted.overlay.redirect'), /refused.*trusted/);
  assert.equal(lowerOrder(['a', 'b', 'a', 'c']), ['c', 'a', 'b']);
  const short = overlayMount(['/l/1', '/l/2'], '/u', '/w');
  assert.equal(mountPlan(short), { kind: 'mount', data: 'lowerdir=/l/1:/l/2,upperdir=/u,workdir=/w' });
  const many = Array.from({ length: 100 }, (_, i) => `/var/lib/swarmlite/nodes/n/layers/${String(i).padStart(64, '0')}`);
  const plan = mountPlan(overlayMount(many, '/u', '/w'));
  assert.is(plan.kind, 'fsconfig');
  if (plan.kind === 'fsconfig') {
    assert.is(plan.options.filter(([k]) => k === 'lowerdir+').length, 100);
    assert.equal(plan.options[0], ['lowerdir+', many[0]]);
    assert.equal(plan.options.slice(-2), [['upperdir', '/u'], ['workdir', '/w']]);
  }
  assert.throws(() => overlayMount(['/a,b'], '/u', '/w'), /cannot carry/);
  assert.throws(() => overlayMount([], '/u', '/w'), /at least one/);
  // a writable layer that dies with its container: overlay's "volatile", a flag (no value) to fsconfig
  assert.equal(mountPlan(overlayMount(['/l/1'], '/u', '/w', true)), { kind: 'mount', data: 'lowerdir=/l/1,upperdir=/u,workdir=/w,volatile' });
  const deepVolatile = mountPlan(overlayMount(many, '/u', '/w', true));
  assert.is(deepVolatile.kind, 'fsconfig');
  if (deepVolatile.kind === 'fsconfig') assert.equal(deepVolatile.options.slice(-3), [['upperdir', '/u'], ['workdir', '/w'], ['volatile', null]]);
});

t('untar - .wh.NAME becomes a 0/0 char device, .wh..wh..opq the opaque xattr, aufs metadata is skipped', async () => {
  const r = await extract([
    { name: 'etc/', type: '5' },
    { name: 'etc/.wh.motd', body: '' },
    { name: '.wh.tmp', body: '' },
    { name: 'usr/share/.wh..wh..opq', body: '' },
    { name: 'usr/share/kept', body: 'mine' },
    { name: '.wh..wh.plnk/', type: '5' },
    { name: 'gone2', type: '3', devmajor: 0, devminor: 0 },
  ]);
  assert.is(r.err, undefined, r.err?.message);
  assert.ok(isWhiteout(join(r.root, 'etc/motd')));
  assert.ok(isWhiteout(join(r.root, 'tmp')));
  assert.ok(isWhiteout(join(r.root, 'gone2')));
  assert.not.ok(existsSync(join(r.root, 'etc/.wh.motd')));
  assert.equal(lgetxattr(join(r.root, 'usr/share'), 'trusted.overlay.opaque'), Buffer.from('y'));
  assert.is(readFileSync(join(r.root, 'usr/share/kept'), 'utf8'), 'mine');
  assert.not.ok(existsSync(join(r.root, '.wh..wh.plnk')));
});

t('untar - xattrs kept (user.*, file capabilities after chown), trusted.* and bad whiteouts refused', async () => {
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_bind_service, VFS_CAP v2
  const r = await extract([
    { name: 'PaxHeaders/ping', type: 'x', body: pax({ 'SCHILY.xattr.user.note': 'hello', 'SCHILY.xattr.security.capability': cap.toString('latin1'), 'SCHILY.xattr.security.selinux': 'x_t' }) },
    { name: 'ping', body: 'elf', mode: 0o4755, uid: 1000, gid: 1000 },
    { name: 'PaxHeaders/d', type: 'x', body: pax({ 'SCHILY.xattr.user.dir': 'yes' }) },
    { name: 'd/', type: '5' },
  ]);
  assert.is(r.err, undefined, r.err?.message);
  assert.equal(lgetxattr(join(r.root, 'ping'), 'user.note'), Buffer.from('hello'));
  assert.equal(lgetxattr(join(r.root, 'ping'), 'security.capability'), cap);
  assert.is(lgetxattr(join(r.root, 'ping'), 'security.selinux'), null);
  assert.is(lstatSync(join(r.root, 'ping')).mode & 0o7777, 0o4755);
  assert.is(lstatSync(join(r.root, 'ping')).uid, 1000);
  assert.equal(lgetxattr(join(r.root, 'd'), 'user.dir'), Buffer.from('yes'));

  const forged = await extract([
    { name: 'PaxHeaders/x', type: 'x', body: pax({ 'SCHILY.xattr.trusted.overlay.redirect': '/etc' }) },
    { name: 'x/', type: '5' },
  ]);
  assert.instance(forged.err, UnsafeEntryError);
  assert.match(forged.err!.message, /^entry "x\/": xattr trusted\.overlay\.redirect refused/);
  const dots = await extract([{ name: 'a/.wh..', body: '' }]);
  assert.instance(dots.err, UnsafeEntryError);
  const through = await extract([{ name: 'l', type: '2', linkname: '/etc' }, { name: 'l/.wh.passwd', body: '' }]);
  assert.instance(through.err, UnsafeEntryError);
  assert.match(through.err!.message, /goes through the symlink "l"/);
  const opqThrough = await extract([{ name: 'l', type: '2', linkname: '/etc' }, { name: 'l/.wh..wh..opq', body: '' }]);
  assert.instance(opqThrough.err, UnsafeEntryError);
  assert.is(lgetxattr('/etc', 'trusted.overlay.opaque'), null);
  const dev = await extract([{ name: 'null', type: '3', devmajor: 1, devminor: 3 }]);
  assert.match(dev.err!.message, /character device 1:3 refused/);
});

/** A 4-layer image through the agent's storage: replace, delete (whiteout), hide (opaque). */
t('overlay - four layers give docker\'s view, and a layer in use is not removed', async () => {
  const layers: Buffer[] = [
    tarball([{ name: 'etc/', type: '5' }, { name: 'etc/a', body: 'a1' }, { name: 'etc/b', body: 'b1' }, { name: 'opt/', type: '5' }, { name: 'opt/x', body: 'x1' }, { name: 'opt/y', body: 'y1' }, { name: 'keep', body: 'k1' }]),
    tarball([{ name: 'etc/a', body: 'a2' }, { name: 'etc/.wh.b', body: '' }, { name: 'new', body: 'n2' }]),
    tarball([{ name: 'opt/', type: '5' }, { name: 'opt/.wh..wh..opq', body: '' }, { name: 'opt/z', body: 'z3' }]),
    tarball([{ name: '.wh.new', body: '' }, { name: 'etc/b', body: 'b4' }]),
  ];
  const blobs = new Map(layers.map((b) => [sha256(b), b]));
  const root = mkdtempSync(join(dir, 'node-'));
  const layout = { layers: join(root, 'layers'), snapshots: join(root, 'snapshots') } as NodeLayout;
  let fetches = 0;
  const storage = rootfsStorage(layout, async (d) => { fetches++; return Readable.from([blobs.get(d)!]); });
  const digests = layers.map(sha256);
  const lowers = await storage.ensureImage(digests[3], digests);
  assert.is(lowers.length, 4);
  assert.is(lowers[0], storage.layers.path(digests[3]), 'topmost first');
  const target = join(root, 'rootfs');
  mkdirSync(target);
  await storage.mount('c1', lowers, target);
  mounted.push(target);
  try {
    assert.is(readFileSync(join(target, 'etc/a'), 'utf8'), 'a2', 'replaced by layer 2');
    assert.is(readFileSync(join(target, 'etc/b'), 'utf8'), 'b4', 'deleted in 2, back in 4');
    assert.equal(readdirSync(join(target, 'opt')), ['z'], 'opaque in 3 hides x and y');
    assert.not.ok(existsSync(join(target, 'new')), 'whiteout in 4');
    assert.is(readFileSync(join(target, 'keep'), 'utf8'), 'k1');
    // a second image sharing the bottom layer reuses its directory
    const shared = await storage.ensureImage(digests[0], [digests[0]]);
    assert.equal(shared, [lowers[3]]);
    assert.is(fetches, 4, 'each layer fetched once');
    const err = (() => { try { storage.removeLayer(digests[1]); return undefined; } catch (e) { return e as Error; } })();
    assert.instance(err, LayerError);
    assert.match(err!.message, /in use by a container/);
    assert.ok(storage.layers.has(digests[1]));
  } finally {
    await storage.release('c1', target);
  }
  assert.not.ok(isMounted(target));
  storage.removeLayer(digests[1]);
  assert.not.ok(storage.layers.has(digests[1]));
});

t('overlay - a stack deeper than one mount(2) option page mounts through fsconfig lowerdir+', async () => {
  const snaps = new OverlaySnapshotter(join(dir, 'deep-snaps'));
  const base = join(dir, 'deep-layers-with-a-long-name-so-that-the-paths-are-like-a-real-state-dir');
  const lowers: string[] = [];
  for (let i = 0; i < 120; i++) {
    const l = join(base, sha256(Buffer.from(String(i))).slice(7));
    mkdirSync(l, { recursive: true });
    writeFileSync(join(l, `f${i}`), String(i));
    if (i === 0) writeFileSync(join(l, 'shadowed'), 'bottom');
    if (i === 119) writeFileSync(join(l, 'shadowed'), 'top');
    lowers.unshift(l); // topmost first
  }
  const specs = snaps.prepareSync('deep', lowers);
  assert.ok(specs[0].options.join(',').length > MOUNT_DATA_MAX, `options are ${specs[0].options.join(',').length} bytes`);
  const target = join(dir, 'deep-root');
  mkdirSync(target);
  mountAll(specs, target);
  mounted.push(target);
  try {
    assert.is(readdirSync(target).length, 121);
    assert.is(readFileSync(join(target, 'f0'), 'utf8'), '0');
    assert.is(readFileSync(join(target, 'f119'), 'utf8'), '119');
    assert.is(readFileSync(join(target, 'shadowed'), 'utf8'), 'top');
    writeFileSync(join(target, 'written'), 'w');
    assert.is(readFileSync(join(snaps.dir('deep'), 'upper/written'), 'utf8'), 'w');
  } finally {
    unmount(target);
  }
});

t('overlay - a volatile writable layer (run --rm) mounts with "volatile", through mount(2) and through fsconfig; a plain one without', async () => {
  const snaps = new OverlaySnapshotter(join(dir, 'vol-snaps'));
  const base = join(dir, 'vol-layers-with-a-long-name-so-that-the-paths-are-like-a-real-state-dir');
  const lowers: string[] = [];
  for (let i = 0; i < 120; i++) {
    const l = join(base, sha256(Buffer.from(`v${i}`)).slice(7));
    mkdirSync(l, { recursive: true });
    writeFileSync(join(l, `f${i}`), String(i));
    lowers.unshift(l);
  }
  const superOf = (target: string) => readMounts().find((m) => m.mountPoint === target)?.superOptions ?? [];
  for (const [key, stack, volatile] of [['v-short', lowers.slice(0, 2), true], ['v-deep', lowers, true], ['plain', lowers.slice(0, 2), false]] as const) {
    const specs = await snaps.prepare(key, [...stack], { volatile });
    assert.is(specs[0].options.join(',').length > MOUNT_DATA_MAX, stack.length > 2, key);
    const target = join(dir, `${key}-root`);
    mkdirSync(target);
    mountAll(specs, target);
    mounted.push(target);
    try {
      // shown as "volatile", or "fsync=volatile" by kernels with overlay's fsync= option (6.13+)
      assert.is(superOf(target).some((o) => o === 'volatile' || o === 'fsync=volatile'), volatile, `${key}: super options ${superOf(target).join(',')}`);
      writeFileSync(join(target, 'written'), key);
      assert.is(readFileSync(join(snaps.dir(key), 'upper/written'), 'utf8'), key);
      assert.is(readFileSync(join(target, 'f119'), 'utf8'), '119');
    } finally {
      unmount(target);
    }
    // what the removal does after the unmount: nothing of it is left
    await snaps.remove(key);
    assert.not.ok(existsSync(snaps.dir(key)), `${key}: its dir is left`);
  }
});

t.run();
