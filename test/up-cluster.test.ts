// ops/up as a person runs it on three machines and a fourth, with namespaces for machines:
// --cluster --peers on h1 (which makes the trust), its trust copied to h2 and h3, --cluster there,
// then a join token from h1 and --join on h4. The cluster has four nodes and a log at R3.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, runTsctl } from './helpers/cluster.js';

const t = suite('up-cluster');
const p = `u${randomBytes(2).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'swl-upc-'));
const net = `10.212.${randomBytes(1)[0] % 250}`;
const sh = (cmd: string) => { const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8' }); if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`); return r.stdout; };
const inNs = (i: number, args: string[]) => ['nsenter', `--net=/run/netns/swf${p}-h${i}`, ...args];
const up = (i: number, extra: string[]) => new Promise<{ code: number; out: string }>((resolve) => {
  const [cmd, ...args] = inNs(i, [join(ROOT, 'ops/up'), '--no-setup', '--state-dir', join(dir, `h${i}`), '--node', `${p}h${i}`, '--subnet', `10.88.${i}.0/24`, ...extra]);
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d) => (out += d)); c.stderr.on('data', (d) => (out += d));
  c.on('close', (code) => resolve({ code: code ?? -1, out }));
});
const admin = { SWARMLITE_NATS: `tls://${net}.2:4222`, SWARMLITE_CREDS: join(dir, 'h1/trust/creds/admin.creds') };

t.before(() => {
  sh(`ip link add swf${p} type bridge && ip addr add ${net}.254/24 dev swf${p} && ip link set swf${p} up`);
  for (let i = 1; i <= 4; i++) {
    sh(`ip netns add swf${p}-h${i} && ip link add swf${p}h${i} type veth peer name eth0 netns swf${p}-h${i} && ip link set swf${p}h${i} master swf${p} up`);
    sh(`${inNs(i, ['sh', '-c', `'ip addr add ${net}.${i}/24 dev eth0 && ip link set eth0 up && ip link set lo up'`]).join(' ')}`);
  }
});
t.after(() => {
  for (const i of [4, 3, 2, 1]) if (existsSync(join(dir, `h${i}`))) spawnSync(inNs(i, [])[0], [...inNs(i, []).slice(1), join(ROOT, 'ops/down'), '--state-dir', join(dir, `h${i}`)], { stdio: 'inherit' });
  for (let i = 1; i <= 4; i++) spawnSync('ip', ['netns', 'del', `swf${p}-h${i}`]);
  spawnSync('ip', ['link', 'del', `swf${p}`]);
  rmSync(dir, { recursive: true, force: true });
});

t('up-cluster - three servers with --cluster, a fourth host with --join', async () => {
  const routes = [1, 2, 3].map((i) => `nats://${net}.${i}:6222`).join(',');
  const t0 = Date.now();
  const first = up(1, ['--cluster', routes, '--peers', `${p}h2,${p}h3`]);
  // h1 makes the cluster's trust at once; the others get a copy, as scp would
  for (let k = 0; k < 200 && spawnSync('test', ['-f', join(dir, 'h1/run/mode')]).status !== 0; k++) await new Promise((r) => setTimeout(r, 100));
  for (const i of [2, 3]) cpSync(join(dir, 'h1/trust'), join(dir, `h${i}/trust`), { recursive: true });
  const rs = await Promise.all([first, up(2, ['--cluster', routes]), up(3, ['--cluster', routes])]);
  for (const r of rs) assert.is(r.code, 0, r.out);
  console.log(`up-cluster: three servers up in ${Date.now() - t0} ms`);
  const token = (await runTsctl(['node', 'token', '--state-dir', join(dir, 'h1')], { env: admin })).stdout.trim();
  assert.match(token, /^SWLJOIN1\./);
  const r4 = await up(4, ['--join', `nats://${net}.1:4222`, '--token', token]);
  assert.is(r4.code, 0, r4.out);
  const nodes = JSON.parse((await runTsctl(['nodes', '--format', 'json'], { env: admin })).stdout) as { id: string }[];
  assert.equal(nodes.map((n) => n.id).sort(), [1, 2, 3, 4].map((i) => `${p}h${i}`));
  // a controller on every server host: h1's (which made the trust) leads, h2's and h3's stand by
  for (const i of [1, 2, 3]) assert.ok(sh(`cat ${dir}/h${i}/run/controller.pid`).trim(), `h${i} runs a controller`);
  assert.is(spawnSync('test', ['-e', join(dir, 'h4/run/controller.pid')]).status, 1, 'h4 (agent only) runs a controller');
  for (const i of [2, 3]) {
    for (let k = 0; k < 100 && !sh(`cat ${dir}/h${i}/logs/controller.log`).includes('lease: standby'); k++) await new Promise((r) => setTimeout(r, 100));
    assert.match(sh(`cat ${dir}/h${i}/logs/controller.log`), `lease: standby (${p}h1 leads)`);
  }
  assert.is(spawnSync('test', ['-e', join(dir, 'h4/run/nats.pid')]).status, 1, 'h4 runs a nats-server');
  // the token was for one use
  const again = await up(4, ['--join', `nats://${net}.1:4222`, '--token', token, '--state-dir', join(dir, 'h4b'), '--node', `${p}h5`]);
  assert.is.not(again.code, 0, 'a join token worked twice');
  // the guard: the servers' ports closed to container bridges
  assert.match(sh(inNs(2, ['nft', 'list', 'table', 'inet', 'swarmlite_cp_guard']).join(' ')), /iifname "swl\*" tcp dport \{ 4222, 6222 \} drop/);
});

t.run();
