// Health checks end to end: a real cluster (nats-server, controller, agent), busybox containers
// with --health-* and a built image's HEALTHCHECK, probed by the agent through exec, seen by ps
// and inspect as docker shows them; and the hostile cases: a check that prints megabytes, one
// that never exits, one whose command does not exist, an agent killed while probing, and health
// events forged by clients that are not the node's agent. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { headers, type NatsConnection } from 'nats';
import { Cluster, sleep, until } from './helpers/cluster.js';
import { healthOf, procsOf } from './helpers/health.js';
import { SourceChain } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import { encodeBody } from '../shared/rpc.js';
import { SIG_HEADER } from '../shared/signing.js';

const t = suite('health-e2e');
let c: Cluster;
let ctx = '';
const conns: NatsConnection[] = [];

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  ctx = mkdtempSync(join(tmpdir(), 'health-ctx-'));
  ({ inspect, health, becomes, changes: healthEvents } = healthOf(c));
});
t.after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await c?.stop();
  if (ctx) rmSync(ctx, { recursive: true, force: true });
});

let inspect: ReturnType<typeof healthOf>['inspect'], health: ReturnType<typeof healthOf>['health'], becomes: ReturnType<typeof healthOf>['becomes'], healthEvents: ReturnType<typeof healthOf>['changes'];
const psStatus = async (name: string) => (JSON.parse(await c.ok(['ps', '--format', 'json'])) as { name: string; status: string; health: string | null }[]).find((r) => r.name === name);
const psLine = async (name: string) => (await c.ok(['ps'])).split('\n').find((l) => l.trimEnd().endsWith(` ${name}`) || l.includes(` ${name} `)) ?? '';

t('health - a passing check makes it healthy: ps says (healthy), inspect has State.Health and Config.Healthcheck', async () => {
  await c.ok(['run', '-d', '--name', 'hok', '--network', 'none', '--health-cmd', 'echo fine', '--health-interval', '300ms', 'busybox', 'sleep', '1000']);
  const st = await psStatus('hok');
  // before its first probe (300 ms after the start) or right after it
  assert.ok(st && /^Up .*\((health: starting|healthy)\)$/.test(st.status), JSON.stringify(st));
  const h = await becomes('hok', 'healthy');
  assert.is(h.FailingStreak, 0);
  assert.ok(h.Log.length >= 1);
  assert.equal([h.Log[0]!.ExitCode, h.Log[0]!.Output], [0, 'fine\n']);
  assert.ok(Date.parse(h.Log[0]!.End) >= Date.parse(h.Log[0]!.Start));
  assert.match(await psLine('hok'), /Up .* \(healthy\)/);
  assert.equal((await psStatus('hok'))!.health, 'healthy');
  assert.equal((await inspect('hok')).Config.Healthcheck, { Test: ['CMD-SHELL', 'echo fine'], Interval: 300e6 });
});

t('health - a failing check is unhealthy after --health-retries failures in a row, with each probe\'s output and code', async () => {
  await c.ok(['run', '-d', '--name', 'hbad', '--network', 'none', '--health-cmd', 'echo failing >&2; exit 3', '--health-interval', '200ms', '--health-retries', '3', 'busybox', 'sleep', '1000']);
  const h = await becomes('hbad', 'unhealthy');
  // reported at the third failure (the event carries the state then): not before, not later
  assert.is(h.FailingStreak, 3);
  assert.is(h.Log.length, 3);
  for (const p of h.Log) assert.equal([p.ExitCode, p.Output], [3, 'failing\n']);
  assert.match(await psLine('hbad'), /Up .* \(unhealthy\)/);
  // only changes are events: one, however many probes ran since
  await sleep(1000);
  const { Id } = await inspect('hbad');
  assert.equal((await healthEvents(Id)).map((e) => e.data.status), ['unhealthy']);
});

t('health - failures in the start period do not count: it stays starting', async () => {
  await c.ok(['run', '-d', '--name', 'hstart', '--network', 'none', '--health-cmd', 'exit 1', '--health-interval', '200ms',
    '--health-start-interval', '200ms', '--health-start-period', '1m', '--health-retries', '1', 'busybox', 'sleep', '1000']);
  await sleep(1500);
  assert.is((await health('hstart'))!.Status, 'starting');
  assert.match(await psLine('hstart'), /Up .* \(health: starting\)/);
});

t('health - a built image\'s HEALTHCHECK applies; probing resumes after the agent is killed; --no-healthcheck disables it', async () => {
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nHEALTHCHECK --interval=300ms --timeout=5s --retries=2 CMD test -e /tmp/ok || { echo no ok; exit 1; }\nCMD ["sleep", "1000"]\n');
  const b = await c.tsctl(['build', '-t', 'hcimg', ctx], { timeout: 120_000 });
  assert.is(b.code, 0, b.stderr);
  const img = JSON.parse(await c.ok(['image', 'inspect', 'hcimg']))[0] as { Config: { Healthcheck: unknown } };
  assert.equal(img.Config.Healthcheck, { Test: ['CMD-SHELL', 'test -e /tmp/ok || { echo no ok; exit 1; }'], Interval: 300e6, Timeout: 5e9, Retries: 2 });
  await c.ok(['run', '-d', '--name', 'hbuilt', '--network', 'none', 'hcimg']);
  const bad = await becomes('hbuilt', 'unhealthy');
  assert.is(bad.Log.at(-1)!.Output, 'no ok\n');
  await c.ok(['exec', 'hbuilt', 'touch', '/tmp/ok']);
  await becomes('hbuilt', 'healthy');
  // the agent dies while probing; the one started again goes on from what it reported
  await c.killAgent();
  c.startAgent();
  await until(async () => (await c.tsctl(['exec', 'hbuilt', 'rm', '/tmp/ok'])).code === 0, 20_000, 'the agent back and the exec done');
  await becomes('hbuilt', 'unhealthy');
  const { Id } = await inspect('hbuilt');
  assert.equal((await healthEvents(Id)).map((e) => e.data.status), ['unhealthy', 'healthy', 'unhealthy'], 'one event per change, none repeated by the restart');
  // a run's flag over the image's: its Test kept, the interval replaced
  await c.ok(['run', '-d', '--name', 'hover', '--network', 'none', '--health-interval', '250ms', 'hcimg']);
  assert.equal((await inspect('hover')).Config.Healthcheck, { Test: ['CMD-SHELL', 'test -e /tmp/ok || { echo no ok; exit 1; }'], Interval: 250e6, Timeout: 5e9, Retries: 2 });
  await becomes('hover', 'unhealthy');
  // --no-healthcheck: no health at all
  await c.ok(['run', '-d', '--name', 'hnone', '--network', 'none', '--no-healthcheck', 'hcimg']);
  await sleep(1200);
  const none = await inspect('hnone');
  // as docker merges: NONE, the image's other fields kept
  assert.equal(none.Config.Healthcheck, { Test: ['NONE'], Interval: 300e6, Timeout: 5e9, Retries: 2 });
  assert.is(none.State.Health, undefined);
  assert.match(await psLine('hnone'), /Up [^(]*$/);
  assert.is((await healthEvents(none.Id)).length, 0);
});

t('health - a paused container is not probed: its status stays as it was, and probing goes on after unpause', async () => {
  await c.ok(['run', '-d', '--name', 'hpause', '--network', 'none', 'hcimg']);
  await c.ok(['exec', 'hpause', 'touch', '/tmp/ok']);
  await becomes('hpause', 'healthy');
  await c.ok(['pause', 'hpause']);
  // an exec into a frozen container is refused: counted, 2 of them would make it unhealthy
  await sleep(2000);
  assert.is((await health('hpause'))!.Status, 'healthy');
  await c.ok(['unpause', 'hpause']);
  await c.ok(['exec', 'hpause', 'rm', '/tmp/ok']);
  await becomes('hpause', 'unhealthy');
});

t('health - a check that does not exist: unhealthy, its probe the one-line reason with code 127', async () => {
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nHEALTHCHECK --interval=300ms --retries=1 CMD ["/no/such/check"]\nCMD ["sleep", "1000"]\n');
  const b = await c.tsctl(['build', '-t', 'hcmissing', ctx], { timeout: 120_000 });
  assert.is(b.code, 0, b.stderr);
  await c.ok(['run', '-d', '--name', 'hmissing', '--network', 'none', 'hcmissing']);
  const h = await becomes('hmissing', 'unhealthy');
  assert.is(h.Log[0]!.ExitCode, 127);
  assert.match(h.Log[0]!.Output, /^exec: "\/no\/such\/check": executable file not found in \$PATH$/);
});

t('health - a check that never exits is killed at its timeout with what it started: no process left, no zombie', async () => {
  await c.ok(['run', '-d', '--name', 'hhang', '--network', 'none', '--health-cmd', 'sleep 997; echo never', '--health-interval', '200ms', '--health-timeout', '400ms',
    '--health-retries', '2', 'busybox', 'sleep', '1000']);
  const h = await becomes('hhang', 'unhealthy');
  assert.equal([h.Log[0]!.ExitCode, h.Log[0]!.Output], [-1, 'Health check exceeded timeout (400ms)']);
  const took = Date.parse(h.Log[0]!.End) - Date.parse(h.Log[0]!.Start);
  assert.ok(took >= 400 && took < 3000, `a probe took ${took} ms`);
  // several more timeouts: at most the probe in flight (its sh and its sleep) is there, and nothing is a zombie
  const { Id } = await inspect('hhang');
  await sleep(2500);
  const procs = procsOf(Id);
  const probes = procs.filter((p) => p.cmd.includes('sleep 997') || p.state === 'Z');
  assert.ok(probes.length <= 2, JSON.stringify(procs));
  assert.is(procs.filter((p) => p.state === 'Z').length, 0, JSON.stringify(procs));
  // stopped: probing stops with it, and nothing of a probe is left
  await c.ok(['stop', '-t', '1', 'hhang']);
  await sleep(1500);
  assert.is(procsOf(Id).length, 0);
  const execDir = join(c.dir, 'nodes', c.node, 'runtime', Id, 'exec');
  let left: string[] = [];
  try { left = readdirSync(execDir); } catch { /* none made or all gone */ }
  assert.equal(left, [], 'no probe\'s exec files left');
});

t('health - a check that prints megabytes: its output is cut at 4 KiB, the agent\'s memory stays flat', async () => {
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${c.agent().pid}/status`, 'utf8'))![1]) * 1024;
  await c.ok(['run', '-d', '--name', 'hloud', '--network', 'none', '--health-cmd', 'head -c 16000000 /dev/zero | tr "\\0" x; exit 1', '--health-interval', '200ms',
    '--health-retries', '1', '--health-timeout', '20s', 'busybox', 'sleep', '1000']);
  const h = await becomes('hloud', 'unhealthy', 60_000);
  assert.is(h.Log[0]!.Output, 'x'.repeat(4096));
  const before = rss();
  const { Id } = await inspect('hloud');
  // five more probes of 16 MB each (their end seen by the exec files coming and going)
  const t0 = Date.now();
  await sleep(5000);
  const after = rss();
  assert.ok(after - before < 16_000_000, `the agent grew ${((after - before) / 1e6).toFixed(1)} MB over ${Date.now() - t0} ms of 16 MB probes`);
  console.log(`health-e2e: agent RSS ${(before / 1e6).toFixed(1)} MB before, ${(after / 1e6).toFixed(1)} MB after 5 s of 16 MB probes`);
  await c.ok(['rm', '-f', Id]);
});

t('health - health events forged by a client that is not the node\'s agent: refused by the server, or by the signature check', async () => {
  const { Id } = await inspect('hok');
  const data = { status: 'unhealthy', failingStreak: 9, runningAt: Date.parse((JSON.parse(await c.ok(['inspect', 'hok']))[0].State.StartedAt as string)), log: [] };
  // another node's agent, and a user: the server does not let them publish on this node's subjects
  c.addIdentity('node-intruder', 'agent', { node: 'intruder' });
  const intruder = await c.connect('node-intruder');
  conns.push(intruder);
  const forged = new SourceChain(`node:${c.node}`).next('ContainerHealthChanged', Id, data as never);
  assert.match(await refusal(intruder.jetstream().publish(subjects.state(c.node, Id), forged.bytes)), /permission/i);
  const admin = await c.connect('admin');
  conns.push(admin);
  assert.match(await refusal(admin.jetstream().publish(subjects.state(c.node, Id), forged.bytes)), /permission/i);
  // someone with the server's config: stored, but unsigned (and a bogus signature) it is refused by the controller
  const tamper = await c.connect('tamper');
  conns.push(tamper);
  const info = async () => JSON.parse(new TextDecoder().decode((await tamper.request('api.tamper.info', encodeBody({}), { timeout: 5000 })).data)).ok as { seq: number; forged?: number };
  const forged0 = (await info()).forged ?? 0;
  await tamper.jetstream().publish(subjects.state(c.node, Id), forged.bytes);
  const h = headers();
  h.set(SIG_HEADER, 'AAAA');
  const again = new SourceChain(`node:${c.node}`).next('ContainerHealthChanged', Id, data as never);
  const ack = await tamper.jetstream().publish(subjects.state(c.node, Id), again.bytes, { headers: h });
  await until(async () => (await info()).seq >= ack.seq, 10_000, 'the controller to see them');
  assert.is((await info()).forged ?? 0, forged0 + 2, 'both refused');
  assert.is((await health('hok'))!.Status, 'healthy');
  assert.match(await psLine('hok'), /\(healthy\)/);
});

/** Why a publish was refused (it must be). */
async function refusal(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) { return String((err as Error).message); }
  throw new Error('the publish was stored');
}

t.run();
