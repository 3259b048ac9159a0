// Attacks from inside a default container: what Docker's defaults refuse must be refused
// here too (devices, seccomp, capabilities, rlimits, masked paths, oom score), and each
// opt-out the CLI will offer (--device, seccomp=unconfined or a profile, no-new-privileges)
// must do what it says. Drives the runtime directly with real cgroups; a static probe
// (test/fixtures/probe.c, built with gcc -static) makes the raw syscalls busybox lacks.
// Needs root; every container, cgroup and temp dir is removed at the end, even on failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Runtime, processStartTime, type ExitStatus } from '../agent/runtime/runtime.js';
import { DEFAULT_CAPS, createSpec, type ContainerConfig, type OciSpec } from '../agent/runtime/spec.js';
import { CAPABILITIES } from '../agent/runtime/launch.js';
import { deviceFromHost, parseDeviceFlag } from '../agent/runtime/host-device.js';
import { readLogFrom } from '../agent/runtime/logfile.js';
import { nofileHardCeiling } from '../agent/runtime/host-limits.js';
import { cgroupManager, detect, removeNodeGroup, type CgroupManager, type Detection } from '../agent/cgroups/index.js';
import { attachDeviceFilter } from '../native/cgroup-bpf.js';
import * as v2dev from '../agent/cgroups/v2/devices.js';
import { applyDeviceRules, defaultDeviceRules } from '../agent/cgroups/devices.js';

const isRoot = process.getuid?.() === 0;
const T = mkdtempSync(join(tmpdir(), 'sl-confine-'));
const ROOTFS = join(T, 'rootfs');
const rt = new Runtime(join(T, 'state'));
const tag = randomBytes(3).toString('hex');
const NODE = `confine-${tag}`;
const managers: CgroupManager[] = [];
const extraCleanup: (() => void)[] = [];
let det: Detection | undefined;
let seq = 0;

function buildRootfs(): string | undefined {
  mkdirSync(join(ROOTFS, 'bin'), { recursive: true });
  mkdirSync(join(ROOTFS, 'tmp'), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(ROOTFS, 'bin', 'busybox'));
  for (const app of ['sh', 'cat', 'grep', 'unshare', 'true', 'mkdir', 'id', 'echo', 'ls', 'wc']) symlinkSync('busybox', join(ROOTFS, 'bin', app));
  const src = fileURLToPath(new URL('../../test/fixtures/probe.c', import.meta.url));
  const cc = spawnSync('gcc', ['-static', '-O2', '-o', join(ROOTFS, 'bin', 'probe'), src], { encoding: 'utf8' });
  return cc.status === 0 ? undefined : `gcc -static failed (is libc6-dev installed?): ${cc.stderr}`;
}

let setupProblem: string | undefined;
test.before(() => {
  if (!isRoot) return;
  setupProblem = buildRootfs();
  det = detect();
});

test.after(async () => {
  for (const f of extraCleanup.splice(0)) { try { f(); } catch { /* best effort */ } }
  for (const id of rt.list()) {
    try {
      const st = rt.status(id);
      if (st.state === 'running' && st.pid && processStartTime(st.pid) !== undefined) process.kill(st.pid, 'SIGKILL');
    } catch { /* gone */ }
  }
  for (const m of managers) await m.remove({ kill: true }).catch(() => undefined);
  if (det) { try { removeNodeGroup(det, NODE); } catch { /* another test's group, or gone */ } }
  rmSync(T, { recursive: true, force: true });
});

const hostDet: Detection | undefined = isRoot ? (() => { try { return detect(); } catch { return undefined; } })() : undefined;

/**
 * A test that cannot run here says why and is counted as skipped, never as passed; the
 * setup's own failure (no static probe) is a failure.
 */
function rootTest(name: string, fn: () => Promise<void>, needs?: string): void {
  const why = !isRoot ? 'needs root (namespaces, cgroups, mknod)' : needs;
  if (why) {
    console.log(`  skipped "${name}": ${why}`);
    return void test.skip(name, () => undefined);
  }
  test(name, async () => {
    if (setupProblem) throw new Error(setupProblem);
    await fn();
  });
}

interface Ran { exit: ExitStatus; out: string; err: string }

/** Runs a container in its own cgroups (as the agent makes them), waits, returns its output. */
async function run(args: string[], over: Partial<ContainerConfig> = {}, o: { edit?: (s: OciSpec) => OciSpec; cgroupProcs?: string[] } = {}): Promise<Ran> {
  const id = `c${tag}-${seq++}`;
  let cgroupProcs = o.cgroupProcs;
  if (!cgroupProcs) {
    const m = cgroupManager(det!, NODE, id);
    managers.push(m);
    m.create();
    cgroupProcs = m.procsFiles();
  }
  const bundle = join(T, 'bundles', id);
  mkdirSync(bundle, { recursive: true });
  const cfg: ContainerConfig = { id, hostname: id, args, env: [], cwd: '/', network: { mode: 'none' }, rootfsPath: ROOTFS, ...over };
  let spec = createSpec(cfg);
  if (o.edit) spec = o.edit(spec);
  await rt.start(id, bundle, spec, { cgroupProcs });
  const exit = await rt.waitExit(id);
  const frames = (await readLogFrom(rt.defaultLogPath(id))).frames;
  const text = (s: string) => frames.filter((f) => f.stream === s).map((f) => f.data.toString()).join('');
  return { exit, out: text('stdout'), err: text('stderr') };
}

const sh = (script: string) => ['sh', '-c', script];
/** The probe lines as a map: { mknod: 'OK', open: 'EPERM' }. */
const kv = (out: string) => Object.fromEntries(out.trim().split('\n').filter(Boolean).map((l) => l.split('=') as [string, string]));

const HOSTILE: [string, string, number, number][] = [
  ['kvm', 'c', 10, 232], ['loop0', 'b', 7, 0], ['console', 'c', 5, 1], ['loop-control', 'c', 10, 237],
  ['fuse', 'c', 10, 229], ['kmsg', 'c', 1, 11], ['mem', 'c', 1, 1], ['tty0', 'c', 4, 0], ['sda', 'b', 8, 0],
];

async function probeDevices(over: Partial<ContainerConfig> = {}, cgroupProcs?: string[]): Promise<Record<string, Record<string, string>>> {
  // in the container's own /dev (a fresh tmpfs per container)
  const script = HOSTILE.map(([n, t, ma, mi]) => `echo "[${n}]"; probe dev ${t} ${ma} ${mi} /dev/probe-${n}`).join('; ') +
    '; for d in null zero full random urandom tty; do echo "[$d]"; probe open /dev/$d; done';
  const r = await run(sh(script), over, { ...(cgroupProcs ? { cgroupProcs } : {}) });
  const out: Record<string, Record<string, string>> = {};
  for (const part of r.out.split('[').slice(1)) {
    const [name, rest] = part.split(']');
    out[name!] = kv(rest!);
  }
  return out;
}

function assertDefaultDevices(res: Record<string, Record<string, string>>): void {
  for (const [n] of HOSTILE) {
    // mknod of any node is allowed (Docker's "c *:* m", "b *:* m"); using it is not
    assert.equal(res[n], { mknod: 'OK', open: 'EPERM' }, n);
  }
  for (const d of ['null', 'zero', 'full', 'random', 'urandom']) assert.equal(res[d], { open: 'OK' }, d);
  assert.equal(res.tty, { open: 'ENXIO' }, 'tty: allowed by the cgroup; no controlling terminal');
}

rootTest('devices - a default container can make host device nodes but open none of them (v1 or v2, as the host has it)', async () => {
  assertDefaultDevices(await probeDevices());
});

rootTest('devices - --device makes exactly that device usable, at the path asked', async () => {
  // /dev/kmsg (c 1:11) is in every kernel and outside the default list; opened write-only it
  // needs no capability, so only the device cgroup decides. The node is made here, so the
  // test does not depend on what the host's /dev holds; nothing is written to it.
  const node = join(T, 'kmsg');
  if (!existsSync(node)) mknodCharDev(node, 1, 11);
  const w = deviceFromHost(parseDeviceFlag(`${node}:/dev/extra:w`));
  const r = await run(sh('probe openw /dev/extra; probe open /dev/extra; probe dev c 10 232 /dev/kvm'), { devices: [w] });
  // w given: write-only open works, read-write does not; the rest stays closed
  assert.equal(r.out.trim().split('\n'), ['open=OK', 'open=EPERM', 'mknod=OK', 'open=EPERM'], r.err);
  const ro = deviceFromHost(parseDeviceFlag(`${node}:/dev/extra:r`));
  const r2 = await run(sh('probe openw /dev/extra'), { devices: [ro] });
  assert.is(r2.out, 'open=EPERM\n');
  const none = await run(sh('probe openw /dev/extra'), { devices: [] });
  assert.match(none.out, /open=ENOENT/);
});

/** mknod(2) of a character device on the host (Node has no mknod): through the probe itself. */
function mknodCharDev(path: string, major: number, minor: number): void {
  const r = spawnSync(join(ROOTFS, 'bin', 'probe'), ['dev', 'c', String(major), String(minor), path], { encoding: 'utf8' });
  if (!/mknod=OK/.test(r.stdout)) throw new Error(`mknod ${path}: ${r.stdout}${r.stderr}`);
}

rootTest('devices v1 - the agent-side path writes the same rules (devices.list shows them)', async () => {
  const dir = join(det!.mounts.devices!, `sl-confine-list-${tag}`);
  mkdirSync(dir);
  extraCleanup.push(() => { try { rmdirSync(dir); } catch { /* gone */ } });
  applyDeviceRules({ version: 'v1', dir }, defaultDeviceRules());
  const list = readFileSync(join(dir, 'devices.list'), 'utf8').trim().split('\n').sort();
  assert.equal(list, ['b *:* m', 'c *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 136:* rwm', 'c 5:0 rwm', 'c 5:2 rwm'].sort());
  rmdirSync(dir);
}, hostDet?.mounts.devices && hostDet.kind !== 'v2' ? undefined : 'needs a v1 devices hierarchy');

rootTest('devices - cgroups given but none that can hold device rules: the start is refused', async () => {
  const pids = join(det!.mounts.pids!, `sl-confine-${tag}`);
  mkdirSync(pids);
  extraCleanup.push(() => { try { rmdirSync(pids); } catch { /* gone */ } });
  try {
    await run(['true'], {}, { cgroupProcs: [join(pids, 'cgroup.procs')] });
    assert.unreachable('started without device rules');
  } catch (e) {
    assert.match((e as Error).message, /no devices cgroup/);
  }
  rmdirSync(pids);
}, hostDet && hostDet.kind !== 'v2' && hostDet.mounts.pids ? undefined : 'needs cgroup v1 (a v2 group always holds device rules)');

rootTest('devices v2 - the BPF program confines a container in a cgroup2 group (the hybrid host\'s cgroup2 proves it here)', async () => {
  const dir = join(det!.unified!, `sl-confine-bpf-${tag}`);
  mkdirSync(dir);
  extraCleanup.push(() => { try { rmdirSync(dir); } catch { /* gone */ } });
  // Runtime.start sees cgroup.controllers, so this group gets the BPF program, not v1 lines.
  assertDefaultDevices(await probeDevices({}, [join(dir, 'cgroup.procs')]));
  // a program the verifier refuses is a clear error, not a silent pass
  const bad = Buffer.from(v2dev.program(defaultDeviceRules()).subarray(0, 8 * 6)); // no exit
  assert.throws(() => attachDeviceFilter(dir, bad), /BPF_PROG_LOAD/);
  // the agent-side path (outside a start) attaches the same program
  applyDeviceRules({ version: 'v2', dir }, defaultDeviceRules());
  assertDefaultDevices(await probeDevices({}, [join(dir, 'cgroup.procs')]));
  rmdirSync(dir);
}, hostDet?.unified ? undefined : 'needs a cgroup2 mount');

rootTest('devices v2 - on a pure cgroup v2 host the agent\'s own group gets the program', async () => {
  assert.is(det!.kind, 'v2');
  assertDefaultDevices(await probeDevices());
}, hostDet?.kind === 'v2' ? undefined : 'needs pure cgroup v2 (run in ops/vm lane)');

rootTest('seccomp - default profile: unshare -U, keyctl and clone(CLONE_NEWUSER) are refused', async () => {
  const r = await run(sh('unshare -U true; echo unshare=$?; probe keyctl; probe clone-newuser; probe mkdir /tmp/ok'));
  const res = kv(r.out);
  assert.is.not(res.unshare, '0', r.err);
  assert.match(r.err, /Operation not permitted/);
  assert.is(res.keyctl, 'EPERM');
  assert.is(res.clone, 'EPERM');
  assert.is(res.mkdir, 'OK');
});

rootTest('seccomp - unconfined: the same calls are allowed', async () => {
  const r = await run(sh('unshare -U true; echo unshare=$?; probe keyctl; probe clone-newuser'), { seccomp: 'unconfined' });
  assert.equal(kv(r.out), { unshare: '0', keyctl: 'OK', clone: 'OK' }, r.err);
});

rootTest('seccomp - a config.json with its own profile is honoured (deny mkdir), by us and by runc', async () => {
  const custom = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
  // as a bundle's config.json would arrive: JSON text, parsed
  const edit = (s: OciSpec): OciSpec => JSON.parse(JSON.stringify({ ...s, linux: { ...s.linux, seccomp: custom } }));
  const r = await run(sh('probe mkdir /tmp/x; probe keyctl'), {}, { edit });
  assert.equal(kv(r.out), { mkdir: 'EPERM', keyctl: 'OK' });
  const runcRoot = join(T, 'runc');
  const id = `c${tag}-${seq - 1}`;
  extraCleanup.push(() => spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id]));
  const rr = spawnSync('runc', ['--root', runcRoot, 'run', '-b', join(T, 'bundles', id), id], { encoding: 'utf8', timeout: 20_000 });
  assert.is(rr.status, 0, rr.stderr);
  assert.equal(kv(rr.stdout), { mkdir: 'EPERM', keyctl: 'OK' });
});

const statusOf = (out: string, key: string) => new RegExp(`^${key}:\\s*(\\S+)`, 'm').exec(out)?.[1];
const DEFAULT_MASK = DEFAULT_CAPS.reduce((m, c) => m | (1n << BigInt(CAPABILITIES[c]!)), 0n);

rootTest('capabilities - inheritable and ambient empty, bounding = effective = Docker\'s set, NoNewPrivs off unless asked', async () => {
  const r = await run(['cat', '/proc/self/status']);
  assert.is(statusOf(r.out, 'CapInh'), '0000000000000000');
  assert.is(statusOf(r.out, 'CapAmb'), '0000000000000000');
  assert.is(BigInt(`0x${statusOf(r.out, 'CapBnd')}`), DEFAULT_MASK);
  assert.is(BigInt(`0x${statusOf(r.out, 'CapEff')}`), DEFAULT_MASK);
  assert.is(statusOf(r.out, 'NoNewPrivs'), '0');
  assert.is(statusOf(r.out, 'Seccomp'), '2');
  const n = await run(['cat', '/proc/self/status'], { noNewPrivileges: true });
  assert.is(statusOf(n.out, 'NoNewPrivs'), '1');
  assert.is(statusOf(n.out, 'Seccomp'), '2', 'with no_new_privs the filter is loaded after the privileges are gone');
  const u = await run(['cat', '/proc/self/status'], { user: { uid: 1000, gid: 1000 } });
  assert.equal(['CapInh', 'CapPrm', 'CapEff', 'CapAmb'].map((k) => statusOf(u.out, k)), Array(4).fill('0000000000000000'));
  const un = await run(['cat', '/proc/self/status'], { seccomp: 'unconfined' });
  assert.is(statusOf(un.out, 'Seccomp'), '0');
});

rootTest('limits - NOFILE 1024 by default (not the agent\'s), --ulimit values, oom_score_adj', async () => {
  const r = await run(sh('ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj'));
  const hard = Math.min(524288, nofileHardCeiling() ?? 524288);
  assert.equal(r.out.trim().split('\n'), ['1024', String(hard), '0']);
  const u = await run(sh('ulimit -n; ulimit -u; cat /proc/self/oom_score_adj'), {
    rlimits: [{ type: 'RLIMIT_NOFILE', soft: 77, hard: 100 }, { type: 'RLIMIT_NPROC', soft: 33, hard: 33 }], oomScoreAdj: 500,
  });
  assert.equal(u.out.trim().split('\n'), ['77', '33', '500']);
});

rootTest('masked paths - /proc/interrupts and the rest of moby\'s list read empty, /proc/sys is read-only', async () => {
  // only the files this kernel has: a missing one needs no mask
  const files = ['interrupts', 'kcore', 'keys', 'timer_list', 'sched_debug', 'latency_stats', 'timer_stats'].filter((f) => existsSync(`/proc/${f}`));
  assert.ok(files.includes('interrupts'));
  assert.ok(readFileSync('/proc/interrupts', 'utf8').length > 0, 'the host file is not empty, so the mask is what hides it');
  const r = await run(sh(`for f in ${files.join(' ')}; do echo "$f=$(cat /proc/$f | wc -c)"; done; ` +
    'echo acpi=$(ls -A /proc/acpi | wc -l); echo 1 > /proc/sys/kernel/ns_last_pid; echo sysw=$?'));
  const res = kv(r.out);
  for (const f of files) assert.is(res[f], '0', `${f}: ${r.err}`);
  assert.is(res.acpi, '0');
  assert.is.not(res.sysw, '0');
  assert.match(r.err, /Read-only file system/);
});

test.run();
