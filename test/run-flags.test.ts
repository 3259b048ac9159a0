// docker run's flags of issue 13 on a real cluster. --pid, --ipc and --uts, proven by the
// namespace files the kernel shows (/proc/self/ns/*): container:X shares X's namespace, host
// the host's, and by default every container has its own. --user/--group-add resolved in the
// image's files (what `id` says), --read-only refused by the kernel (EROFS). Attacks: an
// operator may not take the host's namespaces; malformed modes and users, unknown or stopped
// peers and --hostname with --uts host are one line. --label over the image's Labels, as
// inspect and ps --filter label= show them. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Cluster, until } from './helpers/cluster.js';

const t = suite('run-flags');
let c: Cluster;
const tag = randomBytes(3).toString('hex');

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  await c.ok(['run', '-d', '--name', 'box', '--network', 'none', 'busybox', 'sleep', '1000']);
});
t.after(async () => { await c?.stop(); });

const oneLine = (r: { code: number; stderr: string }, why: RegExp) => {
  assert.is.not(r.code, 0, r.stderr);
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
};
const nsIn = async (flags: string[], type: string) => (await c.ok(['run', '--rm', '--network', 'none', ...flags, 'busybox', 'readlink', `/proc/self/ns/${type}`])).trim();
const nsOfBox = async (type: string) => (await c.ok(['exec', 'box', 'readlink', `/proc/self/ns/${type}`])).trim();

t('default - every container has its own pid, ipc and uts namespaces', async () => {
  for (const type of ['pid', 'ipc', 'uts']) {
    const own = await nsIn([], type);
    assert.match(own, new RegExp(`^${type}:\\[\\d+\\]$`));
    assert.is.not(own, await nsOfBox(type), `${type}: shared with box by default`);
    assert.is.not(own, readlinkSync(`/proc/self/ns/${type}`), `${type}: the host's by default`);
  }
});

t('container: - --pid and --ipc join the running container\'s namespaces; it sees box\'s processes', async () => {
  assert.is(await nsIn(['--pid', 'container:box'], 'pid'), await nsOfBox('pid'));
  assert.is(await nsIn(['--ipc', 'container:box'], 'ipc'), await nsOfBox('ipc'));
  const ps = await c.ok(['run', '--rm', '--network', 'none', '--pid', 'container:box', 'busybox', 'ps', '-o', 'pid,args']);
  assert.match(ps, /^\s*1\s+sleep 1000$/m, ps);
  const ins = JSON.parse(await c.ok(['inspect', 'box']))[0];
  const id = ins.Id as string;
  await c.ok(['run', '-d', '--name', `peer${tag}`, '--network', 'none', '--pid', 'container:box', 'busybox', 'sleep', '1000']);
  assert.is(JSON.parse(await c.ok(['inspect', `peer${tag}`]))[0].HostConfig.PidMode, `container:${id}`);
  await c.ok(['rm', '-f', `peer${tag}`]);
});

t('host - an admin\'s --pid/--ipc/--uts host are the host\'s; the host keeps its name', async () => {
  for (const type of ['pid', 'ipc', 'uts']) assert.is(await nsIn([`--${type}`, 'host'], type), readlinkSync(`/proc/self/ns/${type}`), type);
  const before = hostname();
  assert.is((await c.ok(['run', '--rm', '--network', 'none', '--uts', 'host', 'busybox', 'hostname'])).trim(), before);
  assert.is(hostname(), before, 'the host\'s name changed');
});

t('attack - an operator may not take the host\'s namespaces; bad modes and peers are one line', async () => {
  const op = (await c.ok(['user', 'add', `op${tag}`, '--role', 'operator'])).trim();
  for (const flag of ['--pid', '--ipc', '--uts']) {
    oneLine(await c.tsctl(['run', '--rm', '--network', 'none', flag, 'host', 'busybox', 'true'], { env: { SWARMLITE_CREDS: op } }), /permission denied/);
  }
  // an operator may share a container's
  assert.is((await c.tsctl(['run', '--rm', '--network', 'none', '--pid', 'container:box', 'busybox', 'true'], { env: { SWARMLITE_CREDS: op } })).code, 0);
  oneLine(await c.tsctl(['run', '--rm', '--pid', 'bogus', 'busybox', 'true']), /invalid --pid "bogus"/);
  oneLine(await c.tsctl(['run', '--rm', '--uts', 'container:box', 'busybox', 'true']), /invalid --uts/);
  oneLine(await c.tsctl(['run', '--rm', '--ipc', 'container:nosuch', 'busybox', 'true']), /no such container "nosuch"/);
  oneLine(await c.tsctl(['run', '--rm', '--uts', 'host', '--hostname', 'x', 'busybox', 'true']), /--hostname conflicts with --uts host/);
  await c.ok(['run', '--name', `done${tag}`, '--network', 'none', 'busybox', 'true']);
  oneLine(await c.tsctl(['run', '--rm', '--pid', `container:done${tag}`, 'busybox', 'true']), /is not running/);
});

t('--user and --group-add - names from the image\'s files, numbers as given; exec defaults to the same user', async () => {
  assert.is((await c.ok(['run', '--rm', '--network', 'none', '--user', 'nobody', 'busybox', 'id'])).trim(), 'uid=65534(nobody) gid=65534(nogroup)');
  assert.is((await c.ok(['run', '--rm', '--network', 'none', '--user', '1000:1000', 'busybox', 'id', '-u'])).trim(), '1000');
  const g = (await c.ok(['run', '--rm', '--network', 'none', '--user', 'nobody', '--group-add', 'root', '--group-add', '4242', 'busybox', 'id', '-G'])).trim().split(' ');
  assert.ok(g.includes('0') && g.includes('4242'), g.join(' '));
  assert.is((await c.ok(['run', '--rm', '--network', 'none', '--user', 'nobody', 'busybox', 'sh', '-c', 'echo $HOME'])).trim(), '/nonexistent');
  await c.ok(['run', '-d', '--name', `u${tag}`, '--network', 'none', '--user', '1234', 'busybox', 'sleep', '1000']);
  assert.is((await c.ok(['exec', `u${tag}`, 'id', '-u'])).trim(), '1234');
  // a process that is not root cannot write where root's files are
  assert.is.not((await c.tsctl(['exec', `u${tag}`, 'touch', '/etc/x'])).code, 0);
  await c.ok(['rm', '-f', `u${tag}`]);
  oneLine(await c.tsctl(['run', '--rm', '--network', 'none', '--user', 'nosuch', 'busybox', 'true']), /unable to find user nosuch/);
  oneLine(await c.tsctl(['run', '--rm', '--network', 'none', '--user', 'root:nosuch', 'busybox', 'true']), /unable to find group nosuch/);
  oneLine(await c.tsctl(['run', '--rm', '--user', 'a/../b', 'busybox', 'true']), /invalid --user/);
});

t('--read-only - the kernel refuses writes to the root; --tmpfs and volumes stay writable', async () => {
  const r = await c.tsctl(['run', '--rm', '--network', 'none', '--read-only', 'busybox', 'touch', '/x']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /Read-only file system/);
  assert.is((await c.tsctl(['run', '--rm', '--network', 'none', '--read-only', '--tmpfs', '/scratch', 'busybox', 'touch', '/scratch/x'])).code, 0);
  assert.is(JSON.parse(await c.ok(['inspect', 'box']))[0].HostConfig.ReadonlyRootfs ?? false, false);
});

t('--init - pid 1 is a reaper: orphans are reaped, SIGTERM reaches the command, its exit code is the container\'s', async () => {
  const ps = await c.ok(['run', '--rm', '--network', 'none', '--init', 'busybox', 'ps', '-o', 'pid,comm']);
  assert.match(ps, /^\s*1\s+init$/m, ps);
  assert.not.match(ps, /^\s*1\s+ps$/m, ps);
  assert.is((await c.tsctl(['run', '--rm', '--network', 'none', '--init', 'busybox', 'sh', '-c', 'exit 7'])).code, 7);
  // an orphan whose parent never waits: a zombie under a plain pid 1, reaped under --init
  const orphan = ['sh', '-c', '(sleep 0.3 &); exec sleep 1000'];
  await c.ok(['run', '-d', '--name', `zplain${tag}`, '--network', 'none', 'busybox', ...orphan]);
  await c.ok(['run', '-d', '--name', `zinit${tag}`, '--network', 'none', '--init', 'busybox', ...orphan]);
  const stat = async (n: string) => (await c.ok(['exec', n, 'ps', '-o', 'stat,args'])).split('\n').filter((l) => /sleep 0\.3|\[sleep\]|^\s*Z/.test(l));
  await until(async () => (await stat(`zplain${tag}`)).some((l) => /^\s*Z/.test(l)), 20000, 'the orphan to be a zombie under a plain pid 1');
  await until(async () => (await stat(`zinit${tag}`)).length === 0, 20000, 'the orphan to be reaped under --init');
  // docker stop: SIGTERM, forwarded by the reaper (a plain pid 1 sleep would ignore it until the SIGKILL)
  await c.ok(['stop', '-t', '60', `zinit${tag}`]);
  assert.is(JSON.parse(await c.ok(['inspect', `zinit${tag}`]))[0].State.ExitCode, 143);
  await c.ok(['rm', '-f', `zplain${tag}`, `zinit${tag}`]);
});

t('--label - over the image\'s Labels; inspect shows them and ps --filter label= finds by key and by value; bad ones are one line', async () => {
  const ctx = join(c.dir, `labels${tag}`);
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nLABEL team=a tier="from the image" org.example.keep=yes\n');
  await c.ok(['build', '-t', `labeled${tag}:1`, ctx]);
  await c.ok(['run', '-d', '--name', `lab${tag}`, '--network', 'none', '--label', 'tier=given', '-l', 'solo', `labeled${tag}:1`, 'sleep', '1000']);
  await c.ok(['run', '-d', '--name', `lab2${tag}`, '--network', 'none', '--label', 'team=b', 'busybox', 'sleep', '1000']);
  const labels = JSON.parse(await c.ok(['inspect', `lab${tag}`]))[0].Config.Labels;
  assert.equal(labels, { team: 'a', tier: 'given', 'org.example.keep': 'yes', solo: '' });
  const names = async (...f: string[]) => (JSON.parse(await c.ok(['ps', ...f.flatMap((x) => ['--filter', x]), '--format', 'json'])) as { name: string }[]).map((x) => x.name).sort();
  assert.equal(await names('label=team'), [`lab${tag}`, `lab2${tag}`].sort());
  assert.equal(await names('label=team=b'), [`lab2${tag}`]);
  assert.equal(await names('label=team', 'label=solo'), [`lab${tag}`], 'every label filter must hold');
  assert.equal(await names('label=tier=from the image'), [], 'the flag replaced the image\'s value');
  oneLine(await c.tsctl(['run', '--rm', '--label', '=x', 'busybox', 'true']), /invalid --label/);
  oneLine(await c.tsctl(['run', '--rm', '--label', `k=${'v'.repeat(5000)}`, 'busybox', 'true']), /longer than 4096/);
  await c.ok(['rm', '-f', `lab${tag}`, `lab2${tag}`]);
});

t.run();
