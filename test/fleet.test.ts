// Three simulated hosts through ops/fleet: each its own network namespace, bridge and nft
// table, containers spread over them, the control plane out of the containers' reach, and
// a log replicated on three nats-servers that keeps every acknowledged event when one dies.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'nats';
import { connectOptions, readCreds } from '../shared/nats/trust.js';
import { Fleet, leftovers, until } from './helpers/fleet.js';
import { ROOT } from './helpers/cluster.js';

const t = suite('fleet');
let f: Fleet | undefined;

t.before(async () => {
  f = await Fleet.up(3);
  console.log(`fleet: up in ${f.upMs} ms`);
  await f.importBusybox();
});
t.after(() => {
  if (!f) return;
  const p = f.prefix;
  const ms = f.down();
  console.log(`fleet: down in ${ms} ms`);
  const left = leftovers(p);
  if (left.length) throw new Error(`ops/fleet down left: ${left.join('; ')}`);
});

const psJson = async () => JSON.parse(await f!.ok(['ps', '-a', '--format', 'json'])) as { name: string; node: string; state: string }[];
const controllerLog = (h: string) => { try { return readFileSync(join(f!.dir, h, 'logs', 'controller.log'), 'utf8'); } catch { return ''; } };
/** Whether host `h`'s nats-server has a controller's connection (its monitor port listens on the host's loopback). */
const controllerOn = (h: string) => {
  const connz = "fetch('http://127.0.0.1:8222/connz?limit=4096').then((r) => r.json()).then((z) => console.log(z.connections.map((c) => c.name).join(',')))";
  try { return f!.fleet('exec', h, '--', process.execPath, '-e', connz).trim().split(',').includes('swarmlite-controller'); } catch { return false; }
};
const events = async () => (await f!.ok(['events', '--format', 'json'])).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; type: string; seq?: number });

t('fleet - three hosts, each with its own namespace, hostname, bridge and nft table', async () => {
  const nodes = await f!.nodes();
  assert.equal(nodes.map((n) => n.id).sort(), [f!.node(1), f!.node(2), f!.node(3)]);
  assert.equal(nodes.map((n) => n.hostname).sort(), ['h1', 'h2', 'h3']);
  for (let i = 1; i <= 3; i++) await f!.ok(['run', '-d', '--name', `spread${i}`, 'busybox', 'sleep', '300']);
  const ps = await psJson();
  assert.equal(ps.filter((p) => p.state === 'running').map((p) => p.node).sort(), [f!.node(1), f!.node(2), f!.node(3)], 'one container per host');
  const rootTables = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout;
  for (let i = 1; i <= 3; i++) {
    const tables = f!.fleet('exec', `h${i}`, '--', 'nft', 'list', 'tables');
    assert.ok(tables.includes(`swarmlite_${f!.node(i)}`), `h${i} has its node's nft table: ${tables}`);
    assert.not.ok(rootTables.includes(`swarmlite_${f!.node(i)}`), 'the host\'s table is not in the machine\'s namespace');
    const links = f!.fleet('exec', `h${i}`, '--', 'ip', '-o', 'link');
    assert.ok(/swl\w+/.test(links), `h${i} has its own container bridge`);
  }
});

t('fleet - a container reaches no nats-server, on its host or another', async () => {
  const ps = await psJson();
  const on2 = ps.find((p) => p.node === f!.node(2) && p.state === 'running')!;
  const net = f!.env.SWARMLITE_NATS.split(',')[0].replace(/^tls:\/\//, '').split('.').slice(0, 3).join('.');
  for (const target of [`${net}.2`, `${net}.1`]) {
    // beside the container on h2 (its network namespace): what a process inside could do
    const r = await f!.tsctl(['run', '--rm', '--network', `container:${on2.name}`, 'busybox', 'sh', '-c', `nc -w 2 ${target} 4222 </dev/null | head -c 4; echo; nc -w 2 ${target} 6222 </dev/null | head -c 4; echo end`]);
    assert.is(r.code, 0, r.stderr);
    assert.not.ok(r.stdout.includes('INFO'), `a container reached ${target}: ${r.stdout}`);
    assert.ok(r.stdout.includes('end'), r.stdout);
  }
  // the hosts themselves do reach each other's servers (the check above could not pass by a dead network)
  const host = f!.fleet('exec', 'h2', '--', 'bash', '-c', `exec 3<>/dev/tcp/${net}.1/4222 && head -c 4 <&3`);
  assert.is(host, 'INFO');
});

t('fleet - the leading controller driven off its own server keeps the lead and goes back to it', async () => {
  await until(() => controllerLog('h1').includes('lease: h1 leads'), 30000, 'h1 leading');
  // the lease's and the log's groups led from another host (keepLeadersAway): the move costs no election
  const nc = await connect(connectOptions(readCreds(f!.env.SWARMLITE_CREDS), f!.env.SWARMLITE_NATS));
  try {
    const jsm = await nc.jetstreamManager();
    const leader = async (s: string) => (await jsm.streams.info(s).catch(() => undefined))?.cluster?.leader ?? '';
    await until(async () => { const a = await leader('EVENTS'), b = await leader('KV_swarmlite-leader'); return a !== '' && a !== 'h1' && b !== '' && b !== 'h1'; }, 60000, 'the log and the lease led from another host than h1');
  } finally { await nc.close(); }
  await until(() => controllerOn('h1'), 10000, "h1's controller on h1's server");
  const pid = readFileSync(join(f!.dir, 'h1', 'run', 'controller.pid'), 'utf8').trim();
  const before = controllerLog('h1').length;
  // h1's own server refuses h1's processes (their packets to it reset): they reconnect to h2's or h3's
  const ip1 = `${f!.env.SWARMLITE_NATS.split(',')[0].replace(/^tls:\/\//, '').split('.').slice(0, 3).join('.')}.1`;
  const nft = (rules: string) => { const r = spawnSync('ip', ['netns', 'exec', `swf${f!.prefix}-h1`, 'nft', '-f', '-'], { input: rules, encoding: 'utf8' }); assert.is(r.status, 0, r.stderr); };
  nft(`table ip swarmlite_test_home { chain out { type filter hook output priority 0; policy accept; ip daddr ${ip1} tcp dport 4222 reject with tcp reset; }; }\n`);
  try {
    await until(() => /on h[23] again/.test(controllerLog('h1').slice(before)), 15000, "h1's controller on another host's server");
    await f!.ok(['run', '-d', '--name', 'away1', 'busybox', 'sleep', '300']);
  } finally { nft('delete table ip swarmlite_test_home'); }
  const t0 = Date.now();
  // its own words (where nats.js says it is): the server keeps the reset connection's other end
  // until its own pings fail, so its connection list would show the controller there all along
  await until(() => /going back to its own host's server h1 from h[23][^\n]*\n[^]*on h1 again/.test(controllerLog('h1').slice(before)), 15000, "h1's controller back on h1's server");
  console.log(`fleet: the leading controller back on its own server ${Date.now() - t0} ms after it took connections again`);
  const since = controllerLog('h1').slice(before);
  assert.not.match(since, /lost the lead/);
  assert.is(readFileSync(join(f!.dir, 'h1', 'run', 'controller.pid'), 'utf8').trim(), pid, 'the controller restarted');
  await f!.ok(['run', '-d', '--name', 'home0', 'busybox', 'sleep', '300']);
  assert.ok((await psJson()).some((p) => p.name === 'home0' && p.state === 'running'));
});

t('fleet - the log keeps every acknowledged event when one nats-server dies', async () => {
  const before = await events();
  assert.ok(before.length > 10);
  f!.kill('h1', 'nats'); // the server beside the controller: its connection moves to h2 or h3
  // its clients (the controller among them) reconnect to the two others and the streams it
  // led elect another leader: the first write right after the kill waits for that, no more
  const t0 = Date.now();
  // up to 45 s: with nats-server 2.9 the streams and consumers the dead server led elect new
  // leaders first (5-11 s measured on a loaded machine), more than a request's default 15 s
  await f!.ok(['--timeout', '45', 'run', '-d', '--name', 'after1', 'busybox', 'sleep', '300']);
  console.log(`fleet: one nats-server killed: the first run after it took ${Date.now() - t0} ms`);
  const t1 = Date.now();
  for (let i = 2; i <= 3; i++) await f!.ok(['run', '-d', '--name', `after${i}`, 'busybox', 'sleep', '300']);
  console.log(`fleet: 2 more runs with one nats-server dead took ${Date.now() - t1} ms`);
  const after = await events();
  const ids = new Set(after.map((e) => e.id));
  assert.equal(before.filter((e) => !ids.has(e.id)), [], 'an event acknowledged before the server died is gone');
  assert.ok(after.filter((e) => e.type === 'ContainerStarted').length >= 6);
  f!.revive('h1', 'nats');
  // the revived server catches up: every replica of the log current again
  const creds = readCreds(f!.env.SWARMLITE_CREDS);
  const nc = await connect(connectOptions(creds, f!.env.SWARMLITE_NATS));
  try {
    const jsm = await nc.jetstreamManager();
    // while the revived server rejoins, the cluster may answer a stream info with a TIMEOUT:
    // that is "not yet", not a failure
    const info = (name: string) => jsm.streams.info(name).catch(() => undefined);
    const tc = Date.now();
    let last = '';
    const current = (ms: number) => until(async () => {
      const si = await info('EVENTS');
      if (si) last = JSON.stringify(si.cluster);
      return !!si && si.config.num_replicas === 3 && (si.cluster?.replicas ?? []).length === 2 && si.cluster!.replicas!.every((r) => r.current) && si;
    }, ms, 'EVENTS current on three servers');
    // a server started alone can be left out of the JetStream meta group by nats-server 2.10.27, as
    // at a fleet's start (shared/nats/meta-group.ts), and then never catches up: CI once waited 30 s
    // here. What ops/fleet up does then, restart it, is done here too, and said.
    await current(20000).catch(async () => {
      const heal = spawnSync(join(ROOT, 'ops/fleet'), ['meta', '--prefix', f!.prefix], { encoding: 'utf8' });
      console.log(`fleet: the log not current 20 s after the revive (${last}); ops/fleet meta: ${heal.stderr.trim() || 'nobody out of the meta group'}`);
      await current(30000);
    }).catch((err: Error) => { throw new Error(`${err.message}: last seen ${last}`); });
    console.log(`fleet: the log current on three servers ${Date.now() - tc} ms after the revive`);
    for (const b of ['KV_swarmlite-anchor', 'OBJ_swarmlite-images', 'KV_swarmlite-trust']) {
      let si; await until(async () => !!(si = await info(b)), 15000, `${b} answers`);
      assert.is(si!.config.num_replicas, 3, b);
    }
  } finally { await nc.close(); }
  // h1's controller, which the kill drove to another host's server, goes back to its own once
  // that has caught up (shared/nats/home.ts): else the loss of the server it went to would be its loss too
  const t2 = Date.now();
  await until(() => controllerOn('h1'), 30000, "h1's controller back on h1's server");
  console.log(`fleet: h1's controller back on its own server ${Date.now() - t2} ms after the log was current again`);
  assert.match(controllerLog('h1'), /going back to its own host's server/);
  // and it serves from there
  await f!.ok(['run', '-d', '--name', 'home1', 'busybox', 'sleep', '300']);
});

t.run();
