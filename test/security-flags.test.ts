// docker run's confinement flags through tsctl, proven inside the container: seccomp off and
// from a file, no-new-privileges, ulimits, capabilities, a device, the OOM score; bad values
// are one line and exit 125 before anything is sent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from './helpers/cluster.js';

let c: Cluster;
const run = (flags: string[], ...cmd: string[]) => c.tsctl(['run', '--rm', '--network', 'none', ...flags, 'busybox', ...cmd]);

test.before(async () => { c = await Cluster.start(); await c.importBusybox(); });
test.after(async () => { await c?.stop(); });

test('security flags - seccomp: new user namespaces refused by default, allowed unconfined; a profile from a file is honoured', async () => {
  const denied = await run([], 'unshare', '-U', 'true');
  assert.is.not(denied.code, 0);
  assert.match(denied.stderr, /Operation not permitted/);
  const allowed = await run(['--security-opt', 'seccomp=unconfined'], 'unshare', '-U', 'true');
  assert.is(allowed.code, 0, allowed.stderr);
  const profile = join(c.dir, 'no-mkdir.json');
  writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }));
  const r = await run(['--security-opt', `seccomp=${profile}`], 'sh', '-c', 'mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touched');
  assert.match(r.stdout, /rc=1/);
  assert.match(r.stdout, /touched/);
});

test('security flags - no-new-privileges, capabilities, ulimits and the OOM score as asked', async () => {
  const st = (flags: string[]) => run(flags, 'sh', '-c', 'grep -E "^(CapInh|CapEff|CapAmb|NoNewPrivs)" /proc/self/status; cat /proc/self/oom_score_adj; ulimit -n; ulimit -Hn');
  const def = (await st([])).stdout;
  assert.match(def, /CapInh:\s+0{16}/);
  assert.match(def, /CapAmb:\s+0{16}/);
  assert.match(def, /NoNewPrivs:\s+0/);
  assert.match(def, /\n0\n1024\n/);
  const r = (await st(['--security-opt', 'no-new-privileges', '--cap-drop', 'ALL', '--ulimit', 'nofile=512:1024', '--oom-score-adj', '500'])).stdout;
  assert.match(r, /CapEff:\s+0{16}/);
  assert.match(r, /NoNewPrivs:\s+1/);
  assert.match(r, /\n500\n512\n1024\n?$/);
  const add = (await st(['--cap-add', 'NET_ADMIN'])).stdout;
  const eff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(add)![1]}`);
  assert.is((eff >> 12n) & 1n, 1n, 'CAP_NET_ADMIN (12) is in the effective set');
  const ip = await run(['--cap-add', 'NET_ADMIN'], 'ip', 'link', 'set', 'lo', 'down');
  assert.is(ip.code, 0, ip.stderr);
  const noip = await run([], 'ip', 'link', 'set', 'lo', 'down');
  assert.is.not(noip.code, 0, 'without NET_ADMIN');
});

test('security flags - --device maps one host device with the access asked', async () => {
  const rw = await run(['--device', '/dev/null:/dev/mynull'], 'sh', '-c', 'echo hi > /dev/mynull && echo wrote');
  assert.match(rw.stdout, /wrote/, rw.stderr);
  // /dev/kmsg is outside the default list and writable without capabilities: the access
  // asked is what the device cgroup allows
  const w = await run(['--device', '/dev/kmsg:/dev/k:w'], 'sh', '-c', 'echo swarmlite security-flags test > /dev/k && echo wrote');
  assert.match(w.stdout, /wrote/, w.stderr);
  const ro = await run(['--device', '/dev/kmsg:/dev/k:r'], 'sh', '-c', 'echo x > /dev/k || echo refused');
  assert.match(ro.stdout, /refused/);
  assert.match(ro.stderr, /Operation not permitted/);
  const none = await run([], 'sh', '-c', 'mknod /dev/l b 7 0 && head -c 1 /dev/l; echo rc=$?');
  assert.match(none.stdout, /rc=1/, 'a device not asked for cannot be opened');
});

test('security flags - bad values are one line and 125, before anything is sent', async () => {
  for (const [flags, re] of [
    [['--ulimit', 'nofile=abc'], /^tsctl: invalid --ulimit "nofile=abc": use NAME=SOFT\[:HARD\]/],
    [['--ulimit', 'nofile=9:3'], /soft limit is above the hard one/],
    [['--security-opt', 'apparmor=x'], /invalid --security-opt "apparmor=x"/],
    [['--security-opt', 'seccomp=/nonexistent.json'], /cannot read seccomp profile "\/nonexistent.json": ENOENT/],
    [['--cap-add', 'bad cap!'], /invalid --cap-add "bad cap!"/],
    [['--device', 'dev/null'], /invalid --device "dev\/null": "dev\/null" is not an absolute path/],
    [['--device', '/dev/../etc/passwd'], /is not an absolute path without ".."/],
    [['--oom-score-adj', '5000'], /invalid --oom-score-adj "5000"/],
  ] as [string[], RegExp][]) {
    const r = await run(flags, 'true');
    assert.is(r.code, 125, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.is(r.stderr.trim().split('\n').length, 1);
  }
  // a device that is not a device node fails on the node with the reason
  const r = await run(['--device', '/etc/hostname'], 'true');
  assert.is(r.code, 125);
  assert.match(r.stderr, /is not a device node/);
});

test.run();
