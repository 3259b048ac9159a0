// -v and --tmpfs end to end: a host path bound read-write and read-only (the kernel refuses the
// write), a named volume shared by two containers and kept after them, a tmpfs whose size the
// kernel enforces. Attacks: an operator may not bind a host path; targets over /proc, '..'
// and volume names that are paths are refused in one line, by tsctl and by the controller
// (a request written by hand). Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from './helpers/cluster.js';
import { dial } from '../tsctl/client.js';
import { readCreds } from '../shared/nats/trust.js';
import { call } from '../shared/nats/rpc.js';
import { controllerApi } from '../shared/api/controller.js';
import { mountProblem, parseTmpfsFlag, parseVolumeFlag } from '../shared/volumes.js';

const t = suite('volumes-e2e');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

const run = (args: string[], env?: Record<string, string>) => c.tsctl(['run', '--rm', '--network', 'none', ...args], env ? { env } : {});
const oneLine = (r: { code: number; stderr: string }, why: RegExp) => {
  assert.is.not(r.code, 0);
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
};

t('flags - parsed as docker reads them; bad ones refused before anything is asked', () => {
  assert.equal(parseVolumeFlag('/srv/x:/data:ro'), { type: 'bind', source: '/srv/x', target: '/data', readOnly: true });
  assert.equal(parseVolumeFlag('cache:/cache'), { type: 'volume', source: 'cache', target: '/cache' });
  // a container path alone: an anonymous volume, as docker's -v /path
  assert.equal(parseVolumeFlag('/srv'), { type: 'volume', target: '/srv', anonymous: true });
  assert.equal(parseTmpfsFlag('/run:size=1m,mode=700'), { type: 'tmpfs', target: '/run', size: 1 << 20, mode: 0o700 });
  for (const bad of ['cache', '/proc/x', '/srv/../x', '/srv:/proc/x', '/srv:relative', '../x:/data', 'a/b:/data', '/srv/../etc:/x', '/srv:/data:rx', '/srv:/']) {
    assert.throws(() => parseVolumeFlag(bad), /invalid -v/, bad);
  }
  assert.throws(() => parseTmpfsFlag('/run:size=1'), /at least 4k/);
  assert.throws(() => parseTmpfsFlag('/run:exec'), /options are/);
  assert.match(mountProblem([{ type: 'tmpfs', target: '/a' }, { type: 'volume', source: 'v', target: '/a' }]) ?? '', /two mounts on \/a/);
});

t('bind - read-write and read-only host paths; the kernel refuses a write to a read-only one', async () => {
  const host = join(c.dir, 'shared');
  mkdirSync(host);
  writeFileSync(join(host, 'in'), 'from the host\n');
  const rw = await run(['-v', `${host}:/data`, 'busybox', 'sh', '-c', 'cat /data/in; echo from the container > /data/out']);
  assert.is(rw.stdout, 'from the host\n', rw.stderr);
  assert.is(readFileSync(join(host, 'out'), 'utf8'), 'from the container\n');
  const ro = await run(['-v', `${host}:/data:ro`, 'busybox', 'sh', '-c', 'cat /data/in; echo x > /data/no 2>&1 || echo refused']);
  assert.match(ro.stdout, /from the host\n/);
  assert.match(ro.stdout, /Read-only file system|refused/);
  assert.not.ok(existsSync(join(host, 'no')), 'a read-only bind was written');
  const missing = await run(['-v', `${host}-nowhere:/data`, 'busybox', 'true']);
  assert.is.not(missing.code, 0);
  assert.match(missing.stderr, /does not exist on this node/);
  assert.not.ok(existsSync(`${host}-nowhere`), 'a missing host path was made');
});

t('volume - a named volume is shared between containers and kept after them', async () => {
  await c.ok(['run', '--rm', '--network', 'none', '-v', 'cache:/cache', 'busybox', 'sh', '-c', 'echo kept > /cache/f']);
  const r = await run(['-v', 'cache:/c2:ro', 'busybox', 'cat', '/c2/f']);
  assert.is(r.stdout, 'kept\n', r.stderr);
  assert.is(readFileSync(join(c.dir, 'nodes', c.node, 'volumes', 'cache', '_data', 'f'), 'utf8'), 'kept\n');
});

t('tmpfs - memory, its size enforced by the kernel', async () => {
  const r = await run(['--tmpfs', '/scratch:size=1m', 'busybox', 'sh', '-c',
    'grep " /scratch " /proc/mounts | cut -d" " -f3; dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>&1; ls -l /scratch/big | awk "{print \\$5}"']);
  assert.match(r.stdout, /^tmpfs\n/, r.stderr);
  assert.match(r.stdout, /No space left on device/, r.stdout);
  assert.ok(Number(r.stdout.trim().split('\n').pop()) <= 1 << 20, `the tmpfs took more than its size: ${r.stdout}`);
});

t('attack - an operator may not bind a host path; the controller refuses bad mounts written by hand', async () => {
  const op = (await c.ok(['user', 'add', 'ops', '--role', 'operator'])).trim();
  oneLine(await run(['-v', '/etc:/hostetc', 'busybox', 'true'], { SWARMLITE_CREDS: op }), /permission denied: -v \/etc:\/hostetc/);
  const v = await run(['-v', 'opsvol:/v', 'busybox', 'sh', '-c', 'echo ok > /v/x && cat /v/x'], { SWARMLITE_CREDS: op });
  assert.is(v.stdout, 'ok\n', `an operator may use named volumes: ${v.stderr}`);
  const nc = await dial(c.url, readCreds(c.adminCreds));
  try {
    const base = { image: 'busybox', args: ['true'], network: 'none' };
    for (const [mounts, why] of [
      [[{ type: 'bind', source: '/etc', target: '/proc/x' }], /container's own proc/],
      [[{ type: 'volume', source: '../../etc', target: '/x' }], /invalid volume name/],
      [[{ type: 'bind', source: '/srv/../etc', target: '/x' }], /not a clean absolute host path/],
      [[{ type: 'tmpfs', target: '/' }], /clean absolute path below/],
      [[{ type: 'bind', source: '/x', target: '/y', size: 4096 }], /tmpfs options/],
    ] as const) {
      await call(nc, 'api.admin', controllerApi.run, { ...base, mounts } as never).then(
        () => assert.unreachable(`accepted ${JSON.stringify(mounts)}`), (e: Error) => assert.match(e.message, why));
    }
  } finally { await nc.close(); }
});

t('info - the cluster and the node: storage driver, its root, layers, writable layers, volumes, cgroups, kernel', async () => {
  const text = await c.ok(['info']);
  assert.match(text, /^Log: #\d+, \d+ writers/m);
  assert.match(text, /^Images: 1 \(1 distinct layers\)/m);
  assert.match(text, new RegExp(`Storage Driver: overlay.*root ${c.dir}/nodes/${c.node}: 1 layers unpacked, \\d+ writable layers, 2 volumes`));
  const j = JSON.parse(await c.ok(['info', '--format', 'json'])) as { nodes: { id: string; cgroups: string; kernel: string; storage: { volumes: number } }[] };
  const n = j.nodes.find((x) => x.id === c.node)!;
  assert.match(n.cgroups, /^v1|v2|hybrid/);
  assert.is(n.kernel, (await import('node:os')).release());
  assert.is(n.storage.volumes, 2, 'the volumes cache and opsvol');
});

t('--mount - docker\'s long form gives the same mounts: a read-only bind, a tmpfs, named and anonymous volumes', async () => {
  const host = join(c.dir, 'mount-bind');
  mkdirSync(host);
  writeFileSync(join(host, 'in'), 'bound\n');
  const ro = await run(['--mount', `type=bind,source=${host},target=/data,readonly`, '--mount', 'type=tmpfs,destination=/scratch,tmpfs-size=1m',
    'busybox', 'sh', '-c', 'cat /data/in; echo x > /data/no 2>/dev/null || echo refused; grep " /scratch " /proc/mounts | cut -d" " -f3']);
  assert.is(ro.stdout, 'bound\nrefused\ntmpfs\n', ro.stderr);
  assert.not.ok(existsSync(join(host, 'no')), 'a read-only bind was written');
  // a volume without a source is anonymous: --rm takes it with the container
  const before = (await c.ok(['volume', 'ls', '-q'])).split('\n').filter(Boolean);
  const anon = await run(['--mount', 'type=volume,target=/anon', 'busybox', 'sh', '-c', 'echo hi > /anon/f && cat /anon/f']);
  assert.is(anon.stdout, 'hi\n', anon.stderr);
  assert.equal((await c.ok(['volume', 'ls', '-q'])).split('\n').filter(Boolean), before, 'run --rm left its anonymous volume');
});

t('--mount volume-nocopy - an empty volume is not filled from the image; without it, it is', async () => {
  const count = 'ls -A /etc | wc -l';
  const plain = await run(['--mount', 'type=volume,source=etc-copied,target=/etc', 'busybox', 'sh', '-c', count]);
  const none = await run(['--mount', 'type=volume,source=etc-empty,target=/etc,volume-nocopy', 'busybox', 'sh', '-c', count]);
  assert.ok(Number(plain.stdout.trim()) > 0, `copy-up left /etc empty: ${plain.stdout} ${plain.stderr}`);
  assert.is(none.stdout.trim(), '0', none.stderr);
});

t('attack - --mount is -v: an operator may not bind a host path through it', async () => {
  const op = (await c.ok(['user', 'add', 'ops2', '--role', 'operator'])).trim();
  oneLine(await run(['--mount', 'type=bind,src=/etc,dst=/hostetc', 'busybox', 'true'], { SWARMLITE_CREDS: op }), /permission denied/);
  oneLine(await run(['--mount', 'type=bind,src=/etc,dst=/x,bind-propagation=shared', 'busybox', 'true']), /invalid --mount .*bind-propagation shared is not supported/);
  // an admin's host path does not reach an operator through another container's mounts
  const host = join(c.dir, 'bindsrc');
  mkdirSync(host);
  await c.ok(['run', '-d', '--name', 'bindsrc', '--network', 'none', '-v', `${host}:/data`, 'busybox', 'sleep', '300']);
  oneLine(await run(['--volumes-from', 'bindsrc', 'busybox', 'touch', '/data/op'], { SWARMLITE_CREDS: op }), /permission denied: -v .*bindsrc:\/data mounts a host path/);
  assert.not.ok(existsSync(join(host, 'op')));
  await c.ok(['rm', '-f', 'bindsrc']);
});

t.run();
