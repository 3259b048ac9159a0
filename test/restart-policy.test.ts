// The restart policy's pure part: the flag, the decision, docker's back-off. No root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { afterAgentStart, BACKOFF_MAX_MS, nextBackoff, parseRestartPolicy, RestartPolicyError, shouldRestart } from '../shared/restart-policy.js';
import { payloadChecks, restartPolicy } from '../shared/schema.js';
import { fold } from '../shared/reducer.js';
import type { ContainerSpec } from '../shared/events.js';
import { eventLog } from './helpers/event-log.js';

const spec: ContainerSpec = {
  name: 'r', image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'none', autoRemove: false,
};

const t = suite('restart-policy');

t('parse - the four policies and on-failure\'s count; junk is one line naming the flag', () => {
  assert.equal(parseRestartPolicy('no'), { name: 'no' });
  assert.equal(parseRestartPolicy('always'), { name: 'always' });
  assert.equal(parseRestartPolicy('unless-stopped'), { name: 'unless-stopped' });
  assert.equal(parseRestartPolicy('on-failure'), { name: 'on-failure' });
  assert.equal(parseRestartPolicy('on-failure:3'), { name: 'on-failure', maxRetries: 3 });
  assert.equal(parseRestartPolicy('on-failure:0'), { name: 'on-failure' });
  for (const bad of ['', 'sometimes', 'always:2', 'no:1', 'on-failure:', 'on-failure:-1', 'on-failure:1.5', 'on-failure:1e3', 'on-failure:99999999', 'ALWAYS', 'always\n', 'on-failure:3\nx', 'x'.repeat(100000)]) {
    assert.throws(() => parseRestartPolicy(bad), (e: Error) => e instanceof RestartPolicyError && /^invalid --restart "/.test(e.message) && !e.message.includes('\n') && e.message.length < 200, JSON.stringify(bad.slice(0, 20)));
  }
});

t('schema - a forged policy in an event or request is refused', () => {
  assert.equal(restartPolicy({ name: 'on-failure', maxRetries: 2 }, 'p'), { name: 'on-failure', maxRetries: 2 });
  for (const bad of [{ name: 'sometimes' }, { name: 'always', maxRetries: 3 }, { name: 'on-failure', maxRetries: -1 }, { name: 'on-failure', maxRetries: 1.5 },
    { name: 'on-failure', maxRetries: 1e12 }, 'always', null, []]) {
    assert.throws(() => restartPolicy(bad, 'spec.restartPolicy'), undefined, JSON.stringify(bad));
  }
});

t('decision - on-failure counts failures only, always and unless-stopped any exit, a stop ends every policy', () => {
  const of = parseRestartPolicy('on-failure:2');
  assert.ok(shouldRestart(of, 1, 0, false));
  assert.ok(shouldRestart(of, 1, 1, false));
  assert.not.ok(shouldRestart(of, 1, 2, false), 'on-failure:2 started a third time');
  assert.not.ok(shouldRestart(of, 0, 0, false), 'on-failure after exit 0');
  assert.ok(shouldRestart(parseRestartPolicy('on-failure'), 1, 1000, false));
  assert.ok(shouldRestart(parseRestartPolicy('always'), 0, 50, false));
  assert.ok(shouldRestart(parseRestartPolicy('unless-stopped'), 137, 5, false));
  for (const p of ['always', 'unless-stopped', 'on-failure']) assert.not.ok(shouldRestart(parseRestartPolicy(p), 1, 0, true));
  assert.not.ok(shouldRestart(undefined, 1, 0, false));
  assert.not.ok(shouldRestart(parseRestartPolicy('no'), 1, 0, false));
});

t('back-off - 100 ms doubling to a minute, back to 100 ms after a run of 10 s', () => {
  const seen: number[] = [];
  let b = 0;
  for (let k = 0; k < 12; k++) { b = nextBackoff(b, 50); seen.push(b); }
  assert.equal(seen, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]);
  assert.is(BACKOFF_MAX_MS, 60000);
  assert.is(nextBackoff(60000, 10_000), 100);
  assert.is(nextBackoff(3200, 9_999), 6400);
});

t('agent start - the policy carries on; a stop holds for unless-stopped, not for always', () => {
  const now = 1000;
  assert.is(afterAgentStart(parseRestartPolicy('on-failure:3'), false, 1500, now), 1500);
  assert.is(afterAgentStart(parseRestartPolicy('on-failure:3'), false, undefined, now), undefined);
  assert.is(afterAgentStart(parseRestartPolicy('unless-stopped'), true, undefined, now), undefined);
  assert.is(afterAgentStart(parseRestartPolicy('always'), true, undefined, now), now);
  assert.is(afterAgentStart(parseRestartPolicy('on-failure'), true, undefined, now), undefined);
  assert.is(afterAgentStart(undefined, false, 5, now), undefined);
});

t('schema - a forged ContainerRequested (policy, stop signal, stop timeout) does not decode', () => {
  const ok = { node: 'n1', spec: { ...spec, restartPolicy: { name: 'on-failure', maxRetries: 2 }, stopSignal: 'SIGINT', stopTimeout: 5 }, user: 'u', create: true };
  assert.ok(payloadChecks.ContainerRequested(ok, 'data'));
  for (const bad of [{ restartPolicy: { name: 'sometimes' } }, { restartPolicy: { name: 'unless-stopped', maxRetries: 1 } }, { stopTimeout: -1 }, { stopTimeout: 1e9 },
    { stopSignal: 'SIG INT; rm -rf' }, { stopSignal: 'x'.repeat(100) }]) {
    assert.throws(() => payloadChecks.ContainerRequested({ ...ok, spec: { ...ok.spec, ...bad } }, 'data'), undefined, JSON.stringify(bad));
  }
  assert.throws(() => payloadChecks.ContainerStarted({ pid: 1, receivedAt: 1, runningAt: 1, restartCount: -1 }, 'data'));
  assert.throws(() => payloadChecks.ContainerExited({ exitCode: 1, oomKilled: false, exitedAt: 1, restartInMs: -5 }, 'data'));
});

t('view - created, restarting and RestartCount as the log says; a stop ends restarting; a user\'s start resets the count', () => {
  const { events, add } = eventLog();
  add('node:n1', 'NodeJoined', 'n1', { hostname: 'h', cpus: 2, memory: 1e9, kernel: '6', features: [], version: '1' });
  add('controller', 'ContainerRequested', 'c1', { node: 'n1', spec: { ...spec, restartPolicy: { name: 'always' } }, user: 'u', create: true });
  let v = fold(events);
  assert.is(v.containers.c1!.state, 'created');
  assert.is(v.containers.c1!.desired, 'stopped');
  add('node:n1', 'ContainerCreated', 'c1', { ip: '10.0.0.9' });
  add('controller', 'ContainerStartRequested', 'c1', { user: 'u' });
  add('node:n1', 'ContainerStarted', 'c1', { pid: 5, receivedAt: 1, runningAt: 2 });
  add('node:n1', 'ContainerExited', 'c1', { exitCode: 0, oomKilled: false, exitedAt: 3, restartInMs: 100 });
  v = fold(events);
  assert.is(v.containers.c1!.ip, '10.0.0.9');
  assert.is(v.containers.c1!.restarting, true);
  add('node:n1', 'ContainerStarted', 'c1', { pid: 6, receivedAt: 4, runningAt: 5, restartCount: 1 });
  v = fold(events);
  assert.is(v.containers.c1!.restartCount, 1);
  assert.is(v.containers.c1!.restarting, undefined);
  add('node:n1', 'ContainerExited', 'c1', { exitCode: 0, oomKilled: false, exitedAt: 6, restartInMs: 200 });
  add('controller', 'ContainerStopRequested', 'c1', { timeout: 10, user: 'u' });
  v = fold(events);
  assert.is(v.containers.c1!.restarting, undefined);
  assert.is(v.containers.c1!.state, 'exited');
  add('controller', 'ContainerStartRequested', 'c1', { user: 'u' });
  add('node:n1', 'ContainerStarted', 'c1', { pid: 7, receivedAt: 7, runningAt: 8 });
  v = fold(events);
  assert.is(v.containers.c1!.restartCount, undefined);
  assert.is(v.containers.c1!.desired, 'running');
  // a node that is not the container's cannot make it look restarting
  add('node:n2', 'ContainerExited', 'c1', { exitCode: 0, oomKilled: false, exitedAt: 9, restartInMs: 1 });
  assert.is(fold(events).containers.c1!.state, 'running');
});

t.run();
