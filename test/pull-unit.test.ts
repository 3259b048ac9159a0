// The pull's pure and local parts, without a cluster or root: progress lines (a terminal's
// redraw, plain lines otherwise), the blob spool that makes a pull resumable (its lock, the
// dead put it records, a cache dir that is not this user's), loopback for redirects.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, existsSync, chmodSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { line, size, terminalProgress, plainProgress } from '../tsctl/pull-progress.js';
import { BlobSpool, spoolDir } from '../tsctl/registry/spool.js';
import { isLoopback } from '../tsctl/registry/client.js';
import { layerForm, objectDigest, gzipLayerMetadata, LAYER_ENCODING_KEY, LAYER_BLOB_KEY } from '../shared/layer-object.js';

const D = `sha256:${'ab'.repeat(32)}`;

test('progress - docker\'s units and lines', () => {
  assert.equal([size(999), size(12_345), size(12_345_678), size(4_000_000_000)], ['999B', '12.3kB', '12.3MB', '4.00GB']);
  assert.is(line({ id: 'abababababab', total: 40e6, got: 12.3e6, status: 'Downloading' }), 'abababababab: Downloading 12.3MB/40.0MB');
  assert.is(line({ id: 'abababababab', total: 40e6, got: 40e6, status: 'Pull complete' }), 'abababababab: Pull complete');
});

test('progress - a terminal redraws its lines in place, throttled; plain output is one line per finished layer', () => {
  let out = '';
  let t = 0;
  const p = terminalProgress((s) => { out += s; }, () => t);
  p.layer(D, 2e6);
  p.layer(`sha256:${'cd'.repeat(32)}`, 1e6);
  out = '';
  t += 10; p.bytes(D, 1e5);
  assert.is(out, '', 'within 100 ms: no redraw');
  t += 200; p.bytes(D, 1e6);
  assert.is(out, '\x1b[2A\x1b[2Kabababababab: Downloading 1.0MB/2.0MB\n\x1b[2Kcdcdcdcdcdcd: Waiting\n');
  out = '';
  p.done(D, 'Pull complete');
  assert.match(out, /^\x1b\[2A\x1b\[2Kabababababab: Pull complete\n/);
  let plain = '';
  const q = plainProgress((s) => { plain += s; });
  q.layer(D, 5); q.bytes(D, 3); q.done(D, 'Failed'); q.done(D, 'Pull complete'); q.done(D, 'Already exists'); q.end();
  assert.is(plain, 'abababababab: Pull complete\nabababababab: Already exists\n', 'no per-chunk lines, no line for a failure (the error is one line)');
});

test('spool - bytes kept across a killed pull, the dead put remembered, one owner at a time', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'swl-spool-')), 'pulls');
  try {
    const a = BlobSpool.open(dir, D)!;
    assert.ok(a, 'a fresh spool');
    assert.is(a.have, 0);
    assert.is(BlobSpool.open(dir, D), undefined, 'a second pull of the blob while the first runs: no spool');
    a.putStarted('NUID123');
    void a.append(Buffer.from('hello '));
    void a.append(Buffer.from('world'));
    // the writes are the thread pool's: what was appended is in the file once flushed
    await a.flush();
    // as a SIGKILL leaves it: no close; the lock names a process that is gone
    writeFileSync(join(dir, `${D.slice(7)}.lock`), '999999999\n');
    const b = BlobSpool.open(dir, D)!;
    assert.ok(b, 'a dead owner\'s lock is taken over');
    assert.is(b.have, 11);
    assert.is(b.deadChunks, 'NUID123');
    const parts: Buffer[] = [];
    for await (const c of b.readHave()) parts.push(c);
    assert.is(Buffer.concat(parts).toString(), 'hello world');
    // a resumed blob's bytes go after those kept, not over them (a second resume, a deferred fill)
    void b.append(Buffer.from('!!'));
    await b.flush();
    assert.ok(b.intact);
    b.putSettled();
    await b.close(true);
    const c = BlobSpool.open(dir, D)!;
    assert.is(c.deadChunks, undefined);
    assert.is(c.have, 13, 'kept for a later resume');
    const all: Buffer[] = [];
    for await (const x of c.readFirst(13)) all.push(x);
    assert.is(Buffer.concat(all).toString(), 'hello world!!');
    await c.close(false);
    assert.not.ok(existsSync(join(dir, `${D.slice(7)}.part`)), 'a finished or refused blob leaves nothing');
    assert.not.ok(existsSync(join(dir, `${D.slice(7)}.lock`)));
    assert.is(BlobSpool.open(dir, 'sha256:../../etc/passwd'), undefined, 'only digests name files');
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('spool - a cache dir open to others or a symlink is not used', () => {
  const root = mkdtempSync(join(tmpdir(), 'swl-spool-'));
  try {
    const open = join(root, 'open');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    assert.is(BlobSpool.open(open, D), undefined, 'mode 0777');
    const real = join(root, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(root, 'link'));
    assert.is(BlobSpool.open(join(root, 'link'), D), undefined, 'a symlink');
    assert.is(spoolDir({ SWARMLITE_PULL_CACHE: '/x' }), '/x');
    assert.is(spoolDir({ XDG_CACHE_HOME: '/c' }), '/c/swarmlite/pulls');
    // relative: in the caller's directory, not the process's (a warm tsctl serves calls from /)
    assert.is(spoolDir({ SWARMLITE_PULL_CACHE: 'c/p' }, '/home/u/w'), '/home/u/w/c/p');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('layer form - a plain tar, a kept gzip blob, and stored objects that are neither', () => {
  const b64 = (hex: string) => `SHA-256=${Buffer.from(hex, 'hex').toString('base64url')}=`;
  const diff = `sha256:${'cd'.repeat(32)}`;
  assert.is(objectDigest(b64('ab'.repeat(32))), D);
  assert.is(objectDigest('SHA-256=short'), null);
  assert.is(objectDigest(`MD5=${'x'.repeat(20)}`), null);
  // stored before the gzip form existed: no metadata, its digest is the diff_id
  assert.equal(layerForm({ digest: b64('cd'.repeat(32)) }, diff), { encoding: 'plain' });
  assert.match(layerForm({ digest: b64('ab'.repeat(32)) }, diff) as string, /hash to sha256:abab.*, not sha256:cdcd/);
  // a pull's kept blob: its bytes are the blob it names
  assert.equal(layerForm({ digest: b64('ab'.repeat(32)), metadata: gzipLayerMetadata(D) }, diff), { encoding: 'gzip', blob: D });
  assert.match(layerForm({ digest: b64('ee'.repeat(32)), metadata: gzipLayerMetadata(D) }, diff) as string, /not the blob sha256:abab/);
  assert.match(layerForm({ digest: b64('ab'.repeat(32)), metadata: { [LAYER_ENCODING_KEY]: 'zstd', [LAYER_BLOB_KEY]: D } }, diff) as string, /unknown layer encoding "zstd"/);
  assert.match(layerForm({ digest: b64('ab'.repeat(32)), metadata: { [LAYER_ENCODING_KEY]: 'gzip', [LAYER_BLOB_KEY]: '../../x' } }, diff) as string, /without its blob digest/);
  assert.match(layerForm({ digest: b64('ab'.repeat(32)), metadata: { [LAYER_ENCODING_KEY]: 'x'.repeat(500) } }, diff) as string, /^unknown layer encoding "x{40}"$/);
});

test('redirects - loopback hosts', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]', '::1']) assert.ok(isLoopback(h), h);
  for (const h of ['203.0.113.1', '10.0.0.1', 'example.com', '127.0.0.1.example.com', '0.0.0.0']) assert.not.ok(isLoopback(h), h);
});

test.run();
