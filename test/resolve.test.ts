// Paths in a container resolved under its root as the container would: links followed inside
// the root (an absolute target starts again at the root, ".." stops there), never onto the host.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveInRoot, ResolveError } from '../agent/storage/resolve.js';

const root = mkdtempSync(join(tmpdir(), 'swl-resolve-'));
mkdirSync(join(root, 'etc'));
writeFileSync(join(root, 'etc', 'hostname'), 'box\n');
mkdirSync(join(root, 'tmp'));
symlinkSync('/', join(root, 'tmp', 'to-root'));
symlinkSync('../../../../..', join(root, 'tmp', 'up'));
symlinkSync('/etc', join(root, 'tmp', 'etc-abs'));
symlinkSync('loop2', join(root, 'tmp', 'loop1'));
symlinkSync('loop1', join(root, 'tmp', 'loop2'));
symlinkSync('/etc/hostname', join(root, 'link-to-file'));

test.after(() => rmSync(root, { recursive: true, force: true }));

test('a plain path is its host path under the root', () => {
  assert.equal(resolveInRoot(root, '/etc/hostname'), { dir: join(root, 'etc'), name: 'hostname', parts: ['etc'] });
});

test('an absolute link and a link climbing with .. both stay under the root', () => {
  assert.is(resolveInRoot(root, '/tmp/to-root/etc/hostname').dir, join(root, 'etc'));
  assert.is(resolveInRoot(root, '/tmp/up/etc/hostname').dir, join(root, 'etc'));
  assert.is(resolveInRoot(root, '/../../../etc/hostname').dir, join(root, 'etc'));
  assert.is(resolveInRoot(root, '/tmp/etc-abs/hostname').dir, join(root, 'etc'));
});

test('the last component is the link itself unless follow', () => {
  assert.equal(resolveInRoot(root, '/link-to-file'), { dir: root, name: 'link-to-file', parts: [] });
  assert.equal(resolveInRoot(root, '/link-to-file', { follow: true }), { dir: join(root, 'etc'), name: 'hostname', parts: ['etc'] });
  assert.equal(resolveInRoot(root, '/tmp/to-root', { follow: true }), { dir: root, name: '', parts: [] });
});

test('refusals: a loop, a file used as a directory, a missing directory, a relative path, NUL', () => {
  const code = (p: string, o = {}) => { try { resolveInRoot(root, p, o); return 'ok'; } catch (e) { assert.instance(e, ResolveError); return (e as ResolveError).code; } };
  assert.is(code('/tmp/loop1/x'), 'ELOOP');
  assert.is(code('/etc/hostname/x'), 'ENOTDIR');
  assert.is(code('/nope/x'), 'ENOENT');
  assert.is(code('etc/hostname'), 'EINVAL');
  assert.is(code('/etc/\0'), 'EINVAL');
  // a missing last component is fine: cp may create it
  assert.is(code('/etc/new-file'), 'ok');
});

test.run();
