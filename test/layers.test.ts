// The layer store against hostile tars, sparse files, concurrent users and a SIGKILL
// mid-unpack. Extraction restores owners, so run as root (the agent does).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync, lstatSync, readlinkSync, statSync, mkdirSync, createReadStream, truncateSync, openSync, writeSync, closeSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LayerStore, LayerError } from '../agent/storage/layers.js';
import { untar, UnsafeEntryError, TarFormatError } from '../agent/storage/untar.js';
import { decodeHeader, parsePax, paxSparse, parseSparse1Map, checkSparseMap, entryComponents } from '../agent/storage/tar-header.js';
import { tarball, header, pax, sha256, type TarEntry } from './helpers/tarball.js';
import { ROOT, sleep, until } from './helpers/cluster.js';

const t = suite('layers');
let dir: string;
const isRoot = process.getuid?.() === 0;

t.before(() => { dir = mkdtempSync(join(tmpdir(), 'swl-layers-')); });
t.after(() => { rmSync(dir, { recursive: true, force: true }); });

const fromBuf = (b: Buffer) => async () => Readable.from([b]);

/** Extracts into a fresh dir under `dir`, returning it and the error (if any). */
async function tryUntar(entries: TarEntry[] | Buffer): Promise<{ root: string; err?: Error; outside: string }> {
  const base = mkdtempSync(join(dir, 'x-'));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(root); mkdirSync(outside);
  const file = join(base, 'l.tar');
  writeFileSync(file, Buffer.isBuffer(entries) ? entries : tarball(entries));
  try { await untar(file, root); return { root, outside }; } catch (err) { return { root, outside, err: err as Error }; }
}

function refused(r: { err?: Error }, entry: string, why: RegExp): void {
  assert.ok(r.err, `expected entry ${entry} to be refused`);
  assert.instance(r.err, UnsafeEntryError, r.err!.message);
  assert.is((r.err as UnsafeEntryError).entry, entry);
  assert.match(r.err!.message, why);
  assert.not.match(r.err!.message, /\n/);
}

// ---- pure decoding, no root needed ----

t('tar-header - entry paths: ".." refused anywhere, leading "/" and "." mean the root', () => {
  assert.equal(entryComponents('./a/b'), ['a', 'b']);
  assert.equal(entryComponents('/etc/passwd'), ['etc', 'passwd']);
  assert.equal(entryComponents('./'), []);
  assert.type(entryComponents('../x'), 'string');
  assert.type(entryComponents('a/../../x'), 'string');
  assert.type(entryComponents('a/..'), 'string');
  assert.type(entryComponents('a\0b'), 'string');
  assert.type(entryComponents('x'.repeat(256)), 'string');
  assert.type(entryComponents('a/'.repeat(2100)), 'string');
});

t('tar-header - a header checksum mismatch and junk bytes are format errors', () => {
  assert.throws(() => decodeHeader(header({ name: 'a', badChecksum: true }), 0), (e: Error) => e instanceof TarFormatError && /checksum/.test(e.message));
  assert.throws(() => decodeHeader(Buffer.alloc(512, 0x41), 512), (e: Error) => e instanceof TarFormatError && /at byte 512/.test(e.message));
  const h = decodeHeader(header({ name: 'bin/sh', type: '2', linkname: '/bin/busybox', mode: 0o4755, uid: 7, gid: 8 }), 0);
  assert.equal([h.name, h.type, h.linkname, h.mode, h.uid, h.gid], ['bin/sh', '2', '/bin/busybox', 0o4755, 7, 8]);
});

t('tar-header - PAX records: lengths checked, order kept, sparse formats told apart', () => {
  assert.equal(parsePax(pax({ path: 'a/b', 'GNU.sparse.offset': '0' }), 0), [['path', 'a/b'], ['GNU.sparse.offset', '0']]);
  const fmt = (e: Error) => e instanceof TarFormatError;
  assert.throws(() => parsePax(Buffer.from('99 path=a\n'), 0), fmt);
  assert.throws(() => parsePax(Buffer.from('x path=a\n'), 0), fmt);
  assert.equal(paxSparse([['GNU.sparse.size', '100'], ['GNU.sparse.offset', '10'], ['GNU.sparse.numbytes', '5']], 0), { version: '0.0', realSize: 100, map: [{ offset: 10, size: 5 }] });
  assert.equal(paxSparse([['GNU.sparse.size', '100'], ['GNU.sparse.map', '10,5,50,2']], 0)!.map, [{ offset: 10, size: 5 }, { offset: 50, size: 2 }]);
  assert.equal(paxSparse([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 'f'], ['GNU.sparse.realsize', '9']], 0)!.version, '1.0');
  assert.throws(() => paxSparse([['GNU.sparse.major', '2'], ['GNU.sparse.realsize', '9']], 0), fmt);
  assert.equal(parseSparse1Map(Buffer.from('2\n0\n5\n10\n'), 0), undefined); // cut: wants more
  assert.equal(parseSparse1Map(Buffer.from('2\n0\n5\n10\n3\n'), 0), { map: [{ offset: 0, size: 5 }, { offset: 10, size: 3 }], bytes: 512 });
  assert.is(checkSparseMap([{ offset: 10, size: 5 }, { offset: 12, size: 1 }], 100, 6), 'sparse map is out of order or overlaps');
  assert.match(checkSparseMap([{ offset: 10, size: 5 }], 12, 5)!, /past the file's size/);
  assert.match(checkSparseMap([{ offset: 10, size: 5 }], 100, 7)!, /holds 5 bytes but the entry stores 7/);
});

// ---- hostile layers, extracted for real ----

t('untar - a ".." entry is refused and nothing lands outside', async () => {
  const r = await tryUntar([{ name: 'ok', body: 'x' }, { name: '../outside/evil', body: 'pwned' }]);
  refused(r, '../outside/evil', /"\.\." component/);
  assert.equal(readdirSync(r.outside), []);
});

t('untar - an absolute path lands inside the root, never on the host', async () => {
  const name = join(dir, 'host-abs-marker');
  const r = await tryUntar([{ name, body: 'in root' }]);
  assert.is(r.err, undefined);
  assert.not.ok(existsSync(name));
  assert.is(readFileSync(join(r.root, name), 'utf8'), 'in root');
});

t('untar - symlink-then-file is refused: no write through the layer\'s own link', async () => {
  const base = mkdtempSync(join(dir, 'target-'));
  const r = await tryUntar([{ name: 'evil', type: '2', linkname: base }, { name: 'evil/pwned', body: 'x' }]);
  refused(r, 'evil/pwned', /goes through the symlink "evil"/);
  assert.equal(readdirSync(base), []);
  // a relative link up and out, then a directory under it
  const r2 = await tryUntar([{ name: 'up', type: '2', linkname: '../outside' }, { name: 'up/d/', type: '5' }]);
  refused(r2, 'up/d/', /goes through the symlink "up"/);
  assert.equal(readdirSync(r2.outside), []);
  // a later file or directory of the same name replaces the link, never writes through it
  const victim = join(base, 'victim');
  writeFileSync(victim, 'host data');
  const r3 = await tryUntar([{ name: 'f', type: '2', linkname: victim }, { name: 'f', body: 'layer data' }, { name: 'g', type: '2', linkname: base }, { name: 'g/', type: '5' }]);
  assert.is(r3.err, undefined, r3.err?.message);
  assert.is(readFileSync(victim, 'utf8'), 'host data');
  assert.is(readFileSync(join(r3.root, 'f'), 'utf8'), 'layer data');
  assert.ok(lstatSync(join(r3.root, 'g')).isDirectory());
  assert.equal(readdirSync(base), ['victim']);

  // a directory's mode is applied at the end: not through a link that replaced it meanwhile
  const inner = join(base, 'b');
  mkdirSync(inner, { mode: 0o755 });
  const r4 = await tryUntar([{ name: 'a/', type: '5' }, { name: 'a/b/', type: '5', mode: 0o700, mtime: 1000 }, { name: 'a', type: '2', linkname: base }]);
  assert.is(r4.err, undefined, r4.err?.message);
  assert.is(statSync(inner).mode & 0o7777, 0o755);
  assert.is.not(statSync(inner).mtimeMs, 1000 * 1000);
});

t('untar - hard links out of the root or through a symlink are refused', async () => {
  const a = await tryUntar([{ name: 'h', type: '1', linkname: '../outside/x' }]);
  refused(a, 'h', /hard link target "\.\.\/outside\/x".*"\.\." component/);
  const b = await tryUntar([{ name: 'etc', type: '2', linkname: '/etc' }, { name: 'h', type: '1', linkname: 'etc/passwd' }]);
  refused(b, 'h', /goes through the symlink "etc"/);
  assert.not.ok(existsSync(join(b.root, 'h')));
  const c = await tryUntar([{ name: 'h', type: '1', linkname: '/etc/hostname' }]);
  refused(c, 'h', /not in the layer/);
  const d = await tryUntar([{ name: 'd/', type: '5' }, { name: 'h', type: '1', linkname: 'd' }]);
  refused(d, 'h', /is a directory/);
});

t('untar - device nodes and FIFOs are refused with the reason', async () => {
  refused(await tryUntar([{ name: 'dev/mem', type: '3', devmajor: 1, devminor: 1 }]), 'dev/mem', /character device 1:1 refused.*\/dev is made by the runtime/);
  refused(await tryUntar([{ name: 'dev/loop0', type: '4', devmajor: 7, devminor: 0 }]), 'dev/loop0', /block device 7:0 refused/);
  refused(await tryUntar([{ name: 'p', type: '6' }]), 'p', /FIFO refused/);
  refused(await tryUntar([{ name: 'odd', type: 'Z' }]), 'odd', /entry type "Z" is not supported/);
});

t('untar - oversized headers, truncation and junk are format errors', async () => {
  const big = await tryUntar([{ name: 'PaxHeader', type: 'x', body: Buffer.alloc(2 << 20, 0x41) }, { name: 'f', body: 'x' }]);
  assert.instance(big.err, TarFormatError); assert.match(big.err!.message, /PAX header of 2097152 bytes/);
  const long = await tryUntar([{ name: '././@LongLink', type: 'L', body: 'a'.repeat(5000) }, { name: 'f', body: 'x' }]);
  assert.instance(long.err, TarFormatError); assert.match(long.err!.message, /GNU long name of 5000 bytes/);
  const lie = await tryUntar(tarball([{ name: 'f', body: 'x', size: 1 << 30 }], { end: false }));
  assert.instance(lie.err, TarFormatError); assert.match(lie.err!.message, /archive ends inside entry "f"/);
  const junk = await tryUntar(Buffer.from('not a tar at all, just junk'.repeat(40)));
  assert.instance(junk.err, TarFormatError);
  const paxPath = await tryUntar([{ name: 'PaxHeader', type: 'x', body: pax({ path: '../../escape' }) }, { name: 'innocent', body: 'x' }]);
  refused(paxPath, '../../escape', /"\.\." component/);
});

t('untar - mutated headers of a real rootfs tar (checksums fixed up) give only typed errors', async () => {
  const tarFile = join(dir, 'bb.tar');
  const b = spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [tarFile], { encoding: 'utf8' });
  assert.is(b.status, 0, b.stderr);
  const good = readFileSync(tarFile);
  const headers: number[] = [];
  for (let p = 0; p + 512 <= good.length && good[p] !== 0;) {
    headers.push(p);
    p += 512 + Math.ceil((parseInt(good.toString('latin1', p + 124, p + 135), 8) || 0) / 512) * 512;
  }
  const fixSum = (buf: Buffer, h: number) => {
    buf.fill(0x20, h + 148, h + 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += buf[h + i];
    buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, h + 148, 8, 'latin1');
  };
  const picks = [0, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x53, 0x4c, 0x78, 0xff];
  const seen = { ok: 0, format: 0, unsafe: 0 };
  for (let i = 0; i < 30; i++) {
    const bad = Buffer.from(good);
    for (let k = 0; k < 3; k++) {
      const h = headers[Math.floor(Math.random() * headers.length)];
      let o: number;
      do o = Math.floor(Math.random() * 512); while (o >= 148 && o < 156);
      bad[h + o] = Math.random() < 0.7 ? picks[Math.floor(Math.random() * picks.length)] : Math.floor(Math.random() * 256);
      fixSum(bad, h);
    }
    const r = await tryUntar(bad);
    if (!r.err) seen.ok++;
    else if (r.err instanceof TarFormatError) seen.format++;
    else if (r.err instanceof UnsafeEntryError) seen.unsafe++;
    else assert.unreachable(`untyped error: ${r.err.stack}`);
    assert.equal(readdirSync(r.outside), []);
    rmSync(join(r.root, '..'), { recursive: true, force: true });
  }
  assert.is(seen.ok + seen.format + seen.unsafe, 30);
});

// ---- what a layer keeps ----

t('untar - modes with setuid, owners, symlinks (absolute too), hard links and times are kept', async () => {
  const r = await tryUntar([
    { name: './', type: '5', mode: 0o755, mtime: 1500000000 },
    { name: 'bin/', type: '5', mode: 0o751, mtime: 1500000001 },
    { name: 'bin/su', body: 'suid', mode: 0o4755, uid: 1234, gid: 5678, mtime: 1600000000 },
    { name: 'bin/sh', type: '2', linkname: '/bin/busybox', mtime: 1600000001 },
    { name: 'bin/rel', type: '2', linkname: '../etc/x' },
    { name: 'bin/su2', type: '1', linkname: 'bin/su' },
    { name: 'tmp/', type: '5', mode: 0o1777 },
    { name: 'deep/er/file', body: 'implicit parents' },
  ]);
  assert.is(r.err, undefined, r.err?.message);
  const su = statSync(join(r.root, 'bin/su'));
  assert.is(su.mode & 0o7777, 0o4755);
  if (isRoot) assert.equal([su.uid, su.gid], [1234, 5678]);
  else console.log('  (not root: owners not checked)');
  assert.is(su.mtimeMs, 1600000000 * 1000);
  assert.is(readlinkSync(join(r.root, 'bin/sh')), '/bin/busybox');
  assert.is(lstatSync(join(r.root, 'bin/sh')).mtimeMs, 1600000001 * 1000);
  assert.is(readlinkSync(join(r.root, 'bin/rel')), '../etc/x');
  assert.is(statSync(join(r.root, 'bin/su2')).ino, su.ino);
  assert.is(statSync(join(r.root, 'bin')).mode & 0o7777, 0o751);
  assert.is(statSync(join(r.root, 'bin')).mtimeMs, 1500000001 * 1000);
  assert.is(statSync(r.root).mtimeMs, 1500000000 * 1000);
  assert.is(statSync(join(r.root, 'tmp')).mode & 0o7777, 0o1777);
  assert.is(readFileSync(join(r.root, 'deep/er/file'), 'utf8'), 'implicit parents');
});

t('untar - a later file or symlink replaces whatever an earlier entry made there, never writing through it', async () => {
  const base = mkdtempSync(join(dir, 'replaced-'));
  const victim = join(base, 'victim');
  writeFileSync(victim, 'host data');
  const r = await tryUntar([
    { name: 'ff', body: 'first' }, { name: 'ff', body: 'second', mode: 0o640, mtime: 1600000002 },
    { name: 'df/', type: '5' }, { name: 'df/child', body: 'gone with its dir' }, { name: 'df', body: 'file over dir' },
    { name: 'sf', type: '2', linkname: victim }, { name: 'sf', body: 'file over link' },
    { name: 'dangling', type: '2', linkname: join(base, 'created-through-link') }, { name: 'dangling', body: 'file over dangling link' },
    { name: 'fs', body: 'replaced by a link' }, { name: 'fs', type: '2', linkname: 'ff', mtime: 1600000003 },
    { name: 'ss', type: '2', linkname: victim }, { name: 'ss', type: '2', linkname: 'ff' },
    { name: 'ds/', type: '5' }, { name: 'ds', type: '2', linkname: 'ff' },
  ]);
  assert.is(r.err, undefined, r.err?.message);
  assert.is(readFileSync(join(r.root, 'ff'), 'utf8'), 'second');
  assert.is(statSync(join(r.root, 'ff')).mode & 0o7777, 0o640);
  assert.is(statSync(join(r.root, 'ff')).mtimeMs, 1600000002 * 1000);
  assert.is(readFileSync(join(r.root, 'df'), 'utf8'), 'file over dir');
  assert.is(readFileSync(join(r.root, 'sf'), 'utf8'), 'file over link');
  assert.ok(lstatSync(join(r.root, 'dangling')).isFile());
  for (const l of ['fs', 'ss', 'ds']) assert.is(readlinkSync(join(r.root, l)), 'ff', l);
  assert.is(lstatSync(join(r.root, 'fs')).mtimeMs, 1600000003 * 1000);
  assert.is(readFileSync(victim, 'utf8'), 'host data');
  assert.equal(readdirSync(base), ['victim']);
});

t('untar - an owner beyond 32 bits is refused, not cut down to another id (2**32 would be root)', async () => {
  if (!isRoot) { console.log('  (not root: owners are not restored, nothing to refuse)'); return; }
  for (const [k, v] of [['uid', 2 ** 32], ['gid', 2 ** 32 + 1000]] as const) {
    const r = await tryUntar([{ name: 'PaxHeader', type: 'x', body: pax({ [k]: String(v) }) }, { name: 'f', body: 'x' }]);
    refused(r, 'f', /owner .* out of range/);
    assert.not.ok(existsSync(join(r.root, 'f')));
  }
});

t('untar - an archive on another filesystem (tmpfs) than the layer is copied through memory, same bytes', async () => {
  const shm = mkdtempSync('/dev/shm/swl-layers-');
  try {
    const body = Buffer.alloc(3 << 20);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32LE(i, i);
    const file = join(shm, 'l.tar');
    writeFileSync(file, tarball([{ name: 'big', body, mode: 0o751, mtime: 1600000004 }, { name: 'small', body: 'x' }]));
    const out = mkdtempSync(join(dir, 'xfs-'));
    const st = await untar(file, out);
    assert.is(st.bytes, body.length + 1);
    assert.ok(readFileSync(join(out, 'big')).equals(body));
    assert.is(statSync(join(out, 'big')).mode & 0o7777, 0o751);
    assert.is(statSync(join(out, 'big')).mtimeMs, 1600000004 * 1000);
    assert.is(readFileSync(join(out, 'small'), 'utf8'), 'x');
  } finally { rmSync(shm, { recursive: true, force: true }); }
});

t('untar - a busybox rootfs extracts as GNU tar extracts it', async () => {
  const tarFile = join(dir, 'bb.tar');
  const mine = mkdtempSync(join(dir, 'mine-')), gnu = mkdtempSync(join(dir, 'gnu-'));
  const st = await untar(tarFile, mine);
  assert.ok(st.entries > 100);
  assert.is(spawnSync('tar', ['-xpf', tarFile, '-C', gnu, '--numeric-owner']).status, 0);
  const list = (d: string) => spawnSync('find', ['.', '-printf', '%p %m %U %G %s %T@ %y %l\n'], { cwd: d, encoding: 'utf8' }).stdout.split('\n').sort();
  assert.equal(list(mine), list(gnu));
});

t('untar - GNU sparse files (old GNU, PAX 0.0, 0.1, 1.0) keep content, size and holes', async () => {
  const src = mkdtempSync(join(dir, 'sparse-src-'));
  const f = join(src, 'sparse');
  // 30 islands: more than the 4 map slots of an old GNU header, so extension blocks are used
  const fd = openSync(f, 'w');
  for (let i = 0; i < 30; i++) writeSync(fd, Buffer.from(`island ${i} `.repeat(50)), 0, undefined, i * 256 * 1024 + 4096);
  closeSync(fd);
  truncateSync(f, 31 * 256 * 1024);
  writeFileSync(join(src, 'holeend'), 'x');
  truncateSync(join(src, 'holeend'), 3 << 20);
  const want = readFileSync(f);
  for (const fmt of [['--format=gnu'], ['--format=posix', '--sparse-version=0.0'], ['--format=posix', '--sparse-version=0.1'], ['--format=posix', '--sparse-version=1.0']]) {
    const file = join(dir, `sparse${fmt.join('')}.tar`);
    const c = spawnSync('tar', ['--sparse', ...fmt, '-C', src, '-cf', file, 'sparse', 'holeend'], { encoding: 'utf8' });
    assert.is(c.status, 0, c.stderr);
    assert.ok(statSync(file).size < want.length / 4, `${fmt}: GNU tar stored it sparse`);
    const out = mkdtempSync(join(dir, 'sparse-out-'));
    await untar(file, out);
    assert.equal(readdirSync(out).sort(), ['holeend', 'sparse'], `${fmt}: the entry is there under its own name`);
    const got = readFileSync(join(out, 'sparse'));
    assert.is(got.length, want.length, `${fmt}: size`);
    assert.ok(got.equals(want), `${fmt}: content`);
    assert.ok(statSync(join(out, 'sparse')).blocks * 512 < want.length / 4, `${fmt}: holes kept`);
    assert.is(statSync(join(out, 'holeend')).size, 3 << 20, `${fmt}: a trailing hole keeps the size`);
  }
});

// ---- the store: refusal leaves nothing, digests, single flight, crash ----

t('store - a hostile layer is a one-line LayerError and leaves nothing in the store', async () => {
  const root = mkdtempSync(join(dir, 'store-'));
  const s = new LayerStore(root);
  const bad = tarball([{ name: 'a', body: 'x'.repeat(100000) }, { name: 'dev/kmsg', type: '3', devmajor: 1, devminor: 11 }]);
  const digest = sha256(bad);
  const err = await s.ensure(digest, fromBuf(bad)).then(() => undefined, (e: Error) => e);
  assert.instance(err, LayerError);
  assert.match(err!.message, new RegExp(`^layer ${digest} refused: entry "dev/kmsg": character device 1:11 refused`));
  assert.not.match(err!.message, /\n/);
  assert.equal(readdirSync(root), []);
  assert.not.ok(s.has(digest));
});

t('store - bytes that do not hash to the digest are refused before unpacking', async () => {
  const root = mkdtempSync(join(dir, 'store-'));
  const s = new LayerStore(root);
  const good = tarball([{ name: 'f', body: 'x' }]);
  const other = `sha256:${'0'.repeat(64)}`;
  const err = await s.ensure(other, fromBuf(good)).then(() => undefined, (e: Error) => e);
  assert.instance(err, LayerError);
  assert.match(err!.message, /arrived with digest sha256:[0-9a-f]{64}: refused/);
  assert.equal(readdirSync(root), []);
  const bad = await s.ensure('sha256:nothex', fromBuf(good)).then(() => undefined, (e: Error) => e);
  assert.match(bad!.message, /invalid digest/);
});

t('store - ten concurrent ensure() of one fresh layer unpack it once', async () => {
  const root = mkdtempSync(join(dir, 'store-'));
  const s = new LayerStore(root);
  const tarFile = join(dir, 'bb.tar');
  const digest = sha256(readFileSync(tarFile));
  let fetches = 0;
  const source = async () => { fetches++; await sleep(20); return createReadStream(tarFile); };
  const paths = await Promise.all(Array.from({ length: 10 }, () => s.ensure(digest, source)));
  assert.is(fetches, 1);
  assert.equal(new Set(paths), new Set([s.path(digest)]));
  assert.ok(existsSync(join(s.path(digest), 'bin/busybox')));
  assert.equal(readdirSync(root), [digest.slice(7)]);
  // present now: no fetch at all
  await s.ensure(digest, source);
  assert.is(fetches, 1);
  // a failed unpack is shared too, and the next call tries again
  const bad = tarball([{ name: '../x', body: 'x' }]);
  let badFetches = 0;
  const errs = await Promise.all(Array.from({ length: 5 }, () => s.ensure(sha256(bad), async () => { badFetches++; return Readable.from([bad]); }).catch((e: Error) => e)));
  assert.is(badFetches, 1);
  assert.ok(errs.every((e) => e instanceof LayerError));
  await s.ensure(sha256(bad), async () => { badFetches++; return Readable.from([bad]); }).catch(() => undefined);
  assert.is(badFetches, 2);
});

t('store - SIGKILL mid-unpack leaves only a temp dir; the next start removes it and unpacks', async () => {
  const root = mkdtempSync(join(dir, 'store-'));
  // a layer big enough to catch in the middle: 3000 files
  const entries: TarEntry[] = [];
  for (let i = 0; i < 3000; i++) entries.push({ name: `d${i % 30}/f${i}`, body: Buffer.alloc(2048, i % 251) });
  const big = tarball(entries);
  const tarFile = join(dir, 'big.tar');
  writeFileSync(tarFile, big);
  const digest = sha256(big);
  const mod = join(ROOT, 'dist/agent/storage/layers.js');
  const child = spawn(process.execPath, ['--input-type=module', '-e',
    `import { LayerStore } from ${JSON.stringify(mod)}; import { createReadStream } from 'node:fs';
     await new LayerStore(${JSON.stringify(root)}).ensure(${JSON.stringify(digest)}, async () => createReadStream(${JSON.stringify(tarFile)}));
     console.log('finished');`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  try {
    // wait until the unpack has written part of the tree, then kill as a crash would
    const tmp = await until(() => {
      const t = readdirSync(root).find((n) => n.startsWith('.tmp-'));
      const rootfs = t && join(root, t, 'rootfs');
      return rootfs && existsSync(rootfs) && readdirSync(rootfs).length >= 3 ? t : undefined;
    }, 20000, 'the unpack to be under way');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.not.match(out, /finished/, 'killed before it finished');
    assert.equal(readdirSync(root), [tmp], 'only the temp dir is left, no layer that looks whole');
    const s = new LayerStore(root);
    assert.equal(readdirSync(root), [], 'the next start removed the temp dir');
    const p = await s.ensure(digest, async () => createReadStream(tarFile));
    assert.is(readFileSync(join(p, 'd7/f2977')).length, 2048);
    assert.equal(readdirSync(root), [digest.slice(7)]);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

t('store - the temp dir of a live unpacker is left alone', async () => {
  const root = mkdtempSync(join(dir, 'store-'));
  const live = join(root, `.tmp-${'a'.repeat(12)}-1-abcdef`);   // pid 1 is always alive
  const dead = join(root, `${'b'.repeat(64)}.tmp-999999999-1700000000000`); // the old naming
  mkdirSync(live); mkdirSync(dead);
  new LayerStore(root);
  assert.ok(existsSync(live));
  assert.not.ok(existsSync(dead));
});

t.run();
