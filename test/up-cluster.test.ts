// ops/up as a person runs it on three machines and a fourth, with namespaces for machines:
// --cluster --peers on h1 (which makes the trust), its trust copied to h2 and h3, --cluster there,
// then a join token from h1 and --join on h4. The cluster has four nodes and a log at R3.
// Identities made on h1 afterwards (a user, its revocation, the joined node) reach h2 and h3
// through the controller's root-signed record (shared/nats/trust-dist.ts), which their agents
// check: forged, stale and junk records are refused, and a controller killed before publishing
// publishes when it is back.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { connect, nkeys, type NatsConnection } from 'nats';
import { addIdentity, connectOptions, credsPath, readCreds, reloadServer, rootSigner, TRUST_BUCKET, TRUST_NUDGE } from '../shared/nats/trust.js';
import { encodeRecord, TRUST_KEY } from '../shared/nats/trust-dist.js';
import { signer } from '../shared/signing.js';
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

const h = (i: number) => join(dir, `h${i}`);
const bobCopy = join(dir, 'bob.creds');
const urlOf = (i: number) => `tls://${net}.${i}:4222`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A connection as the identity of `creds`, to server `i` alone. */
const dial = (creds: string, i: number) => connect({ ...connectOptions(readCreds(creds), urlOf(i)), reconnect: false });
/** Retries until the identity is let in by server i (its agent applied the record); returns the ms it took. */
async function accepted(creds: string, i: number, ms = 15000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try { const nc = await dial(creds, i); await nc.flush(); await nc.close(); return Date.now() - t0; } catch (err) {
      if (Date.now() - t0 > ms) throw new Error(`h${i} did not accept ${creds} within ${ms} ms: ${(err as Error).message}`);
      await sleep(50);
    }
  }
}
async function refused(creds: string, i: number): Promise<boolean> {
  try { const nc = await dial(creds, i); await nc.close(); return false; } catch (err) { return /authorization|auth/i.test((err as Error).message); }
}
const agentLog = (i: number) => { try { return readFileSync(join(h(i), 'logs/agent.log'), 'utf8'); } catch { return ''; } };
const pidOf = (i: number, what: string) => Number(readFileSync(join(h(i), `run/${what}.pid`), 'utf8').trim());
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
async function waitFor(what: string, f: () => boolean | Promise<boolean>, ms = 15000): Promise<number> {
  const t0 = Date.now();
  while (!(await f())) { if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`); await sleep(50); }
  return Date.now() - t0;
}

t('up-cluster - identities made on h1 reach h2 and h3: a user, its revocation, a joined node', async () => {
  // a user added on h1 connects and works through h2 and h3
  const t0 = Date.now();
  const bobFile = (await runTsctl(['user', 'add', 'bob', '--role', 'operator', '--state-dir', h(1)], { env: admin })).stdout.trim();
  assert.ok(existsSync(bobFile), bobFile);
  cpSync(bobFile, bobCopy); // user rm deletes it; the stale-record attack below tries it again
  const reach = [await accepted(bobFile, 2), await accepted(bobFile, 3)];
  console.log(`up-cluster: a user added on h1 accepted by h2 and h3 after ${Date.now() - t0} ms (${reach.join(', ')} ms)`);
  for (const i of [2, 3]) {
    const r = await runTsctl(['nodes', '--format', 'json'], { env: { SWARMLITE_NATS: urlOf(i), SWARMLITE_CREDS: bobFile } });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`"id":"${p}h4"`));
  }
  // the joined node (its token redeemed through h1) may fail over to h2
  const h4 = credsPath(h(4), `node-${p}h4`);
  await accepted(h4, 2, 3000);
  // revocation: bob's open connections on h2 and h3 are closed, and he cannot come back
  const open: NatsConnection[] = [await dial(bobFile, 2), await dial(bobFile, 3)];
  const closed = open.map((nc) => nc.closed().then(() => Date.now()));
  const r0 = Date.now();
  const rm = await runTsctl(['user', 'rm', 'bob', '--state-dir', h(1)], { env: admin });
  assert.is(rm.code, 0, rm.stderr);
  const gone = await Promise.race([Promise.all(closed), sleep(10000).then(() => undefined)]);
  assert.ok(gone, 'bob\'s connections on h2/h3 were not closed within 10 s of user rm');
  console.log(`up-cluster: user rm closed bob's connections on h2 and h3 in ${gone!.map((x) => x - r0).join(', ')} ms`);
  for (const i of [1, 2, 3]) assert.ok(await refused(bobCopy, i), `h${i} still lets bob in`);
  // a mirror's identities are not edited there: the next record would undo it
  const onMirror = await runTsctl(['user', 'add', 'eve', '--role', 'admin', '--state-dir', h(2)], { env: admin });
  assert.is.not(onMirror.code, 0);
  assert.match(onMirror.stderr, /mirrors the cluster's identities/);
});

t('up-cluster - forged, unsigned, stale and junk records are refused by every mirror', async () => {
  // a superuser (what someone holding a server's config could do), made on h1 and mirrored
  const tamperFile = addIdentity(h(1), { name: 'tamper', kind: 'superuser' }, admin.SWARMLITE_NATS);
  reloadServer(h(1));
  await accepted(tamperFile, 2);
  // a key no server knows, which the forged records try to let in
  const kp = nkeys.createUser();
  const evilCreds = { ...readCreds(tamperFile), name: 'evil', seed: new TextDecoder().decode(kp.getSeed()), nkey: kp.getPublicKey() };
  const evilFile = join(dir, 'evil.creds');
  writeFileSync(evilFile, JSON.stringify(evilCreds));
  assert.ok(await refused(evilFile, 2));
  const nc = await dial(tamperFile, 2);
  const js = nc.jetstream();
  const kv = await js.views.kv(TRUST_BUCKET, { bindOnly: true });
  const current = await kv.get(TRUST_KEY);
  const rec = JSON.parse(Buffer.from(current!.value).toString()) as { gen: number; ids: { name: string; key: string; kind: string }[] };
  const withEvil = [...rec.ids, { name: 'evil', kind: 'superuser', key: evilCreds.nkey! }];
  const hist = await kv.history({ key: TRUST_KEY });
  const older: Uint8Array[] = []; // the records that still had bob in them
  const bobKey = readCreds(bobCopy).nkey!;
  for await (const e of hist) if (e.operation === 'PUT' && e.revision < current!.revision && Buffer.from(e.value).toString().includes(bobKey)) older.push(e.value);
  // the controller would repair the bucket at once: frozen while the attacks are read
  const ctl = pidOf(1, 'controller');
  process.kill(ctl, 'SIGSTOP');
  try {
    const auth = [2, 3].map((i) => readFileSync(join(h(i), 'trust/auth.conf'), 'utf8'));
    const attacks: [string, Uint8Array][] = [
      ['unsigned', Buffer.from(JSON.stringify({ v: 1, gen: rec.gen + 10, ids: withEvil, sig: '' }))],
      ['forged', encodeRecord(rec.gen + 20, withEvil as never, signer(randomBytes(32)))],
      ['signature of another record', Buffer.from(JSON.stringify({ v: 1, gen: rec.gen + 30, ids: withEvil, sig: JSON.parse(Buffer.from(current!.value).toString()).sig }))],
      ['junk', randomBytes(3000)],
      ['bad identity', encodeRecord(rec.gen + 40, [...rec.ids, { name: 'x', kind: 'user', key: 'U"; publish: ">"' }] as never, rootSigner(h(1)))],
    ];
    if (older.length) attacks.push(['stale', older[older.length - 1]]);
    else assert.unreachable('the bucket\'s history kept no record with bob: the stale replay cannot be tried');
    for (const [what, bytes] of attacks) {
      const before = [2, 3].map((i) => agentLog(i).length);
      await kv.put(TRUST_KEY, bytes);
      nc.publish(TRUST_NUDGE);
      for (const i of [2, 3]) {
        await waitFor(`h${i} logs its refusal of the ${what} record`, () => /identities' record \(revision \d+\) refused/.test(agentLog(i).slice(before[i - 2])), 8000);
      }
      assert.equal([2, 3].map((i) => readFileSync(join(h(i), 'trust/auth.conf'), 'utf8')), auth, `a ${what} record changed a server's config`);
      assert.ok(await refused(evilFile, 2), `the ${what} record let evil in`);
      assert.ok(await refused(bobCopy, 2), `the ${what} record let bob back in`);
    }
    console.log(agentLog(2).split('\n').filter((l) => /identities/.test(l)).map((l) => `up-cluster: h2 ${l}`).join('\n'));
    // the agents did not crash on any of it
    for (const i of [2, 3]) assert.ok(alive(pidOf(i, 'agent')), `h${i}'s agent died`);
    for (const i of [2, 3]) assert.not.ok(existsSync(join(h(i), 'run/agent.restarts')), `h${i}'s agent was restarted`);
    // a purge is not a record either
    await kv.purge(TRUST_KEY);
    nc.publish(TRUST_NUDGE);
    await sleep(500);
    assert.equal([2, 3].map((i) => readFileSync(join(h(i), 'trust/auth.conf'), 'utf8')), auth);
  } finally { process.kill(ctl, 'SIGCONT'); }
  // the controller puts the truth back; the mirrors follow later changes as before
  await waitFor('the controller repairs the bucket', async () => { const e = await kv.get(TRUST_KEY); return !!e && e.operation === 'PUT' && !JSON.stringify(JSON.parse(Buffer.from(e.value).toString())).includes('evil'); });
  await nc.close();
  const dan = (await runTsctl(['user', 'add', 'dan', '--role', 'viewer', '--state-dir', h(1)], { env: admin })).stdout.trim();
  await accepted(dan, 3);
});

t('up-cluster - SIGKILL between writing identities.json and publishing: converges when the controller is back', async () => {
  const ctl = pidOf(1, 'controller');
  process.kill(ctl, 'SIGSTOP');
  let carol = '';
  try {
    carol = (await runTsctl(['user', 'add', 'carol', '--role', 'operator', '--state-dir', h(1)], { env: admin })).stdout.trim();
    await accepted(carol, 1, 5000);
    // nothing published it: h2 does not know carol (the window the kill hits)
    await sleep(2500);
    assert.ok(await refused(carol, 2), 'carol reached h2 without the controller');
  } finally { process.kill(ctl, 'SIGKILL'); process.kill(ctl, 'SIGCONT'); }
  // the supervisor starts the controller again; it publishes what the bucket lacks
  const k0 = Date.now();
  await waitFor('a new controller', () => { try { const q = pidOf(1, 'controller'); return q !== ctl && alive(q); } catch { return false; } });
  await accepted(carol, 2, 30000);
  await accepted(carol, 3, 5000);
  console.log(`up-cluster: after the controller's SIGKILL, carol reached h2 and h3 ${Date.now() - k0} ms later`);
});

t.run();
