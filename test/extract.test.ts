// putFile / putFileSync / putSymlinkSync (native/src/lib/extract.c): the one-call writes of a tar extraction.
// A new entry never lands on or through something already at its path (EEXIST, the caller
// replaces it), its bytes are the archive's (holes kept), owner before mode (setuid stays),
// and failures are typed: a SyscallError naming the call and path, or ArchiveEndedError.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, existsSync, lstatSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { putFile, putFileSync, putSymlinkSync, ArchiveEndedError, type FileSpec } from '../native/extract.js';
import { SyscallError } from '../native/errors.js';

const isRoot = process.getuid?.() === 0;

/** An archive file with `bytes` at offset 1000, open for reading, in a scratch dir. */
function withArchive(bytes: Buffer, run: (base: string, fd: number) => Promise<void>): () => Promise<void> {
  return async () => {
    const base = mkdtempSync(join(tmpdir(), 'sl-extract-'));
    const file = join(base, 'archive');
    writeFileSync(file, Buffer.concat([Buffer.alloc(1000, 0x2e), bytes, Buffer.alloc(24, 0x2e)]));
    const fd = openSync(file, 'r');
    try { await run(base, fd); } finally { closeSync(fd); rmSync(base, { recursive: true, force: true }); }
  };
}

const spec = (fd: number, o: Partial<FileSpec> = {}): FileSpec => ({ fd, from: 1000, extents: [{ offset: 0, size: 10 }], mode: 0o644, atime: 1500000000.5, mtime: 1600000000.25, ...o });

test('extract - a file gets the archive\'s bytes, owner, mode (setuid after chown) and times', withArchive(Buffer.from('0123456789'), async (base, fd) => {
  const p = join(base, 'f');
  await putFile(p, spec(fd, { mode: 0o4750, owner: isRoot ? { uid: 1234, gid: 5678 } : undefined }));
  const st = statSync(p); // before reading it: a read moves an atime older than the mtime (relatime)
  assert.is(readFileSync(p, 'utf8'), '0123456789');
  assert.is(st.mode & 0o7777, 0o4750);
  if (isRoot) assert.equal([st.uid, st.gid], [1234, 5678]);
  assert.is(st.mtimeMs, 1600000000250);
  assert.is(st.atimeMs, 1500000000500);
}));

test('extract - on the calling thread too: the same bytes, mode and times', withArchive(Buffer.from('0123456789'), async (base, fd) => {
  const p = join(base, 'sync');
  putFileSync(p, spec(fd, { extents: [{ offset: 2, size: 10 }], mode: 0o2711 }));
  const st = statSync(p);
  assert.is(st.mode & 0o7777, 0o2711);
  assert.is(st.mtimeMs, 1600000000250);
  assert.is(readFileSync(p, 'latin1'), '\0\0' + '0123456789');
  assert.throws(() => putFileSync(join(base, 'cut'), spec(fd, { extents: [{ offset: 0, size: 4096 }] })), (e: Error) => e instanceof ArchiveEndedError);
}));

test('extract - extents land at their offsets with holes between, up to the real size', withArchive(Buffer.from('AAAABBBB'), async (base, fd) => {
  const p = join(base, 's');
  await putFile(p, spec(fd, { extents: [{ offset: 1 << 20, size: 4 }, { offset: 3 << 20, size: 4 }], realSize: 5 << 20 }));
  const got = readFileSync(p);
  assert.is(got.length, 5 << 20);
  assert.is(got.toString('latin1', 1 << 20, (1 << 20) + 4), 'AAAA');
  assert.is(got.toString('latin1', 3 << 20, (3 << 20) + 4), 'BBBB');
  assert.is(got.subarray(0, 1 << 20).every((b) => b === 0), true);
  assert.ok(statSync(p).blocks * 512 < 1 << 20, 'holes kept');
}));

test('extract - an existing file, directory or (dangling) symlink at the path is EEXIST, never followed', withArchive(Buffer.from('0123456789'), async (base, fd) => {
  writeFileSync(join(base, 'file'), 'old');
  symlinkSync(join(base, 'through-link'), join(base, 'dangling'));
  for (const name of ['file', 'dangling', '.']) {
    const err = await putFile(join(base, name), spec(fd)).then(() => undefined, (e: unknown) => e);
    assert.instance(err, SyscallError, name);
    assert.is((err as SyscallError).code, 'EEXIST');
    assert.match((err as Error).message, /^open .*: EEXIST/);
  }
  assert.is(readFileSync(join(base, 'file'), 'utf8'), 'old');
  assert.not.ok(existsSync(join(base, 'through-link')), 'no file made through the link');
  assert.throws(() => putSymlinkSync('x', join(base, 'file'), undefined, 1, 1), (e: Error) => e instanceof SyscallError && e.code === 'EEXIST' && /^symlink /.test(e.message));
  assert.throws(() => putFileSync(join(base, 'dangling'), spec(fd)), (e: Error) => e instanceof SyscallError && e.code === 'EEXIST');
}));

test('extract - an archive shorter than the entry is ArchiveEndedError; a missing parent is ENOENT', withArchive(Buffer.from('0123456789'), async (base, fd) => {
  const err = await putFile(join(base, 'cut'), spec(fd, { extents: [{ offset: 0, size: 4096 }] })).then(() => undefined, (e: unknown) => e);
  assert.instance(err, ArchiveEndedError);
  const missing = await putFile(join(base, 'no/such/dir'), spec(fd)).then(() => undefined, (e: unknown) => e);
  assert.is((missing as SyscallError).code, 'ENOENT');
  const big = await putFile(join(base, 'big-owner'), spec(fd, { owner: { uid: 2 ** 32, gid: 0 } })).then(() => undefined, (e: unknown) => e);
  assert.instance(big, RangeError);
  assert.not.ok(existsSync(join(base, 'big-owner')));
}));

test('extract - a symlink keeps its target as written and gets its own times, not its target\'s', withArchive(Buffer.alloc(0), async (base) => {
  writeFileSync(join(base, 'target'), 't');
  const before = statSync(join(base, 'target')).mtimeMs;
  const p = join(base, 'link');
  putSymlinkSync('target', p, isRoot ? { uid: 42, gid: 43 } : undefined, 1500000000, 1600000001);
  assert.is(readlinkSync(p), 'target');
  const st = lstatSync(p);
  assert.is(st.mtimeMs, 1600000001000);
  if (isRoot) assert.equal([st.uid, st.gid], [42, 43]);
  assert.is(statSync(join(base, 'target')).mtimeMs, before);
}));

test.run();
