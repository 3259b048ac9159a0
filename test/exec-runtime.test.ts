// exec at the runtime level: a process joins a running container through sl-monitor
// (native/src/monitor/monitor_exec.c). Real namespaces, cgroups and processes; needs root.
// Everything lives under a temp dir and one cgroup node of its own; every container and
// exec is killed and its groups removed at the end, even when a test fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { closeSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Runtime, processStartTime, type ExitStatus } from '../agent/runtime/runtime.js';
import { createSpec, type ContainerConfig } from '../agent/runtime/spec.js';
import { readLogFrom } from '../agent/runtime/logfile.js';
import { encodeExecLaunch, mergeEnv, type ExecProcess } from '../agent/runtime/exec-launch.js';
import { decodeLaunch, LaunchError } from '../agent/runtime/launch.js';
import { SyscallError } from '../native/errors.js';
import { cgroupManager, detect, removeNodeGroup, type CgroupManager } from '../agent/cgroups/index.js';

const isRoot = process.getuid?.() === 0;
const T = mkdtempSync(join(tmpdir(), 'sl-exec-'));
const ROOTFS = join(T, 'rootfs');
const rt = new Runtime(join(T, 'state'));
const tag = randomBytes(3).toString('hex');
const NODE = `texec${tag}`;
const groups: CgroupManager[] = [];
let seq = 0;

function buildRootfs(): void {
  mkdirSync(join(ROOTFS, 'bin'), { recursive: true });
  mkdirSync(join(ROOTFS, 'etc'), { recursive: true });
  mkdirSync(join(ROOTFS, 'tmp'), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(ROOTFS, 'bin', 'busybox'));
  for (const app of ['sh', 'ps', 'hostname', 'cat', 'ls', 'sleep', 'true', 'false', 'echo', 'id', 'readlink', 'env', 'pwd', 'grep']) {
    symlinkSync('busybox', join(ROOTFS, 'bin', app));
  }
  writeFileSync(join(ROOTFS, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  writeFileSync(join(ROOTFS, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\nalice:x:1000:\nwheel:x:10:alice,bob\n');
  writeFileSync(join(ROOTFS, 'etc/marker'), 'the container rootfs\n');
}

/** A running `sleep` container in cgroups of its own; returns its id, groups and pid. */
async function sleeper(over: Partial<ContainerConfig> = {}): Promise<{ id: string; pid: number; procs: string[]; spec: ReturnType<typeof createSpec> }> {
  const id = `t${tag}-c${seq++}`;
  const m = cgroupManager(detect(), NODE, id);
  m.create();
  groups.push(m);
  const b = join(T, 'bundles', id);
  mkdirSync(b, { recursive: true });
  const spec = createSpec({ id, hostname: `box-${tag}`, args: ['sleep', '1000'], env: ['PATH=/bin', 'FROMCTR=1'], cwd: '/', network: { mode: 'none' }, rootfsPath: ROOTFS, ...over });
  const r = await rt.start(id, b, spec, { cgroupProcs: m.procsFiles() });
  return { id, pid: r.pid, procs: m.procsFiles(), spec };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => { t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms); })]).finally(() => clearTimeout(t));
}

async function exec(c: { id: string; procs: string[]; spec: ReturnType<typeof createSpec> }, p: ExecProcess, stdin?: string):
  Promise<{ exit: ExitStatus; out: string; err: string; pid: number }> {
  const execId = randomBytes(32).toString('hex');
  const r = await rt.exec(c.id, execId, c.spec, p, c.procs);
  if (r.stdinFd !== undefined) {
    if (stdin) writeSync(r.stdinFd, stdin);
    closeSync(r.stdinFd);
  }
  const exit = await withTimeout(rt.waitExecExit(c.id, execId), 10_000, `exit of exec ${p.args.join(' ')}`);
  const frames = (await readLogFrom(join(rt.execDir(c.id, execId), 'exec.log'))).frames;
  const text = (s: string) => frames.filter((f) => f.stream === s).map((f) => f.data.toString()).join('');
  rt.deleteExec(c.id, execId);
  return { exit, out: text('stdout'), err: text('stderr'), pid: r.pid };
}

async function execFails(c: Parameters<typeof exec>[0], p: ExecProcess): Promise<Error> {
  try { await exec(c, p); } catch (err) { return err as Error; }
  throw new Error(`exec ${JSON.stringify(p)} did not fail`);
}

async function cleanupAll(): Promise<void> {
  for (const id of rt.list()) {
    try { const st = rt.status(id); if (st.state === 'running' && st.pid) process.kill(st.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const m of groups) { try { await m.remove({ kill: true }); } catch { /* best effort */ } }
  try { await removeNodeGroup(detect(), NODE); } catch { /* best effort */ }
  const deadline = Date.now() + 3000;
  for (const id of rt.list()) {
    while (Date.now() < deadline) {
      try { if (rt.status(id).state !== 'running') break; } catch { break; }
      spawnSync('sleep', ['0.05']);
    }
  }
  rmSync(T, { recursive: true, force: true });
}

test.before(() => { if (isRoot) buildRootfs(); });
test.after(cleanupAll);

function rootTest(name: string, fn: () => Promise<void> | void): void {
  if (isRoot) { test(name, fn); return; }
  // counted as skipped, never as passed, with its reason
  console.log(`  skipped "${name}": needs root (setns, cgroups)`);
  test.skip(name, fn);
}

// ---- the pure part ----
test('exec launch - takes the container\'s privileges, the exec\'s command, env on top', () => {
  const spec = createSpec({ id: 'x', hostname: 'h', args: ['sleep', '1'], env: ['PATH=/bin', 'A=1'], cwd: '/srv', network: { mode: 'none' }, rootfsPath: '/r', noNewPrivileges: true });
  const l = decodeLaunch(encodeExecLaunch(spec, { args: ['id'], env: ['A=2', 'B=3'] }, { stateDir: '/s', logPath: '/s/l', pid: 42, pidStart: 7, cgroupProcs: ['/sys/fs/cgroup/x/cgroup.procs'] }));
  assert.equal(l.args, ['id']);
  assert.equal(l.env, [...(spec.process.env ?? []).filter((e) => !e.startsWith('A=')), 'A=2', 'B=3']);
  assert.is(l.cwd, '/srv');
  assert.is(l.noNewPrivileges, true);
  assert.ok(l.caps && l.caps.bounding > 0n, 'the container\'s capability sets');
  assert.ok(l.seccomp, 'the container\'s seccomp program');
  assert.equal(l.cgroupProcs, ['/sys/fs/cgroup/x/cgroup.procs']);
  assert.equal(l.exec, { pid: 42, pidStart: 7 });
  assert.is(l.user, '0:0');
  assert.equal(l.mounts, []);
  assert.equal(l.namespaces, []);
  assert.equal(mergeEnv(['A=1', 'B=2'], ['B=3']), ['A=1', 'B=3']);
});

test('exec launch - NUL bytes, bad users, relative workdirs and empty commands are refused with the field', () => {
  const spec = createSpec({ id: 'x', hostname: 'h', args: ['sleep', '1'], env: [], cwd: '/', network: { mode: 'none' }, rootfsPath: '/r' });
  const t = { stateDir: '/s', logPath: '/s/l', pid: 42, pidStart: 7, cgroupProcs: [] };
  const bad: [ExecProcess, RegExp][] = [
    [{ args: ['/bin/s\0h'] }, /args\[0\]: contains a NUL byte/],
    [{ args: ['sh'], env: ['A=\0'] }, /env\[0\]: contains a NUL byte/],
    [{ args: ['sh'], env: ['NOEQUALS'] }, /env\[0\]: not K=V/],
    [{ args: ['sh'], workdir: 'tmp' }, /workdir: not an absolute path/],
    [{ args: ['sh'], workdir: '/t\0mp' }, /workdir: contains a NUL byte/],
    [{ args: [] }, /args: no command given/],
    [{ args: ['sh'], user: 'a b' }, /user: not user\[:group\]/],
    [{ args: ['sh'], user: 'root:' }, /user: not user\[:group\]/],
    [{ args: ['sh'], user: '../../etc' }, /user: not user\[:group\]/],
    [{ args: ['sh'], env: [`A=${'x'.repeat(200 << 10)}`] }, /env\[0\]: longer than/],
  ];
  for (const [p, re] of bad) {
    try { encodeExecLaunch(spec, p, t); assert.unreachable(`accepted ${JSON.stringify(p).slice(0, 80)}`); } catch (err) {
      assert.instance(err, LaunchError);
      assert.match((err as Error).message, re);
    }
  }
});

// ---- real ----
rootTest('exec - joins the pid namespace: ps shows sleep as pid 1 and ps itself, nothing of the host', async () => {
  const c = await sleeper();
  const r = await exec(c, { args: ['ps', '-o', 'pid,comm'] });
  assert.is(r.exit.code, 0, r.err);
  const rows = r.out.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  assert.equal(rows.find((x) => x[0] === '1')?.[1], 'sleep', r.out);
  assert.ok(rows.some((x) => x[1] === 'ps'), r.out);
  assert.is(rows.length, 2, `only sleep and ps: ${r.out}`);
  // the exec's host pid is a child of its monitor, not of the agent
  assert.ok(r.pid > 1 && r.pid !== process.pid);
});

rootTest('exec - sees the container\'s hostname, rootfs, namespaces and cgroup', async () => {
  const c = await sleeper();
  const r = await exec(c, { args: ['sh', '-c', 'hostname; cat /etc/marker; for n in pid mnt uts ipc net; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup'] });
  assert.is(r.exit.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.is(lines[0], `box-${tag}`);
  assert.is(lines[1], 'the container rootfs');
  const ns = ['pid', 'mnt', 'uts', 'ipc', 'net'];
  ns.forEach((n, i) => assert.is(lines[2 + i], readlinkSync(`/proc/${c.pid}/ns/${n}`), `${n} namespace is the container's`));
  // every hierarchy line names the container's group, as the container's own init sees it
  const cg = lines.slice(7).filter((l) => !l.endsWith(':/'));
  const initCg = readFileSync(`/proc/${c.pid}/cgroup`, 'utf8').trim().split('\n').filter((l) => !l.endsWith(':/'));
  assert.ok(cg.length > 0, r.out);
  assert.equal(cg.sort(), initCg.sort(), 'the same cgroups as the container\'s init');
  assert.ok(cg.every((l) => l.includes(c.id)), r.out);
});

rootTest('exec - exit codes propagate: 0, 1, 42, 127 from the shell, 143 for a signal', async () => {
  const c = await sleeper();
  assert.is((await exec(c, { args: ['true'] })).exit.code, 0);
  assert.is((await exec(c, { args: ['false'] })).exit.code, 1);
  assert.is((await exec(c, { args: ['sh', '-c', 'exit 42'] })).exit.code, 42);
  assert.is((await exec(c, { args: ['sh', '-c', 'nope-cmd'] })).exit.code, 127);
  const k = await exec(c, { args: ['sh', '-c', 'kill -TERM $$'] });
  assert.is(k.exit.code, 143);
  assert.is(k.exit.signal, 'SIGTERM');
});

rootTest('exec - env, workdir and user: the container\'s env with -e on top, HOME and groups from its /etc/passwd', async () => {
  const c = await sleeper();
  const r = await exec(c, { args: ['sh', '-c', 'echo $FROMCTR $K $HOME; pwd; id'], env: ['K=V'], workdir: '/tmp', user: 'alice' });
  assert.is(r.exit.code, 0, r.err);
  const [env, pwd, id] = r.out.trim().split('\n');
  assert.is(env, `1 V ${c.spec.process.env?.find((e) => e.startsWith('HOME='))?.slice(5) ?? '/home/alice'}`, 'the container\'s HOME when it has one (as runc)');
  assert.is(pwd, '/tmp');
  assert.match(id!, /^uid=1000\(alice\) gid=1000\(alice\) groups=(1000\(alice\),)?10\(wheel\)/);
  const n = await exec(c, { args: ['id'], user: '4242:10' });
  assert.match(n.out, /^uid=4242 gid=10\(wheel\)/);
  const nobody = await exec(c, { args: ['id', '-u'], user: 'nobody' });
  assert.is(nobody.out.trim(), '65534');
});

rootTest('exec - a user-run exec has no capabilities, root keeps the container\'s; seccomp and no_new_privs hold', async () => {
  const c = await sleeper({ noNewPrivileges: true });
  const root = await exec(c, { args: ['sh', '-c', 'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status'] });
  const init = Object.fromEntries(readFileSync(`/proc/${c.pid}/status`, 'utf8').split('\n').map((l) => l.split(':\t')));
  const got = Object.fromEntries(root.out.trim().split('\n').map((l) => l.split(':\t')));
  assert.is(got.CapEff, init.CapEff);
  assert.is(got.CapBnd, init.CapBnd);
  assert.is(got.NoNewPrivs, '1');
  assert.is(got.Seccomp, '2');
  const user = await exec(c, { args: ['grep', 'CapEff', '/proc/self/status'], user: 'nobody' });
  assert.match(user.out, /CapEff:\t0+\n/);
  // the container's seccomp profile: no unshare for an exec either
  const un = await exec(c, { args: ['sh', '-c', 'unshare -m true; echo rc=$?'] });
  assert.match(un.out + un.err, /rc=[1-9]/);
});

rootTest('exec - stdin reaches the process; closing it is its EOF', async () => {
  const c = await sleeper();
  const r = await exec(c, { args: ['sh', '-c', 'cat; echo done'], stdin: true }, 'hello\nworld\n');
  assert.is(r.out, 'hello\nworld\ndone\n');
});

rootTest('exec - failures are one line: missing command, junk user, missing group, bad workdir, stopped container', async () => {
  const c = await sleeper();
  const e1 = await execFails(c, { args: ['/no/such/cmd'] });
  assert.instance(e1, SyscallError);
  assert.is((e1 as SyscallError).syscall, 'exec');
  assert.is((e1 as SyscallError).code, 'ENOENT');
  const e2 = await execFails(c, { args: ['id'], user: 'junkuser' });
  assert.is((e2 as SyscallError).syscall, 'getpwnam');
  assert.is((e2 as SyscallError).path, 'junkuser');
  const e3 = await execFails(c, { args: ['id'], user: 'root:nogroupnamed' });
  assert.is((e3 as SyscallError).syscall, 'getgrnam');
  const e4 = await execFails(c, { args: ['id'], workdir: '/no/such/dir' });
  assert.is((e4 as SyscallError).syscall, 'chdir');
  // a failed exec leaves nothing behind in the container's state
  assert.equal(spawnSync('ls', [join(rt.stateDir(c.id), 'exec')], { encoding: 'utf8' }).stdout.trim(), '');
  process.kill(c.pid, 'SIGKILL');
  await withTimeout(rt.waitExit(c.id), 5000, 'exit');
  const e5 = await execFails(c, { args: ['true'] });
  assert.match(e5.message, /is not running/);
  assert.ok(processStartTime(c.pid) === undefined);
});

rootTest('exec - attack: an image whose /etc/passwd links to a host file: the link resolves inside the container', async () => {
  // a second rootfs whose /etc/passwd is an absolute symlink to a host file naming a user
  const evil = join(T, 'evil-rootfs');
  spawnSync('cp', ['-a', ROOTFS, evil]);
  const hostFile = join(T, 'host-passwd');
  writeFileSync(hostFile, 'hostonly:x:4711:4711::/:/bin/sh\n');
  rmSync(join(evil, 'etc/passwd'));
  symlinkSync(hostFile, join(evil, 'etc/passwd'));
  const c = await sleeper({ rootfsPath: evil });
  const e = await execFails(c, { args: ['id'], user: 'hostonly' });
  assert.instance(e, SyscallError);
  assert.is((e as SyscallError).syscall, 'getpwnam', e.message);
  // numeric users still work without a passwd file the container can read
  assert.is((await exec(c, { args: ['id', '-u'], user: '4711' })).out.trim(), '4711');
});

rootTest('exec - a container on the host network: the exec shares it (nothing to join), the rest is the container\'s', async () => {
  const c = await sleeper({ network: { mode: 'host' } });
  const r = await exec(c, { args: ['sh', '-c', 'readlink /proc/self/ns/net; readlink /proc/self/ns/pid'] });
  assert.is(r.exit.code, 0, r.err);
  const [net, pid] = r.out.trim().split('\n');
  assert.is(net, readlinkSync('/proc/self/ns/net'));
  assert.is(pid, readlinkSync(`/proc/${c.pid}/ns/pid`));
});

rootTest('exec - into a frozen container: the monitor gives up after its wait instead of holding the caller', async () => {
  const c = await sleeper();
  const m = groups[groups.length - 1]!;
  await m.freeze(true);
  try {
    const t0 = Date.now();
    const e = await execFails(c, { args: ['true'] });
    assert.match(e.message, /ETIMEDOUT/);
    assert.ok(Date.now() - t0 < 15000);
  } finally { await m.freeze(false); }
});

rootTest('exec - a huge environment: E2BIG from execve, one line', async () => {
  const c = await sleeper();
  const env = Array.from({ length: 40 }, (_, i) => `V${i}=${'x'.repeat(100 << 10)}`);
  const e = await execFails(c, { args: ['true'], env });
  assert.instance(e, SyscallError);
  assert.is((e as SyscallError).code, 'E2BIG');
});

test.run();
