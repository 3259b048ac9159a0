// Where a COPY lands in the image being built: the tree read from layer headers (whiteouts,
// opaque directories, a file replacing a directory), symlinks on the way followed inside the
// image's root (never the host's), a file whose destination is a directory going inside it,
// and implied parent directories keeping the image's mode and owner. Pure, no root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyLayer, placeInImage, resolveIn, type Tree, type TreeNode } from '../tsctl/build-tree.js';
import type { LayerEntry } from '../tsctl/build-context.js';

const d = (mode = 0o755, uid = 0): TreeNode => ({ type: 'dir', mode, uid, gid: uid });
const f: TreeNode = { type: 'other', mode: 0o644, uid: 0, gid: 0 };
const l = (to: string): TreeNode => ({ type: 'link', mode: 0o777, uid: 0, gid: 0, linkname: to });

function base(): Tree {
  const t: Tree = new Map();
  applyLayer(t, [
    { path: 'usr', node: d() }, { path: 'usr/bin', node: d() }, { path: 'usr/bin/sh', node: f },
    { path: 'bin', node: l('usr/bin') }, { path: 'etc', node: d(0o750, 7) }, { path: 'etc/a', node: f },
    { path: 'opt', node: d() }, { path: 'opt/x', node: d() }, { path: 'opt/x/y', node: f },
    { path: 'loop', node: l('/loop/next') }, { path: 'abs', node: l('/etc') }, { path: 'up', node: l('../../../etc') },
  ]);
  return t;
}

test('tree - whiteouts and opaque directories hide the layers below, not the layer\'s own entries', () => {
  const t = base();
  applyLayer(t, [{ path: 'etc/.wh.a', node: f }, { path: 'opt/x/.wh..wh..opq', node: f }, { path: 'opt/x/new', node: f }]);
  assert.not.ok(t.has('etc/a'));
  assert.not.ok(t.has('opt/x/y'));
  assert.ok(t.has('opt/x/new'));
  assert.ok(t.has('opt/x'));
  applyLayer(t, [{ path: 'opt', node: f }]);
  assert.not.ok(t.has('opt/x/new'), 'a file replacing a directory takes its children');
});

test('resolve - links on the way are followed inside the image; absolute and ../ targets stay in its root; loops end', () => {
  const t = base();
  assert.is(resolveIn(t, 'bin/tool', false), 'usr/bin/tool');
  assert.is(resolveIn(t, 'bin', false), 'bin');
  assert.is(resolveIn(t, 'bin', true), 'usr/bin');
  assert.is(resolveIn(t, 'abs/new', false), 'etc/new');
  assert.is(resolveIn(t, 'up/passwd', false), 'etc/passwd', '.. past the image root stays at its root');
  assert.is(resolveIn(t, 'loop/x', false), 'loop/x', 'a loop leaves the path as written');
  assert.is(resolveIn(t, 'new/dir/file', false), 'new/dir/file');
});

const e = (name: string, o: Partial<LayerEntry> = {}): LayerEntry => ({ name, type: '0', mode: 0o644, uid: 0, gid: 0, mtime: 1, size: 1, ...o });

test('place - a file to a directory of the image goes inside it; through /bin -> usr/bin; implied dirs keep the image\'s metadata', () => {
  const t = base();
  const into = placeInImage([e('etc', {})], t, { target: 'etc', name: 'conf' });
  assert.equal(into.map((x) => [x.name, x.type, x.mode, x.uid]), [['etc', '5', 0o750, 7], ['etc/conf', '0', 0o644, 0]]);
  const via = placeInImage([e('bin', { type: '5', implied: true, mode: 0o755 }), e('bin/tool')], t);
  assert.equal(via.map((x) => x.name), ['usr', 'usr/bin', 'usr/bin/tool'], 'the link bin is never replaced by a directory');
  const fresh = placeInImage([e('new', { type: '5', implied: true, mode: 0o755 }), e('new/f')], t);
  assert.equal(fresh.map((x) => [x.name, x.mode]), [['new', 0o755], ['new/f', 0o644]], 'a directory the image lacks is made as the step says');
  const deep = placeInImage([e('a/b/c')], t);
  assert.equal(deep.map((x) => [x.name, x.type]), [['a', '5'], ['a/b', '5'], ['a/b/c', '0']], 'every parent is in the layer');
  const plain = placeInImage([e('file')], t, { target: 'file', name: 'src' });
  assert.equal(plain.map((x) => x.name), ['file'], 'a destination the image lacks is the file itself');
});

test.run();
