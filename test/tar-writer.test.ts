// The tar writer of export and commit: headers GNU tar and our own reader accept (long and
// non-ASCII names through PAX, symlinks kept as links, hard links, fifos), a file read for
// exactly the size its header says, and (root) a writable layer's overlay whiteouts and
// opaque dirs written as OCI whiteout files that untar turns back into the same overlay.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createWriteStream, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { encodeHeader, packDir } from '../agent/storage/tar-writer.js';
import { decodeHeader } from '../agent/storage/tar-header.js';
import { untar } from '../agent/storage/untar.js';
import { lgetxattr, lsetxattr } from '../native/libc.js';

const t = suite('tar-writer');
const dirs: string[] = [];
const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'swl-tarw-')); dirs.push(d); return d; };
t.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

async function pack(root: string, layer?: { opaque(p: string): boolean }): Promise<{ file: string; digest: string; size: number }> {
  const file = join(tmp(), 'out.tar');
  const out = createWriteStream(file);
  const r = await packDir(root, out, layer ? { layer } : {});
  out.end();
  await finished(out);
  return { file, ...r };
}

t('encodeHeader - ustar fields round-trip through the reader; a long or non-ASCII name goes through PAX', () => {
  const h = decodeHeader(encodeHeader({ name: 'etc/passwd', mode: 0o100644, uid: 0, gid: 42, size: 1234, mtime: 1700000000, type: '0' }), 0);
  assert.is(h.name, 'etc/passwd');
  assert.is(h.mode & 0o7777, 0o644);
  assert.is(h.gid, 42);
  assert.is(h.size, 1234);
  const long = `${'d/'.repeat(80)}f-é`;
  const b = encodeHeader({ name: long, mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, type: '0' });
  assert.is(decodeHeader(b.subarray(0, 512), 0).type, 'x', 'a PAX header comes first');
  assert.ok(b.toString('utf8').includes(` path=${long}\n`));
  assert.is(b.length % 512, 0);
});

t('packDir - GNU tar lists what was packed; a symlink stays a link; hard links and fifos; the digest is of the bytes', async () => {
  const root = tmp();
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/hostname'), 'box\n');
  symlinkSync('/etc/shadow', join(root, 'escape'));
  linkSync(join(root, 'etc/hostname'), join(root, 'etc/again'));
  spawnSync('mkfifo', [join(root, 'pipe')]);
  const long = `${'x'.repeat(150)}-é`;
  writeFileSync(join(root, long), 'long\n');
  const p = await pack(root);
  assert.is(p.digest, `sha256:${createHash('sha256').update(readFileSync(p.file)).digest('hex')}`);
  assert.is(p.size, readFileSync(p.file).length);
  const list = spawnSync('tar', ['-tvf', p.file], { encoding: 'utf8' });
  assert.is(list.status, 0, list.stderr);
  assert.match(list.stdout, /escape -> \/etc\/shadow/);
  assert.match(list.stdout, /etc\/again link to etc\/hostname|etc\/hostname link to etc\/again/);
  assert.match(list.stdout, /^p.* pipe$/m);
  assert.ok(list.stdout.includes(long), 'the long name through PAX');
  const x = tmp();
  const ex = spawnSync('tar', ['-xf', p.file, '-C', x], { encoding: 'utf8' });
  assert.is(ex.status, 0, ex.stderr);
  assert.is(readFileSync(join(x, 'etc/hostname'), 'utf8'), 'box\n');
  assert.is(readlinkSync(join(x, 'escape')), '/etc/shadow');
  assert.is(readFileSync(join(x, long), 'utf8'), 'long\n');
});

t('packDir (root) - a writable layer: whiteouts and opaque dirs become OCI whiteout files, and untar makes the same overlay again', async () => {
  assert.is(process.getuid?.(), 0, 'this test needs root (mknod, trusted.* xattrs), as the suite does');
  const upper = tmp();
  mkdirSync(join(upper, 'etc'));
  writeFileSync(join(upper, 'etc/greeting'), 'hi\n');
  assert.is(spawnSync('mknod', [join(upper, 'etc/group'), 'c', '0', '0']).status, 0);
  mkdirSync(join(upper, 'opq'));
  writeFileSync(join(upper, 'opq/mine'), 'm');
  lsetxattr(join(upper, 'opq'), 'trusted.overlay.opaque', Buffer.from('y'));
  const p = await pack(upper, { opaque: (path) => lgetxattr(path, 'trusted.overlay.opaque')?.toString() === 'y' });
  const list = spawnSync('tar', ['-tf', p.file], { encoding: 'utf8' }).stdout.split('\n');
  for (const n of ['etc/', 'etc/greeting', 'etc/.wh.group', 'opq/', 'opq/.wh..wh..opq', 'opq/mine']) assert.ok(list.includes(n), `${n} not in ${list.join(' ')}`);
  const back = tmp();
  const st = await untar(p.file, back);
  assert.ok(st.whiteouts >= 2, `untar saw ${st.whiteouts} whiteouts`);
  const wh = lstatSync(join(back, 'etc/group'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'the whiteout is an overlay whiteout again');
  assert.is(lgetxattr(join(back, 'opq'), 'trusted.overlay.opaque')?.toString(), 'y');
});

t.run();
