// unmountAll (agent/storage/mounts.ts, native/src/lib/unmount.c swl_umount_all): a removal's
// unmount of a container's root in one worker call. It must take off every mount stacked on the
// path (a create retried after a crash may have mounted twice), take a path with nothing
// mounted (or no path) as done, and fail on anything else, naming the path; and never touch a
// mount beside the target.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mount, umount2, umountAllAsync } from '../native/libc.js';
import { MNT_DETACH } from '../native/mount-flags.js';
import { SyscallError } from '../native/errors.js';
import { unmountAll } from '../agent/storage/mounts.js';
import { isMountPoint } from '../agent/mountinfo.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'sl-umount-all-'));
const tmpfs = (at: string) => mount('tmpfs', at, 'tmpfs', 0, 'size=1m');
/** However a test ends, nothing of it stays mounted. */
const cleanup = (...paths: string[]) => { for (const p of paths) for (let i = 0; i < 8; i++) { try { umount2(p, MNT_DETACH); } catch { break; } } };

test('unmount-all - three mounts stacked on one path all go, in one call that counts them; a mount beside it stays', async () => {
  const base = scratch();
  const t = join(base, 'root');
  const beside = join(base, 'beside');
  mkdirSync(t);
  mkdirSync(beside);
  try {
    tmpfs(t); tmpfs(t); tmpfs(t);
    tmpfs(beside);
    assert.ok(isMountPoint(t));
    assert.is(await umountAllAsync(t, MNT_DETACH, 16), 3, 'three unmounted');
    assert.not.ok(isMountPoint(t), 'nothing left on the path');
    assert.ok(isMountPoint(beside), 'the mount beside it is untouched');
    assert.is(await umountAllAsync(t, MNT_DETACH, 16), 0, 'again: nothing to do (EINVAL), not an error');
  } finally { cleanup(t, beside); rmSync(base, { recursive: true, force: true }); }
});

test('unmount-all - `max` bounds the loop: the rest stays mounted for the next call', async () => {
  const base = scratch();
  const t = join(base, 'root');
  mkdirSync(t);
  try {
    tmpfs(t); tmpfs(t); tmpfs(t);
    assert.is(await umountAllAsync(t, MNT_DETACH, 2), 2);
    assert.ok(isMountPoint(t), 'one left');
    await unmountAll(t);
    assert.not.ok(isMountPoint(t));
  } finally { cleanup(t); rmSync(base, { recursive: true, force: true }); }
});

test('unmount-all - a missing path and a plain directory are done; an over-long path fails, naming it', async () => {
  const base = scratch();
  try {
    await unmountAll(join(base, 'no-such-dir'));
    await unmountAll(base);
    const long = join(base, 'x'.repeat(5000));
    const err = await unmountAll(long).then(() => undefined, (e: unknown) => e);
    assert.instance(err, SyscallError);
    assert.is((err as SyscallError).code, 'ENAMETOOLONG');
    assert.ok((err as SyscallError).message.includes('xxxx'), 'names the path');
  } finally { rmSync(base, { recursive: true, force: true }); }
});

test.run();
