// Fault injection: the agent is SIGKILLed between the steps of recording what it did (after
// the checkpoint write, after the append, between an exit and a removal). After a restart
// each state event is in the log exactly once and the view is right.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NatsConnection } from 'nats';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, until } from './helpers/cluster.js';
import { decodeEvent } from '../shared/codec.js';
import { readRaw } from '../shared/nats/log.js';

const t = suite('kill-window');
let c: Cluster;
let nc: NatsConnection;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  nc = await c.connect();
});
t.after(async () => { await nc?.close(); await c?.stop(); });

/** The types of every state event about `id`, in log order. */
async function stateEvents(id: string): Promise<string[]> {
  const out: string[] = [];
  for await (const m of readRaw(nc, `ev.state.${c.node}.${id}`)) out.push(decodeEvent(m.data).type);
  return out;
}

/** Restarts the agent armed with `failpoint`, runs `act`, waits for the agent to die there, restarts it clean. */
async function crashAt<T>(failpoint: string, act: () => Promise<T>): Promise<T> {
  await c.killAgent();
  const armed = c.startAgent({ SWARMLITE_FAILPOINTS: failpoint });
  await c.waitJoined();
  const result = act();
  await until(() => armed.exitCode !== null || armed.signalCode !== null, 30000, `the agent to die at ${failpoint}`);
  assert.is(armed.signalCode, 'SIGKILL', `killed at ${failpoint}`);
  c.startAgent();
  return result;
}

const idOf = async (name: string) => JSON.parse(await c.ok(['inspect', name]))[0].Id as string;
const stateOf = async (name: string) => JSON.parse(await c.ok(['inspect', name]))[0].State.Status as string;

t('kill window - after the checkpoint, before ContainerStarted: reported once after the restart, run -d succeeds', async () => {
  const r = await crashAt('after-checkpoint:ContainerStarted', () => c.tsctl(['run', '-d', '--network', 'none', '--name', 'k1', 'busybox', 'sleep', '300']));
  assert.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.equal(await stateEvents(id), ['ContainerStarted']);
  assert.is(await stateOf('k1'), 'running');
});

t('kill window - after ContainerStarted was appended, before the promise was cleared: not reported twice', async () => {
  const r = await crashAt('after-append:ContainerStarted', () => c.tsctl(['run', '-d', '--network', 'none', '--name', 'k2', 'busybox', 'sleep', '300']));
  assert.is(r.code, 0, r.stderr);
  await c.waitJoined();
  await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']); // the restarted agent is past recovery
  assert.equal(await stateEvents(await idOf('k2')), ['ContainerStarted']);
  assert.is(await stateOf('k2'), 'running');
});

t('kill window - stop: killed after the checkpoint, before ContainerExited', async () => {
  const r = await crashAt('after-checkpoint:ContainerExited', () => c.tsctl(['stop', '-t', '1', 'k1']));
  assert.is(r.code, 0, r.stderr);
  const id = await idOf('k1');
  assert.equal(await stateEvents(id), ['ContainerStarted', 'ContainerExited']);
  assert.is(await stateOf('k1'), 'exited');
});

t('kill window - rm -f: killed after the exit was reported, before the removal; the redelivered request finishes it', async () => {
  const id = await idOf('k2');
  const r = await crashAt('after-append:ContainerExited', () => c.tsctl(['rm', '-f', 'k2']));
  assert.is(r.code, 0, r.stderr);
  assert.equal(await stateEvents(id), ['ContainerStarted', 'ContainerExited', 'ContainerRemoved']);
  assert.not.match(await c.ok(['ps', '-a']), /k2/);
});

t('kill window - rm: killed after the checkpoint says removed, before ContainerRemoved', async () => {
  const id = await idOf('k1');
  const r = await crashAt('after-checkpoint:ContainerRemoved', () => c.tsctl(['rm', 'k1']));
  assert.is(r.code, 0, r.stderr);
  assert.equal(await stateEvents(id), ['ContainerStarted', 'ContainerExited', 'ContainerRemoved']);
});

t('kill window - run --rm: killed between the exit and the auto-removal; the restart removes it', async () => {
  const r = await crashAt('after-append:ContainerExited', () => c.tsctl(['run', '--rm', '--network', 'none', '--name', 'k3', 'busybox', 'true']));
  assert.is(r.code, 0, r.stderr);
  await until(async () => !(await c.ok(['ps', '-a'])).includes('k3'), 10000, 'k3 removed');
  const audit = JSON.parse(await c.ok(['audit', '--format', 'json']));
  assert.equal(audit.findings, [], 'every writer\'s chain is whole');
});

// the auto-removal's teardown starts while ContainerExited is being appended: the agent dies
// with the exit promised in its checkpoint and the container's files possibly half gone
t('kill window - run --rm: killed after the exit\'s checkpoint, its removal already under way: the restart reports exit and removal once each, nothing left', async () => {
  const r = await crashAt('after-checkpoint:ContainerExited', () => c.tsctl(['run', '--rm', '--network', 'none', '--name', 'k4', 'busybox', 'true']));
  assert.is(r.code, 0, r.stderr);
  await until(async () => !(await c.ok(['ps', '-a'])).includes('k4'), 10000, 'k4 removed');
  const requested = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l) as { type: string; entity: string; data: { spec?: { name?: string } } })
    .find((e) => e.type === 'ContainerRequested' && e.data.spec?.name === 'k4');
  assert.ok(requested, 'k4 was requested');
  const id = requested!.entity;
  assert.equal(await stateEvents(id), ['ContainerStarted', 'ContainerExited', 'ContainerRemoved']);
  const node = join(c.dir, 'nodes', c.node);
  assert.not.ok(existsSync(join(node, 'bundles', id)), 'bundle removed');
  assert.not.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(id), 'rootfs unmounted');
});

t.run();
