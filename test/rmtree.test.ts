// rmTreeAsync (native/src/lib/rmtree.c): the one-call rm -rf a removal uses for a container's
// bundle, writable layer, state dir and sandbox files. It must delete everything under the
// path and nothing else: no symlink followed out of the tree, nothing deleted through a mount
// still inside it (that fails, naming the path), a missing path is done.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rmTreeAsync, umount2 } from '../native/libc.js';
import { SyscallError } from '../native/errors.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'sl-rmtree-'));

test('rmtree - a nested tree goes whole: files, empty and unreadable dirs, a FIFO, dangling and outside symlinks (their targets stay)', async () => {
  const base = scratch();
  try {
    const outside = join(base, 'outside');
    mkdirSync(join(outside, 'dir'), { recursive: true });
    writeFileSync(join(outside, 'keep'), 'k');
    writeFileSync(join(outside, 'dir', 'keep2'), 'k2');
    const t = join(base, 'tree');
    mkdirSync(join(t, 'a', 'b', 'c'), { recursive: true });
    mkdirSync(join(t, 'empty'));
    writeFileSync(join(t, 'a', 'f'), 'x');
    writeFileSync(join(t, 'a', 'b', 'c', 'g'), 'y');
    mkdirSync(join(t, 'locked', 'in'), { recursive: true });
    writeFileSync(join(t, 'locked', 'in', 'h'), 'z');
    chmodSync(join(t, 'locked'), 0o000);
    execFileSync('mkfifo', [join(t, 'fifo')]);
    symlinkSync(join(outside, 'keep'), join(t, 'to-file'));
    symlinkSync(join(outside, 'dir'), join(t, 'to-dir'));
    symlinkSync('/nonexistent/target', join(t, 'dangling'));
    await rmTreeAsync(t);
    assert.not.ok(existsSync(t), 'the tree is gone');
    assert.is(readFileSync(join(outside, 'keep'), 'utf8'), 'k', 'a symlink\'s file target stays');
    assert.is(readFileSync(join(outside, 'dir', 'keep2'), 'utf8'), 'k2', 'a symlink\'s dir target is not entered');
  } finally { rmSync(base, { recursive: true, force: true }); }
});

test('rmtree - a missing path is done; a file or a symlink as the path is unlinked (a link\'s target stays)', async () => {
  const base = scratch();
  try {
    await rmTreeAsync(join(base, 'nothing-here'));
    writeFileSync(join(base, 'file'), 'f');
    await rmTreeAsync(join(base, 'file'));
    assert.not.ok(existsSync(join(base, 'file')));
    mkdirSync(join(base, 'target'));
    writeFileSync(join(base, 'target', 'x'), 'x');
    symlinkSync(join(base, 'target'), join(base, 'link'));
    await rmTreeAsync(join(base, 'link'));
    assert.not.ok(existsSync(join(base, 'link')));
    assert.is(readFileSync(join(base, 'target', 'x'), 'utf8'), 'x');
  } finally { rmSync(base, { recursive: true, force: true }); }
});

test('rmtree - 600 trees at once (a burst of removals): every one goes; koffi\'s 256 async calls are never exceeded', async () => {
  const base = scratch();
  try {
    const trees = Array.from({ length: 600 }, (_, i) => join(base, `t${i}`));
    for (const t of trees) { mkdirSync(join(t, 'd'), { recursive: true }); writeFileSync(join(t, 'd', 'f'), 'x'); }
    await Promise.all(trees.map((t) => rmTreeAsync(t)));
    assert.is(trees.filter((t) => existsSync(t)).length, 0);
  } finally { rmSync(base, { recursive: true, force: true }); }
});

if (process.getuid?.() !== 0) {
  console.log('rmtree - SKIPPED (not counted): a mount inside the tree needs root to make');
} else {
  test('rmtree - a mount still inside the tree: fails naming the path, deletes nothing through the mount', async () => {
    const base = scratch();
    const mnt = join(base, 'tree', 'rootfs');
    let mounted = false;
    try {
      mkdirSync(mnt, { recursive: true });
      writeFileSync(join(base, 'tree', 'config.json'), '{}');
      execFileSync('mount', ['-t', 'tmpfs', 'sl-rmtree-test', mnt]);
      mounted = true;
      writeFileSync(join(mnt, 'inside'), 'still here');
      let err: unknown;
      try { await rmTreeAsync(join(base, 'tree')); } catch (e) { err = e; }
      assert.ok(err instanceof SyscallError, `a SyscallError, got ${String(err)}`);
      assert.is((err as SyscallError).syscall, 'rmtree');
      assert.ok((err as Error).message.includes(join(base, 'tree')), (err as Error).message);
      assert.is(readFileSync(join(mnt, 'inside'), 'utf8'), 'still here', 'the mounted file was not deleted');
    } finally {
      if (mounted) umount2(mnt);
      rmSync(base, { recursive: true, force: true });
    }
  });
}

test.run();
