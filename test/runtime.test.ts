// Integration tests of the container runtime: real namespaces, mounts and processes.
// Needs root (clone with new namespaces, mount, mknod, pivot_root); skipped otherwise.
// Everything lives under a fresh temp dir; every container is killed and deleted at the
// end even when a test fails (the containers' mounts live in their own mount namespaces,
// so nothing is mounted on the host).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Runtime, RuntimeError, processStartTime, type ExitStatus } from '../agent/runtime/runtime.js';
import { createSpec, type ContainerConfig } from '../agent/runtime/spec.js';
import { encodeLaunch } from '../agent/runtime/launch.js';
import { readLogFrom, type LogFrame } from '../agent/runtime/logfile.js';
import { spawnContainer } from '../native/spawn.js';
import { SyscallError } from '../native/errors.js';
import { mount, umount2, MNT_DETACH, MS_NOSUID } from '../native/libc.js';

const isRoot = process.getuid?.() === 0;
const T = mkdtempSync(join(tmpdir(), 'sl-rt-'));
const ROOTFS = join(T, 'rootfs');
const rt = new Runtime(join(T, 'state'));
const tag = randomBytes(3).toString('hex');
const extraCleanup: (() => void)[] = [];
let seq = 0;

function newId(what: string): string {
  return `t${tag}-${what}-${seq++}`;
}

function buildRootfs(): void {
  mkdirSync(join(ROOTFS, 'bin'), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(ROOTFS, 'bin', 'busybox'));
  for (const app of ['sh', 'ps', 'hostname', 'cat', 'ls', 'sleep', 'true', 'echo', 'id', 'readlink', 'wc', 'grep', 'ip', 'env', 'pwd']) {
    symlinkSync('busybox', join(ROOTFS, 'bin', app));
  }
}

function bundle(id: string): string {
  const b = join(T, 'bundles', id);
  mkdirSync(b, { recursive: true });
  return b;
}

function config(id: string, args: string[], over: Partial<ContainerConfig> = {}): ContainerConfig {
  return { id, hostname: `h-${id}`.slice(0, 60), args, env: [], cwd: '/', network: { mode: 'none' }, rootfsPath: ROOTFS, ...over };
}

async function logOf(id: string): Promise<LogFrame[]> {
  return (await readLogFrom(rt.defaultLogPath(id))).frames;
}

const text = (frames: LogFrame[], stream: 'stdout' | 'stderr') =>
  frames.filter((f) => f.stream === stream).map((f) => f.data.toString()).join('');

/** Starts, waits for the exit, returns the exit and the output. */
async function run(args: string[], over: Partial<ContainerConfig> = {}, opts: { cgroupProcs?: string[] } = {}):
  Promise<{ id: string; exit: ExitStatus; out: string; err: string; frames: LogFrame[]; pid: number }> {
  const id = newId('run');
  const r = await rt.start(id, bundle(id), createSpec(config(id, args, over)), opts);
  const exit = await withTimeout(rt.waitExit(id), 10_000, `exit of ${id}`);
  const frames = await logOf(id);
  return { id, exit, out: text(frames, 'stdout'), err: text(frames, 'stderr'), frames, pid: r.pid };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => { t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms); })])
    .finally(() => clearTimeout(t));
}

function ppidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

function cleanupAll(): void {
  for (const f of extraCleanup.splice(0)) {
    try { f(); } catch { /* best effort */ }
  }
  for (const id of rt.list()) {
    try {
      const st = rt.status(id);
      if (st.state === 'running' && st.pid && processStartTime(st.pid) !== undefined) process.kill(st.pid, 'SIGKILL');
    } catch { /* already gone */ }
  }
  const deadline = Date.now() + 3000;
  for (const id of rt.list()) {
    while (Date.now() < deadline) {
      try { if (rt.status(id).state !== 'running') break; } catch { break; }
      spawnSync('sleep', ['0.05']);
    }
    try { rmSync(rt.stateDir(id), { recursive: true, force: true }); } catch { /* ignore */ }
  }
  rmSync(T, { recursive: true, force: true });
}

test.before(() => { if (isRoot) buildRootfs(); });
test.after(cleanupAll);

function rootTest(name: string, fn: () => Promise<void> | void): void {
  if (isRoot) { test(name, fn); return; }
  // counted as skipped, never as passed, with its reason
  console.log(`  skipped "${name}": needs root (namespaces, mount, pivot_root)`);
  test.skip(name, fn);
}

rootTest('runtime - sh is pid 1 of its own pid namespace', async () => {
  const r = await run(['sh', '-c', 'echo $$; readlink /proc/1/ns/pid; ls /proc | grep -c "^[0-9]"']);
  const [pid, ns, count] = r.out.trim().split('\n');
  assert.is(pid, '1');
  assert.is.not(ns, readlinkSync('/proc/self/ns/pid'), 'pid namespace differs from the host');
  assert.ok(Number(count) <= 4, `only the container's processes in /proc, saw ${count}`);
  assert.equal(r.exit.code, 0);
});

rootTest('runtime - ps shows only the container processes', async () => {
  const r = await run(['sh', '-c', 'sleep 5 & ps']);
  const lines = r.out.trim().split('\n').slice(1);
  const pids = lines.map((l) => Number(l.trim().split(/\s+/)[0]));
  assert.ok(lines.length >= 2 && lines.length <= 4, r.out);
  assert.ok(pids.every((p) => p < 10), r.out);
  assert.not.match(r.out, /node|sl-monitor/);
});

rootTest('runtime - hostname and HOSTNAME are the container\'s', async () => {
  const r = await run(['sh', '-c', 'hostname; echo $HOSTNAME'], { hostname: 'ctr-name' });
  assert.is(r.out, 'ctr-name\nctr-name\n');
});

rootTest('runtime - host paths are not visible after pivot_root', async () => {
  const marker = join('/tmp', `sl-marker-${tag}`);
  writeFileSync(marker, 'host');
  extraCleanup.push(() => rmSync(marker, { force: true }));
  const r = await run(['sh', '-c', `[ -e ${marker} ] && echo visible || echo hidden; ls /`]);
  assert.is(r.out.split('\n')[0], 'hidden');
  assert.not.match(r.out, /\btmp\b/);
});

rootTest('runtime - attack: a launch without a mount namespace of its own is refused before any mount (the host root never moves)', async () => {
  // Run where a regression could only hurt a throwaway: a child in a private mount namespace
  // of its own starts the container. Without the guard, the init would pivot THAT namespace's
  // root (as it once did the host's, from an OCI bundle without a mount namespace).
  const script = join(T, `nomnt-${tag}.mjs`);
  writeFileSync(script, `
    import { Runtime } from ${JSON.stringify(new URL('../agent/runtime/runtime.js', import.meta.url).href)};
    import { createSpec } from ${JSON.stringify(new URL('../agent/runtime/spec.js', import.meta.url).href)};
    import { readFileSync } from 'node:fs';
    const rt = new Runtime(${JSON.stringify(join(T, 'state-nomnt'))});
    const out = [];
    for (const [what, ns] of [['none', undefined], ['own', '/proc/self/ns/mnt']]) {
      const id = ${JSON.stringify(`t${tag}-nomnt`)} + '-' + what;
      const spec = createSpec({ id, hostname: 'h', args: ['true'], env: [], cwd: '/', network: { mode: 'none' }, rootfsPath: ${JSON.stringify(ROOTFS)} });
      spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== 'mount');
      if (ns) spec.linux.namespaces.push({ type: 'mount', path: ns });
      const before = readFileSync('/proc/self/mountinfo', 'utf8');
      let err = '';
      try { await rt.start(id, ${JSON.stringify(join(T, 'bundles'))} + '/' + id, spec); await rt.waitExit(id); } catch (e) { err = String(e.message); }
      out.push({ what, err, same: readFileSync('/proc/self/mountinfo', 'utf8') === before, root: readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').find((l) => l.split(' ')[4] === '/') });
    }
    console.log(JSON.stringify(out));
  `);
  for (const w of ['none', 'own']) mkdirSync(join(T, 'bundles', `t${tag}-nomnt-${w}`), { recursive: true });
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, script], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { what: string; err: string; same: boolean }[];
  assert.is(res.length, 2, r.stdout);
  for (const x of res) {
    assert.match(x.err, /own mount namespace [^ ]*: EINVAL/, `${x.what}: ${x.err}`);
    assert.ok(x.same, `${x.what}: the namespace's mounts did not change`);
  }
});

rootTest('runtime - attack: hostile user namespace records reach the monitor and are refused before the clone', async () => {
  // encodeLaunch never writes these; a launch built by anything else must not get a user
  // namespace without maps, a joined one, or a map text the kernel would read as more lines
  const bad: [string, string[]][] = [
    ['a user namespace without maps', ['ns', 'user', '']],
    ['maps without a user namespace', ['idmap', 'uid', '0 1000 1\n', 'idmap', 'gid', '0 1000 1\n']],
    ['a joined user namespace', ['ns', 'user', '/proc/1/ns/user', 'idmap', 'uid', '0 1000 1\n', 'idmap', 'gid', '0 1000 1\n']],
    ['a map with junk', ['ns', 'user', '', 'idmap', 'uid', '0 1000 1;0 0 1', 'idmap', 'gid', '0 1000 1\n']],
    ['an unknown map', ['ns', 'user', '', 'idmap', 'xid', '0 1000 1\n', 'idmap', 'gid', '0 1000 1\n']],
    ['an empty map', ['ns', 'user', '', 'idmap', 'uid', '', 'idmap', 'gid', '0 1000 1\n']],
  ];
  for (const [what, extra] of bad) await refusedLaunch('usernsbad', what, extra, /launch/);
});

/** A valid launch with `extra` records appended must be refused by the monitor before any container runs. */
async function refusedLaunch(prefix: string, what: string, extra: string[], re: RegExp): Promise<string> {
  const id = newId(prefix);
  const dir = rt.stateDir(id);
  mkdirSync(dir);
  const launch = Buffer.concat([encodeLaunch(createSpec(config(id, ['true'])), { stateDir: dir, logPath: join(dir, 'container.log'), cgroupProcs: [] }), Buffer.from(extra.join('\0') + '\0')]);
  let err: unknown;
  try { await spawnContainer(launch); } catch (e) { err = e; }
  assert.ok(err instanceof SyscallError, `${what}: started`);
  assert.match(String((err as Error).message), re, what);
  assert.not.ok(existsSync(join(dir, 'running.json')), what);
  return dir;
}

rootTest('runtime - attack: a "chroot 1" record (sl-runtime\'s no-mount-namespace path) with a mount or user namespace is refused before the clone', async () => {
  // encodeLaunch refuses both; a launch built by anything else must not reach the init's
  // chroot path with a namespace it would then mount and chroot in
  for (const [what, extra] of [
    ['with a new mount namespace', ['chroot', '1']],
    ['with a user namespace', ['chroot', '1', 'ns', 'user', '', 'idmap', 'uid', '0 1000 1\n', 'idmap', 'gid', '0 1000 1\n']],
  ] as [string, string[]][]) {
    const dir = await refusedLaunch('chrootbad', what, extra, /chroot is for a container without a mount or user namespace/);
    assert.not.ok(existsSync(join(dir, 'chroot.mnt')), what);
  }
});

rootTest('runtime - exit code is recorded', async () => {
  const r = await run(['sh', '-c', 'exit 7']);
  assert.equal([r.exit.code, r.exit.signal], [7, undefined]);
  assert.is(rt.status(r.id).state, 'exited');
});

rootTest('runtime - a kill by signal is recorded as 128+n and the signal name', async () => {
  const id = newId('kill');
  await rt.start(id, bundle(id), createSpec(config(id, ['sleep', '30'])));
  assert.is(rt.status(id).state, 'running');
  rt.kill(id, 'SIGKILL');
  const exit = await withTimeout(rt.waitExit(id), 5000, 'killed exit');
  assert.equal([exit.code, exit.signal], [137, 'SIGKILL']);
  assert.throws(() => rt.kill(id, 'SIGKILL'), (e: unknown) => e instanceof RuntimeError && e.reason === 'not-running');
});

rootTest('runtime - the monitor is not a child of the starter and the container is the monitor\'s', async () => {
  const id = newId('parent');
  const r = await rt.start(id, bundle(id), createSpec(config(id, ['sleep', '30'])));
  assert.is.not(ppidOf(r.monitorPid), process.pid);
  assert.is(ppidOf(r.pid), r.monitorPid);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${r.monitorPid}/status`, 'utf8'))![1]);
  const dirty = Number(/Private_Dirty:\s+(\d+)/.exec(readFileSync(`/proc/${r.monitorPid}/smaps_rollup`, 'utf8'))![1]);
  console.log(`  monitor RSS ${rss} kB, of which ${dirty} kB private dirty (the rest is the binary's page cache, shared by all monitors)`);
  rt.kill(id, 'SIGKILL');
  await rt.waitExit(id);
});

rootTest('runtime - a container outlives the SIGKILLed process that started it', async () => {
  const id = newId('survive');
  const b = bundle(id);
  const script = join(T, `starter-${id}.mjs`);
  const dist = new URL('..', import.meta.url).pathname; // dist/
  writeFileSync(script, `
    import { Runtime } from '${dist}agent/runtime/runtime.js';
    import { createSpec } from '${dist}agent/runtime/spec.js';
    const rt = new Runtime(${JSON.stringify(rt.root)});
    const spec = createSpec(${JSON.stringify(config(id, ['sleep', '30']))});
    const r = await rt.start(${JSON.stringify(id)}, ${JSON.stringify(b)}, spec);
    process.stdout.write(JSON.stringify(r) + '\\n');
    setInterval(() => {}, 1000);
  `);
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  extraCleanup.push(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } });
  const line = await withTimeout(new Promise<string>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d) => { buf += d; if (buf.includes('\n')) res(buf.split('\n')[0]); });
    child.on('exit', (c) => rej(new Error(`starter exited ${c}`)));
  }), 10_000, 'starter');
  const started = JSON.parse(line) as { pid: number; monitorPid: number };
  assert.is.not(ppidOf(started.monitorPid), child.pid);
  const gone = new Promise((res) => child.once('exit', res));
  child.kill('SIGKILL');
  await gone;
  await new Promise((r) => setTimeout(r, 100));
  const st = new Runtime(rt.root).status(id); // a fresh Runtime, as a restarted agent would have
  assert.is(st.state, 'running');
  assert.is(st.pid, started.pid);
  assert.ok(processStartTime(started.pid) !== undefined, 'container process alive');
  rt.kill(id, 'SIGKILL');
  assert.is((await withTimeout(rt.waitExit(id), 5000, 'exit')).signal, 'SIGKILL');
});

rootTest('runtime - network none has only lo, and it is up', async () => {
  const r = await run(['sh', '-c', 'ls /sys/class/net; cat /sys/class/net/lo/flags']);
  const [ifs, flags] = [r.out.trim().split('\n').slice(0, -1), r.out.trim().split('\n').at(-1)!];
  assert.equal(ifs, ['lo']);
  assert.ok(Number(flags) & 1, 'IFF_UP');
});

rootTest('runtime - network host shares the host namespace', async () => {
  const r = await run(['readlink', '/proc/self/ns/net'], { network: { mode: 'host' } });
  assert.is(r.out.trim(), readlinkSync('/proc/self/ns/net'));
});

rootTest('runtime - network path joins an existing namespace', async () => {
  const name = `sl-test-${tag}`;
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  assert.is(add.status, 0, add.stderr);
  extraCleanup.push(() => spawnSync('ip', ['netns', 'delete', name]));
  try {
    const path = `/run/netns/${name}`;
    const r = await run(['readlink', '/proc/self/ns/net'], { network: { mode: 'path', path } });
    assert.is(r.out.trim(), `net:[${statSync(path).ino}]`);
  } finally {
    spawnSync('ip', ['netns', 'delete', name]);
  }
});

rootTest('runtime - stdout and stderr land in the log in order', async () => {
  const r = await run(['sh', '-c', 'echo o1; sleep 0.05; echo e1 >&2; sleep 0.05; echo o2; sleep 0.05; echo e2 >&2']);
  assert.equal(r.frames.map((f) => `${f.stream}:${f.data.toString().trim()}`), ['stdout:o1', 'stderr:e1', 'stdout:o2', 'stderr:e2']);
  assert.ok(r.frames.every((f, i) => i === 0 || f.time >= r.frames[i - 1].time));
});

rootTest('runtime - env, cwd and user come from the spec', async () => {
  const r = await run(['sh', '-c', 'id -u; id -g; pwd; echo $FOO; grep CapEff /proc/self/status'],
    { env: ['FOO=bar'], cwd: '/work/dir', user: { uid: 1000, gid: 1001 } });
  const [uid, gid, cwd, foo, cap] = r.out.trim().split('\n');
  assert.equal([uid, gid, cwd, foo], ['1000', '1001', '/work/dir', 'bar']);
  assert.match(cap, /0000000000000000$/);
});

rootTest('runtime - root keeps only Docker\'s default capabilities', async () => {
  const r = await run(['grep', 'CapBnd', '/proc/self/status']);
  assert.is(r.out.trim().split(/\s+/)[1], '00000000a80425fb');
});

rootTest('runtime - file bind mounts are created and read-only when asked', async () => {
  const hosts = join(T, 'hosts');
  writeFileSync(hosts, '127.0.0.1 localhost test-bind\n');
  const r = await run(['sh', '-c', 'cat /etc/hosts; echo x > /etc/hosts || echo denied'],
    { mounts: [{ source: hosts, destination: '/etc/hosts', options: ['ro'] }] });
  assert.match(r.out, /test-bind/);
  assert.match(r.out, /denied/);
  assert.is(readFileSync(hosts, 'utf8'), '127.0.0.1 localhost test-bind\n');
});

rootTest('runtime - masked and read-only paths', async () => {
  // /proc/keys (a file) and /proc/acpi (a dir) exist on this kernel; /proc/kcore may not.
  const r = await run(['sh', '-c', 'wc -c < /proc/keys; ls /proc/acpi | wc -l; echo x > /proc/sys/kernel/hostname || echo ro; ls /dev']);
  const lines = r.out.trim().split('\n');
  assert.equal([lines[0].trim(), lines[1].trim(), lines[2]], ['0', '0', 'ro']);
  for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm', 'mqueue', 'fd', 'stdout', 'ptmx']) assert.ok(lines.includes(d), `/dev/${d}`);
});

rootTest('runtime - the container joins the given cgroups before its exec', async () => {
  // pids, and devices: a spec's device rules need a devices group to be enforced in
  const cgs = ['pids', 'devices'].map((c) => `/sys/fs/cgroup/${c}/sl-test-${tag}`);
  for (const cg of cgs) {
    mkdirSync(cg);
    extraCleanup.push(() => { try { rmdirSync(cg); } catch { /* busy or gone */ } });
  }
  const r = await run(['cat', '/proc/self/cgroup'], {}, { cgroupProcs: cgs.map((cg) => join(cg, 'cgroup.procs')) });
  assert.match(r.out, new RegExp(`pids:/sl-test-${tag}\\n`));
  assert.match(r.out, new RegExp(`devices:/sl-test-${tag}\\n`));
  for (const cg of cgs) rmdirSync(cg);
});

rootTest('runtime - a symlink out of the rootfs leads inside it, never to the host', async () => {
  const outside = join(T, 'outside');
  mkdirSync(outside);
  symlinkSync(outside, join(ROOTFS, 'evil'));
  extraCleanup.push(() => rmSync(join(ROOTFS, 'evil'), { force: true }));
  extraCleanup.push(() => rmSync(join(ROOTFS, outside.slice(1).split('/')[0]), { recursive: true, force: true }));
  // the link's target missing inside the rootfs: a clear error, nothing made on the host
  const id1 = newId('escape');
  try {
    await rt.start(id1, bundle(id1), createSpec(config(id1, ['true'], { mounts: [{ source: 'tmpfs', destination: '/evil/sub', type: 'tmpfs' }] })));
    assert.unreachable('start should fail');
  } catch (e) {
    assert.instance(e, SyscallError);
    assert.equal([(e as SyscallError).code, (e as SyscallError).path], ['ENOENT', `${ROOTFS}/evil/sub`]);
  }
  assert.equal(readdirSync(outside), [], 'something was created on the host through the symlink');
  // the target present inside the rootfs: the mount and the working dir land there
  mkdirSync(join(ROOTFS, outside), { recursive: true });
  const id2 = newId('escape');
  const spec = createSpec(config(id2, ['true'], { cwd: '/evil/work', mounts: [{ source: 'tmpfs', destination: '/evil/sub', type: 'tmpfs' }] }));
  assert.ok((await rt.start(id2, bundle(id2), spec)).pid > 0);
  await rt.waitExit(id2);
  assert.equal(readdirSync(outside), [], 'something was created on the host through the symlink');
  assert.ok(existsSync(join(ROOTFS, outside, 'sub')), 'the mount point was made inside the rootfs');
  assert.ok(existsSync(join(ROOTFS, outside, 'work')), 'the working dir was made inside the rootfs');
  rt.delete(id2);
  rmSync(join(ROOTFS, 'evil'));
});

rootTest('runtime - a read-only rootfs refuses writes but keeps its mounts writable', async () => {
  const r = await run(['sh', '-c', 'echo x > /newfile || echo rofs; echo y > /dev/shm/f && echo shm-ok'], { readonlyRootfs: true });
  assert.equal(r.out.trim().split('\n'), ['rofs', 'shm-ok']);
  assert.not.ok(existsSync(join(ROOTFS, 'newfile')));
});

rootTest('libc - mount and umount2 a tmpfs', () => {
  const dir = join(T, 'mnt');
  mkdirSync(dir);
  mount('tmpfs', dir, 'tmpfs', MS_NOSUID, 'size=1m,mode=700');
  try {
    assert.match(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${dir} .*nosuid.* - tmpfs `));
  } finally {
    umount2(dir, MNT_DETACH);
  }
  assert.not.match(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${dir} `));
});

rootTest('libc - failures throw SyscallError with errno name and path', () => {
  const dir = join(T, 'not-a-mount');
  mkdirSync(dir);
  try {
    umount2(dir);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, SyscallError);
    assert.equal([(e as SyscallError).syscall, (e as SyscallError).errno, (e as SyscallError).code, (e as SyscallError).path], ['umount2', 22, 'EINVAL', dir]);
    assert.is((e as SyscallError).message, `umount2 ${dir}: EINVAL (Invalid argument)`);
  }
  try {
    mount('tmpfs', join(T, 'missing'), 'tmpfs', 0);
    assert.unreachable();
  } catch (e) {
    assert.is((e as SyscallError).code, 'ENOENT');
  }
});

rootTest('runtime - a failed exec rejects with the step, errno and path, and leaves no state', async () => {
  const id = newId('noexec');
  try {
    await rt.start(id, bundle(id), createSpec(config(id, ['/bin/nope'])));
    assert.unreachable('start should fail');
  } catch (e) {
    assert.instance(e, SyscallError);
    const s = e as SyscallError;
    assert.equal([s.syscall, s.code, s.path], ['exec', 'ENOENT', '/bin/nope']);
    assert.is(s.message, 'exec /bin/nope: ENOENT (No such file or directory)');
  }
  assert.throws(() => rt.status(id), (e: unknown) => e instanceof RuntimeError && e.reason === 'not-found');
});

rootTest('runtime - a failed mount names the mount target', async () => {
  const id = newId('badmount');
  const spec = createSpec(config(id, ['true'], { mounts: [{ source: '/nonexistent-src', destination: '/x', type: 'nosuchfs', options: [] }] }));
  try {
    await rt.start(id, bundle(id), spec);
    assert.unreachable('start should fail');
  } catch (e) {
    assert.instance(e, SyscallError);
    assert.equal([(e as SyscallError).syscall, (e as SyscallError).code, (e as SyscallError).path], ['mount', 'ENODEV', `${ROOTFS}/x`]);
  }
});

rootTest('runtime - list, delete refuses a running container, waitExit aborts', async () => {
  const id = newId('life');
  await rt.start(id, bundle(id), createSpec(config(id, ['sleep', '30'])));
  assert.ok(rt.list().includes(id));
  assert.throws(() => rt.delete(id), (e: unknown) => e instanceof RuntimeError && e.reason === 'running');
  try {
    await rt.start(id, bundle(id), createSpec(config(id, ['true'])));
    assert.unreachable('a second start with the same id');
  } catch (e) { assert.ok(e instanceof RuntimeError && e.reason === 'exists', String(e)); }
  const ac = new AbortController();
  const w = rt.waitExit(id, ac.signal);
  ac.abort(new Error('stop waiting'));
  try { await w; assert.unreachable(); } catch (e) { assert.is((e as Error).message, 'stop waiting'); }
  rt.kill(id, 'SIGKILL');
  await rt.waitExit(id);
  rt.delete(id);
  assert.not.ok(rt.list().includes(id));
});

rootTest('runtime - waiters on one container share its watch: one aborted, the others get the exit', async () => {
  const id = newId('share');
  await rt.start(id, bundle(id), createSpec(config(id, ['sleep', '30'])));
  const a = new AbortController(), b = new AbortController();
  const first = rt.waitExit(id, a.signal);
  const gone = rt.waitExit(id, b.signal);
  const last = rt.waitExit(id);
  b.abort(new Error('this one stops'));
  try { await gone; assert.unreachable('an aborted waiter resolved'); } catch (e) { assert.is((e as Error).message, 'this one stops'); }
  // every waiter aborted but the last: the watch must still be there for it
  a.abort(new Error('and this one'));
  try { await first; assert.unreachable('an aborted waiter resolved'); } catch (e) { assert.is((e as Error).message, 'and this one'); }
  rt.kill(id, 'SIGKILL');
  const [x, y] = await Promise.all([withTimeout(last, 5000, 'the last waiter'), withTimeout(rt.waitExit(id), 5000, 'a waiter after the exit')]);
  assert.is(x.signal, 'SIGKILL');
  assert.equal(y, x);
  // all settled: a new run's watch is a new one (no stale waiter, nothing left open)
  rt.delete(id);
});

rootTest('runtime - several containers start concurrently', async () => {
  const ids = Array.from({ length: 6 }, () => newId('conc'));
  const started = await Promise.all(ids.map((id) => rt.start(id, bundle(id), createSpec(config(id, ['sh', '-c', 'echo $$'])))));
  assert.is(new Set(started.map((s) => s.pid)).size, ids.length);
  for (const id of ids) {
    assert.is((await withTimeout(rt.waitExit(id), 5000, id)).code, 0);
    assert.is(text(await logOf(id), 'stdout'), '1\n');
  }
});

rootTest('runtime - the same bundle runs under runc', async () => {
  const id = newId('runc');
  const b = bundle(id);
  const spec = createSpec(config(id, ['sh', '-c', 'echo $$; hostname; ls /sys/class/net'], { hostname: 'bundle-host' }));
  await rt.start(id, b, spec);
  await rt.waitExit(id);
  const ours = text(await logOf(id), 'stdout');
  const runcRoot = join(T, 'runc');
  extraCleanup.push(() => spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id]));
  const t0 = performance.now();
  const r = spawnSync('runc', ['--root', runcRoot, 'run', '-b', b, id], { encoding: 'utf8', timeout: 20_000 });
  const ms = performance.now() - t0;
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, ours);
  assert.is(ours, '1\nbundle-host\nlo\n');
  console.log(`  runc run (whole, for comparison): ${ms.toFixed(1)} ms`);
});

rootTest('runtime - timing of spawnContainer (printed, not asserted)', async () => {
  const times: number[] = [];
  const toExec: number[] = [];
  for (let i = 0; i < 21; i++) {
    const id = newId('time');
    const dir = rt.stateDir(id);
    mkdirSync(dir);
    const launch = encodeLaunch(createSpec(config(id, ['true'])), { stateDir: dir, logPath: join(dir, 'container.log'), cgroupProcs: [] });
    const t0 = performance.now();
    const t0wall = performance.timeOrigin + t0;
    const s = await spawnContainer(launch);
    if (i > 0) { times.push(performance.now() - t0); toExec.push(s.runningAt - t0wall); } // first run loads koffi
    await rt.waitExit(id);
    rt.delete(id);
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  console.log(`  spawnContainer(true), network none, 20 runs: median ${med(times).toFixed(2)} ms to resolve, ${med(toExec).toFixed(2)} ms to exec; min ${Math.min(...times).toFixed(2)}, max ${Math.max(...times).toFixed(2)}`);
});

test.run();
