// Pure tests of the confinement encoders (no root): the seccomp compiler (run through an
// interpreter of the program it emits), Docker's default profile as resolved for a
// container, the device rules (v1 lines and the v2 BPF program, also interpreted), the
// spec defaults and the launch tokens that carry them to sl-monitor.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, RET, SeccompError, compileSeccomp, runFilter } from '../agent/runtime/seccomp/compile.js';
import { CLONE_NAMESPACE_FLAGS, defaultSeccomp } from '../agent/runtime/seccomp/default-profile.js';
import { I386, X86_64 } from '../agent/runtime/seccomp/syscalls-x86.js';
import type { OciSeccomp } from '../agent/runtime/seccomp/types.js';
import { DEFAULT_CAPS, DEFAULT_RLIMITS, SpecError, createSpec, resolveCaps, type ContainerConfig } from '../agent/runtime/spec.js';
import { LaunchError, compiledSeccomp, decodeLaunch, encodeLaunch, RLIMITS } from '../agent/runtime/launch.js';
import { parseDeviceFlag, deviceFromHost } from '../agent/runtime/host-device.js';
import { defaultDeviceRules, deviceLaunch, ruleLine } from '../agent/cgroups/devices.js';
import * as v1dev from '../agent/cgroups/v1/devices.js';
import * as v2dev from '../agent/cgroups/v2/devices.js';
import { CgroupError } from '../agent/cgroups/errors.js';

const EPERM = (RET.ERRNO | 1) >>> 0, ENOSYS = (RET.ERRNO | 38) >>> 0;
const CLONE_NEWUSER = 0x10000000, CLONE_NEWNS = 0x20000, CLONE_NEWNET = 0x40000000;
const FORK_FLAGS = 0x01200011; // CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD, what glibc's fork passes
const THREAD_FLAGS = 0x3d0f00;  // pthread_create's

const dflt = compileSeccomp(defaultSeccomp(DEFAULT_CAPS, 'amd64'), 'SCMP_ARCH_X86_64').program;
const x64 = (name: string, ...args: (number | bigint)[]) => runFilter(dflt, { arch: AUDIT_ARCH_X86_64, nr: X86_64[name]!, args });

test('seccomp default - ordinary syscalls allowed, keyctl and namespace calls refused with EPERM', () => {
  for (const n of ['read', 'write', 'openat', 'execve', 'mmap', 'futex', 'exit_group', 'mknodat', 'setuid', 'capset', 'prctl', 'seccomp']) {
    assert.is(x64(n), RET.ALLOW, n);
  }
  for (const n of ['keyctl', 'add_key', 'request_key', 'unshare', 'setns', 'mount', 'umount2', 'pivot_root', 'bpf', 'perf_event_open',
    'init_module', 'kexec_load', 'reboot', 'swapon', 'userfaultfd', 'open_by_handle_at', 'acct', 'clock_settime', 'syslog']) {
    assert.is(x64(n), EPERM, n);
  }
  assert.is(x64('ptrace'), RET.ALLOW, 'ptrace: allowed on kernels >= 4.8, as Docker does');
  assert.is(x64('chroot'), RET.ALLOW, 'CAP_SYS_CHROOT is in the default set');
});

test('seccomp default - clone: fork and threads pass, any namespace flag does not; clone3 is ENOSYS', () => {
  assert.is(x64('clone', FORK_FLAGS), RET.ALLOW);
  assert.is(x64('clone', THREAD_FLAGS), RET.ALLOW);
  for (const f of [CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NAMESPACE_FLAGS]) assert.is(x64('clone', FORK_FLAGS | f), EPERM, f.toString(16));
  // bits above 32 are not namespace flags: the comparison is on all 64 bits of the mask
  assert.is(x64('clone', (1n << 40n) | BigInt(FORK_FLAGS)), RET.ALLOW);
  assert.is(x64('clone3'), ENOSYS);
});

test('seccomp default - personality and socket argument rules', () => {
  for (const p of [0, 8, 0x20000, 0x20008, 0xffffffff]) assert.is(x64('personality', p), RET.ALLOW, String(p));
  assert.is(x64('personality', 0x0040000), EPERM, 'ADDR_NO_RANDOMIZE');
  assert.is(x64('personality', 0x1_0000_0000n), EPERM, 'high word counts');
  assert.is(x64('socket', 2), RET.ALLOW, 'AF_INET');
  assert.is(x64('socket', 40), EPERM, 'AF_VSOCK');
  assert.is(x64('socket', 40n | (1n << 32n)), RET.ALLOW, 'not 40 on 64 bits');
});

test('seccomp default - numbers past the table are ENOSYS (libc falls back), x32 is ENOSYS, other arches are killed', () => {
  const max = Math.max(...Object.values(X86_64));
  assert.is(runFilter(dflt, { arch: AUDIT_ARCH_X86_64, nr: max + 1 }), ENOSYS);
  assert.is(runFilter(dflt, { arch: AUDIT_ARCH_X86_64, nr: 0x3fffffff }), ENOSYS);
  assert.is(runFilter(dflt, { arch: AUDIT_ARCH_X86_64, nr: 0x40000000 | X86_64.read! }), ENOSYS, 'x32 read');
  assert.is(runFilter(dflt, { arch: AUDIT_ARCH_X86_64, nr: -1 }), ENOSYS);
  assert.is(runFilter(dflt, { arch: 0xc00000b7 /* aarch64 */, nr: 0 }), RET.KILL_PROCESS);
  // i386 has its own numbers: keyctl is 288 there, 250 on x86_64
  assert.is(runFilter(dflt, { arch: AUDIT_ARCH_I386, nr: I386.keyctl! }), EPERM);
  assert.is(runFilter(dflt, { arch: AUDIT_ARCH_I386, nr: I386.read! }), RET.ALLOW);
  assert.is(runFilter(dflt, { arch: AUDIT_ARCH_I386, nr: I386.socketcall! }), RET.ALLOW);
});

test('seccomp default - every name of the profile gets the action it asks for', () => {
  const prof = defaultSeccomp(DEFAULT_CAPS, 'amd64');
  for (const r of prof.syscalls!) {
    if (r.args?.length) continue;
    for (const n of r.names) {
      if (X86_64[n] === undefined || prof.syscalls!.some((o) => o !== r && o.names.includes(n))) continue;
      assert.is(x64(n), r.action === 'SCMP_ACT_ALLOW' ? RET.ALLOW : (RET.ERRNO | (r.errnoRet ?? 1)) >>> 0, n);
    }
  }
  // a balanced tree: far fewer instructions than one comparison per syscall per arch would need
  assert.ok(dflt.length / 8 < 1200, `${dflt.length / 8} instructions`);
});

test('seccomp default - CAP_SYS_ADMIN brings unshare, mount and any clone back (as Docker does)', () => {
  const p = compileSeccomp(defaultSeccomp([...DEFAULT_CAPS, 'CAP_SYS_ADMIN'], 'amd64'), 'SCMP_ARCH_X86_64').program;
  const run = (n: string, ...a: number[]) => runFilter(p, { arch: AUDIT_ARCH_X86_64, nr: X86_64[n]!, args: a });
  assert.is(run('unshare', CLONE_NEWUSER), RET.ALLOW);
  assert.is(run('mount'), RET.ALLOW);
  assert.is(run('clone', FORK_FLAGS | CLONE_NEWUSER), RET.ALLOW);
  assert.is(run('clone3'), RET.ALLOW);
  assert.is(run('keyctl'), EPERM);
  // and without CAP_SYS_CHROOT, chroot goes
  const q = compileSeccomp(defaultSeccomp(DEFAULT_CAPS.filter((c) => c !== 'CAP_SYS_CHROOT'), 'amd64'), 'SCMP_ARCH_X86_64').program;
  assert.is(runFilter(q, { arch: AUDIT_ARCH_X86_64, nr: X86_64.chroot! }), EPERM);
});

test('seccomp compiler - a deny-list profile (default allow) denies only what it names', () => {
  const p = compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }).program;
  const run = (n: string) => runFilter(p, { arch: AUDIT_ARCH_X86_64, nr: X86_64[n]! });
  assert.is(run('mkdir'), (RET.ERRNO | 13) >>> 0);
  assert.is(run('mkdirat'), (RET.ERRNO | 13) >>> 0);
  assert.is(run('keyctl'), RET.ALLOW);
  assert.is(runFilter(p, { arch: AUDIT_ARCH_X86_64, nr: 999 }), RET.ALLOW, 'default allow also past the table');
  assert.is(runFilter(p, { arch: AUDIT_ARCH_X86_64, nr: 0x40000000 | X86_64.mkdir! }), ENOSYS, 'x32 cannot go around the rule');
});

test('seccomp compiler - 64-bit comparisons agree with BigInt on edge values', () => {
  const vals = [0n, 1n, 0xffffffffn, 0x100000000n, 0x100000001n, 0xfffffffffffffffen, 0xffffffffffffffffn, 0x7fffffff_80000000n, 0x80000000_7fffffffn];
  const ops = { SCMP_CMP_EQ: (a: bigint, b: bigint) => a === b, SCMP_CMP_NE: (a: bigint, b: bigint) => a !== b, SCMP_CMP_LT: (a: bigint, b: bigint) => a < b,
    SCMP_CMP_LE: (a: bigint, b: bigint) => a <= b, SCMP_CMP_GT: (a: bigint, b: bigint) => a > b, SCMP_CMP_GE: (a: bigint, b: bigint) => a >= b } as const;
  for (const [op, ref] of Object.entries(ops)) {
    for (const v of vals.filter((x) => x <= BigInt(Number.MAX_SAFE_INTEGER))) {
      const p = compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 2, value: Number(v), op: op as 'SCMP_CMP_EQ' }] }] }).program;
      for (const a of vals) {
        const got = runFilter(p, { arch: AUDIT_ARCH_X86_64, nr: 0, args: [0, 0, a] }) === RET.ALLOW;
        assert.is(got, ref(a, v), `${a.toString(16)} ${op} ${v.toString(16)}`);
      }
    }
  }
  const m = compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 5, value: 0xf0, valueTwo: 0x30, op: 'SCMP_CMP_MASKED_EQ' }] }] }).program;
  assert.is(runFilter(m, { arch: AUDIT_ARCH_X86_64, nr: 0, args: [0, 0, 0, 0, 0, 0x13f] }), RET.ALLOW);
  assert.is(runFilter(m, { arch: AUDIT_ARCH_X86_64, nr: 0, args: [0, 0, 0, 0, 0, 0x14f] }), EPERM);
});

test('seccomp compiler - several conditional rules: any may allow; all args of one must hold', () => {
  const p = compileSeccomp({ defaultAction: 'SCMP_ACT_KILL_PROCESS', syscalls: [
    { names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 1, value: 10, op: 'SCMP_CMP_LT' }] },
    { names: ['ioctl'], action: 'SCMP_ACT_LOG', args: [{ index: 0, value: 2, op: 'SCMP_CMP_EQ' }] },
    { names: ['ioctl'], action: 'SCMP_ACT_TRAP' },
  ] }).program;
  const io = (...a: number[]) => runFilter(p, { arch: AUDIT_ARCH_X86_64, nr: X86_64.ioctl!, args: a });
  assert.is(io(1, 9), RET.ALLOW);
  assert.is(io(1, 10), RET.TRAP);
  assert.is(io(2, 99), RET.LOG);
  assert.is(io(3), RET.TRAP);
  assert.is(runFilter(p, { arch: AUDIT_ARCH_X86_64, nr: X86_64.read! }), RET.KILL_PROCESS);
});

test('seccomp compiler - hostile profiles are refused with the field named, never a crash', () => {
  const bad: [unknown, RegExp][] = [
    [{ defaultAction: 'SCMP_ACT_NOPE' }, /defaultAction: unknown action/],
    [{ defaultAction: 'SCMP_ACT_NOTIFY' }, /defaultAction: SCMP_ACT_NOTIFY/],
    [{ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 70000 }, /defaultErrnoRet: errno 70000/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: 'read', action: 'SCMP_ACT_ALLOW' }] }, /syscalls\[0\]\.names/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }] }] }, /args\[0\]\.index/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1.5, op: 'SCMP_CMP_EQ' }] }] }, /args\[0\]\.value/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_LIKE' }] }] }, /args\[0\]\.op/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_Z80'] }, /architectures\[0\]/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_NEW_LISTENER'] }, /flags\[0\]/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/agent.sock' }, /listenerPath/],
    [null, /seccomp: not an object/],
  ];
  for (const [p, re] of bad) {
    try {
      compileSeccomp(p as OciSeccomp);
      assert.unreachable(JSON.stringify(p));
    } catch (e) {
      assert.instance(e, SeccompError);
      assert.match((e as Error).message, re);
    }
  }
  // names unknown here (another arch's, or newer than the table) are skipped, as libseccomp does
  assert.ok(compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['no_such_call', 'arm_fadvise64_64'], action: 'SCMP_ACT_ALLOW' }] }).program.length > 0);
});

// ── devices ──────────────────────────────────────────────────────────────────
const { DEV_CHAR: C, DEV_BLOCK: B, ACC_MKNOD: M, ACC_READ: R, ACC_WRITE: W } = v2dev;
const dev = (prog: Buffer, type: number, major: number, minor: number, access: number) => v2dev.evaluate(prog, { type, major, minor, access });

test('devices v2 - Docker default: harmless devices usable, mknod of anything, no access to the rest', () => {
  const p = v2dev.program(defaultDeviceRules());
  for (const [maj, min] of [[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 2], [136, 0], [136, 7]]) assert.is(dev(p, C, maj!, min!, R | W), 1, `c ${maj}:${min}`);
  for (const [t, maj, min] of [[C, 10, 232], [B, 7, 0], [C, 5, 1], [C, 10, 229], [C, 10, 237], [C, 1, 11], [C, 4, 0], [C, 10, 200], [B, 8, 0], [C, 1, 1]]) {
    assert.is(dev(p, t!, maj!, min!, R), 0, `${t} ${maj}:${min} read`);
    assert.is(dev(p, t!, maj!, min!, W), 0, `${t} ${maj}:${min} write`);
    assert.is(dev(p, t!, maj!, min!, M), 1, `${t} ${maj}:${min} mknod`);
    assert.is(dev(p, t!, maj!, min!, M | R), 0, `${t} ${maj}:${min} mknod+read`);
  }
  // the program ends on the deny-all rule: no unreachable instruction for the verifier to refuse
  assert.is(p.readUInt8(p.length - 8), 0x95);
});

test('devices v2 - a later rule overrides: --device adds one, a partial deny takes only what it names', () => {
  const p = v2dev.program([...defaultDeviceRules(), { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' }]);
  assert.is(dev(p, C, 10, 229, R | W), 1);
  assert.is(dev(p, C, 10, 228, R), 0);
  const q = v2dev.program([...defaultDeviceRules(), { allow: false, type: 'c', major: 1, minor: 3, access: 'w' }]);
  assert.is(dev(q, C, 1, 3, R), 1);
  assert.is(dev(q, C, 1, 3, W), 0);
  assert.is(dev(q, C, 1, 3, R | W), 0);
  // no deny-all first: v1's default, allow
  const open = v2dev.program([{ allow: false, type: 'b', access: 'rwm' }]);
  assert.is(dev(open, C, 10, 232, R | W), 1);
  assert.is(dev(open, B, 7, 0, R), 0);
});

test('devices v1 - rules become devices.deny / devices.allow lines in order', () => {
  const w = v1dev.plan(defaultDeviceRules()).writes;
  assert.equal(w[0], { file: 'devices.deny', value: 'a' });
  assert.equal(w.slice(1, 4), [{ file: 'devices.allow', value: 'c *:* m' }, { file: 'devices.allow', value: 'b *:* m' }, { file: 'devices.allow', value: 'c 1:3 rwm' }]);
  assert.ok(w.some((x) => x.value === 'c 136:* rwm'));
  assert.not.ok(w.some((x) => /^c 5:1 /.test(x.value)), 'the console is not in the list');
  assert.is(ruleLine({ allow: true, type: 'b', major: 8, minor: -1, access: 'r' }), 'b 8:* r');
  for (const r of [{ allow: true, type: 'x' }, { allow: true, access: 'rwx' }, { allow: true, access: 'rr' }, { allow: true, major: 5000 }, { allow: 'yes' }]) {
    assert.throws(() => v1dev.plan([r as never]), (e: unknown) => e instanceof CgroupError && /devices\[0\]/.test((e as Error).message));
  }
});

test('devices - the start path hands the rules to the monitor: v1 file writes, or the v2 program', () => {
  const v1 = deviceLaunch({ version: 'v1', dir: '/sys/fs/cgroup/devices/sl/c1' }, defaultDeviceRules());
  assert.equal(v1.cgroupWrites![0], { path: '/sys/fs/cgroup/devices/sl/c1/devices.deny', value: 'a' });
  const v2 = deviceLaunch({ version: 'v2', dir: '/sys/fs/cgroup/sl/c1' }, defaultDeviceRules());
  assert.equal(v2.deviceProgram!.program, v2dev.program(defaultDeviceRules()));
  assert.equal(deviceLaunch({ version: 'v1', dir: '/x' }, []), {});
  const l = decodeLaunch(encodeLaunch(createSpec(base), { ...lopts, ...v1 }));
  assert.equal(l.cgroupWrites, v1.cgroupWrites);
  const l2 = decodeLaunch(encodeLaunch(createSpec(base), { ...lopts, ...v2 }));
  assert.equal(l2.deviceProgram, v2.deviceProgram);
  assert.throws(() => encodeLaunch(createSpec(base), { ...lopts, deviceProgram: { dir: '/x', program: Buffer.alloc(5) } }), /whole number of instructions/);
});

test('--device flag - forms, and refusals', () => {
  assert.equal(parseDeviceFlag('/dev/fuse'), { hostPath: '/dev/fuse', containerPath: '/dev/fuse', access: 'rwm' });
  assert.equal(parseDeviceFlag('/dev/fuse:r'), { hostPath: '/dev/fuse', containerPath: '/dev/fuse', access: 'r' });
  assert.equal(parseDeviceFlag('/dev/sda:/dev/xvda:rw'), { hostPath: '/dev/sda', containerPath: '/dev/xvda', access: 'rw' });
  for (const s of ['', 'dev/x', '/dev/x:../etc/passwd', '/dev/x:/dev/../etc/x', '/dev/x:/dev/y:rwx', '/a:/b:r:w']) assert.throws(() => parseDeviceFlag(s), (e: unknown) => e instanceof SpecError, s);
  assert.throws(() => deviceFromHost(parseDeviceFlag('/etc/hostname')), /not a device node/);
  assert.throws(() => deviceFromHost(parseDeviceFlag('/dev/no-such-thing')), /ENOENT/);
  assert.equal(deviceFromHost(parseDeviceFlag('/dev/null:/dev/mynull:r')).major, 1);
});

// ── spec and launch ──────────────────────────────────────────────────────────
const base: ContainerConfig = { id: 'c1', hostname: 'h', args: ['true'], env: [], cwd: '/', network: { mode: 'none' }, rootfsPath: '/r' };
const lopts = { stateDir: '/s', logPath: '/s/log', cgroupProcs: [] };

test('spec - Docker defaults: empty inheritable/ambient, NOFILE, oom 0, masked /proc/interrupts, devices, seccomp', () => {
  const s = createSpec(base);
  assert.equal(s.process.capabilities!.inheritable, []);
  assert.equal(s.process.capabilities!.ambient, []);
  assert.equal(s.process.capabilities!.bounding, s.process.capabilities!.effective);
  assert.is(s.process.noNewPrivileges, false);
  assert.is(s.process.rlimits![0]!.type, 'RLIMIT_NOFILE');
  assert.is(s.process.rlimits![0]!.soft, 1024);
  assert.ok(s.process.rlimits![0]!.hard <= DEFAULT_RLIMITS[0]!.hard);
  assert.is(s.process.oomScoreAdj, 0);
  for (const p of ['/proc/interrupts', '/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware', '/sys/devices/virtual/powercap']) assert.ok(s.linux.maskedPaths!.includes(p), p);
  assert.equal(s.linux.resources!.devices, defaultDeviceRules());
  assert.is(s.linux.seccomp!.defaultAction, 'SCMP_ACT_ERRNO');
  assert.not.ok(s.linux.seccomp!.syscalls!.some((r) => r.names.includes('unshare')));
  assert.is(createSpec({ ...base, seccomp: 'unconfined' }).linux.seccomp, undefined);
  const custom: OciSeccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] };
  assert.is(createSpec({ ...base, seccomp: custom }).linux.seccomp, custom);
});

test('spec - the options the CLI will map: no-new-privileges, ulimits, oom score, cap-add/drop, devices', () => {
  const s = createSpec({
    ...base, noNewPrivileges: true, oomScoreAdj: 500, capAdd: ['sys_admin'], capDrop: ['NET_RAW'],
    rlimits: [{ type: 'RLIMIT_NOFILE', soft: 64, hard: 128 }, { type: 'RLIMIT_NPROC', soft: 50, hard: 50 }],
    devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, access: 'rw' }],
  });
  assert.is(s.process.noNewPrivileges, true);
  assert.is(s.process.oomScoreAdj, 500);
  assert.equal(s.process.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 64, hard: 128 }, { type: 'RLIMIT_NPROC', soft: 50, hard: 50 }]);
  assert.ok(s.process.capabilities!.bounding!.includes('CAP_SYS_ADMIN'));
  assert.not.ok(s.process.capabilities!.bounding!.includes('CAP_NET_RAW'));
  assert.ok(s.linux.seccomp!.syscalls!.some((r) => r.names.includes('unshare')), 'CAP_SYS_ADMIN brings its syscalls');
  assert.equal(s.linux.devices, [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }]);
  assert.equal(s.linux.resources!.devices!.at(-1), { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' });
  assert.equal(resolveCaps(['ALL'], ['MKNOD']).includes('CAP_MKNOD'), false);
  assert.equal(resolveCaps([], ['ALL']), []);
  assert.equal(resolveCaps(['CHOWN'], ['ALL']), ['CAP_CHOWN']);
  for (const c of [{ capAdd: ['CAP_NOPE'] }, { oomScoreAdj: 1001 }, { rlimits: [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 5 }] },
    { devices: [{ path: 'dev/x', type: 'c' as const, major: 1, minor: 1 }] }, { devices: [{ path: '/dev/../x', type: 'c' as const, major: 1, minor: 1 }] }]) {
    assert.throws(() => createSpec({ ...base, ...c }), (e: unknown) => e instanceof SpecError, JSON.stringify(c));
  }
});

test('launch - caps sets, rlimits, oom, devices and the seccomp program reach the monitor', () => {
  const s = createSpec({ ...base, noNewPrivileges: true, oomScoreAdj: -5, rlimits: [{ type: 'RLIMIT_NPROC', soft: 7, hard: 9 }],
    devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o600 }] });
  const l = decodeLaunch(encodeLaunch(s, lopts));
  assert.is(l.noNewPrivileges, true);
  assert.is(l.oomScoreAdj, -5);
  assert.ok(l.rlimits.some((r) => r.resource === RLIMITS.RLIMIT_NPROC && r.soft === 7n && r.hard === 9n));
  assert.ok(l.rlimits.some((r) => r.resource === RLIMITS.RLIMIT_NOFILE && r.soft === 1024n));
  assert.equal(l.devices, [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, mode: 0o600, uid: 0, gid: 0 }]);
  assert.equal(l.seccomp!.program, compileSeccomp(s.linux.seccomp!).program);
  assert.is(l.caps!.inheritable, 0n);
  // unlimited as JSON can write it (2^64 rounds up): RLIM_INFINITY
  const inf = decodeLaunch(encodeLaunch({ ...s, process: { ...s.process, rlimits: [{ type: 'RLIMIT_CORE', soft: 18446744073709551615, hard: 18446744073709551615 }] } }, lopts));
  assert.is(inf.rlimits[0]!.hard, 0xffffffffffffffffn);
  assert.is(decodeLaunch(encodeLaunch(createSpec({ ...base, seccomp: 'unconfined' }), lopts)).seccomp, undefined);
});

test('launch - a hostile config.json is one LaunchError naming the field', () => {
  const s = createSpec(base);
  const cases: [unknown, RegExp][] = [
    [{ ...s, process: { ...s.process, rlimits: [{ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 }] } }, /process\.rlimits\[0\]\.type/],
    [{ ...s, process: { ...s.process, rlimits: [{ type: 'RLIMIT_NOFILE', soft: -1, hard: 1 }] } }, /process\.rlimits\[0\]\.soft/],
    [{ ...s, process: { ...s.process, rlimits: [{ type: 'RLIMIT_NOFILE', soft: 9, hard: 1 }] } }, /soft 9 above hard 1/],
    [{ ...s, process: { ...s.process, oomScoreAdj: -1001 } }, /oomScoreAdj/],
    [{ ...s, process: { ...s.process, capabilities: { ...s.process.capabilities, ambient: ['CAP_WIZARD'] } } }, /capabilities\.ambient/],
    [{ ...s, linux: { ...s.linux, devices: [{ path: '/dev/../../etc/x', type: 'c', major: 1, minor: 1 }] } }, /linux\.devices\[0\]\.path/],
    [{ ...s, linux: { ...s.linux, devices: [{ path: '/dev/x', type: 'q', major: 1, minor: 1 }] } }, /linux\.devices\[0\]\.type/],
    [{ ...s, linux: { ...s.linux, devices: [{ path: '/dev/x', type: 'c', major: 99999, minor: 1 }] } }, /linux\.devices\[0\]\.major/],
    [{ ...s, linux: { ...s.linux, seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_BOOM' }] } } }, /linux\.seccomp\.syscalls\[0\]\.action/],
  ];
  for (const [spec, re] of cases) {
    try {
      encodeLaunch(spec as never, lopts);
      assert.unreachable(String(re));
    } catch (e) {
      assert.instance(e, LaunchError);
      assert.match((e as Error).message, re);
    }
  }
});

test('launch - the seccomp program is compiled once per distinct profile', () => {
  const a = createSpec(base), b = createSpec({ ...base, id: 'c2', hostname: 'other' });
  assert.is(a.linux.seccomp, b.linux.seccomp, 'same capabilities: the same resolved profile object');
  assert.is(compiledSeccomp(a.linux.seccomp!), compiledSeccomp(b.linux.seccomp!), 'and the same compiled program');
  // a profile arriving as JSON text (config.json) is found by content
  const copy = JSON.parse(JSON.stringify(a.linux.seccomp));
  assert.is(compiledSeccomp(copy), compiledSeccomp(a.linux.seccomp!));
  const other = createSpec({ ...base, capAdd: ['SYS_ADMIN'] });
  assert.is.not(compiledSeccomp(other.linux.seccomp!), compiledSeccomp(a.linux.seccomp!));
  assert.throws(() => (a.linux.seccomp!.syscalls as unknown[]).push({}), TypeError, 'the shared profile is frozen');
});

test.run();
