// Health checks' pure parts (shared/health.ts): docker's state machine (starting → healthy /
// unhealthy, failures in the start period not counted), probe timing, how a run's flags merge
// over an image's, the flags themselves, the event's check and fold (who may report it, which
// run it is about), and the agent's bounded read of a probe's output. No root, no cluster.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyProbe, healthcheckCheck, healthSuffix, healthTiming, initialHealth, mergeHealthcheck, nextProbeIn, parseGoDuration, probeArgs,
  truncateOutput, HEALTH_OUTPUT_MAX, type HealthProbe, type HealthState } from '../shared/health.js';
import { healthRequest } from '../tsctl/health-flags.js';
import { CliError } from '../tsctl/client.js';
import { payloadChecks } from '../shared/schema.js';
import { fold } from '../shared/reducer.js';
import { eventLog } from './helpers/event-log.js';
import type { ContainerSpec } from '../shared/events.js';
import { encodeFrame } from '../agent/runtime/logfile.js';
import { readHead } from '../agent/health.js';

const t = healthTiming({ Test: ['CMD', 'x'], Retries: 3, StartPeriod: 10e9, Interval: 2e9, StartInterval: 0.5e9 });
const probe = (start: number, exitCode: number): HealthProbe => ({ start, end: start + 1, exitCode, output: `p${start}` });
const run = (s: HealthState, at: number, code: number) => applyProbe(s, probe(at, code), t, 0);

test('health - timing: docker\'s defaults for what is left at 0', () => {
  assert.equal(healthTiming({ Test: ['CMD', 'x'] }), { intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, startIntervalMs: 5_000, retries: 3 });
  assert.equal(t, { intervalMs: 2000, timeoutMs: 30_000, startPeriodMs: 10_000, startIntervalMs: 500, retries: 3 });
});

test('health - a pass makes it healthy; retries failures in a row make it unhealthy; a pass ends the streak', () => {
  let s = initialHealth();
  let r = run(s, 20_000, 0);
  assert.equal([r.state.status, r.changed, r.state.failingStreak], ['healthy', true, 0]);
  s = r.state;
  r = run(s, 21_000, 1); assert.equal([r.state.status, r.changed, r.state.failingStreak], ['healthy', false, 1]); s = r.state;
  r = run(s, 22_000, 1); assert.equal([r.state.status, r.changed, r.state.failingStreak], ['healthy', false, 2]); s = r.state;
  r = run(s, 23_000, 137); assert.equal([r.state.status, r.changed, r.state.failingStreak], ['unhealthy', true, 3]); s = r.state;
  r = run(s, 24_000, 1); assert.equal([r.state.status, r.changed, r.state.failingStreak], ['unhealthy', false, 4]); s = r.state;
  r = run(s, 25_000, 0); assert.equal([r.state.status, r.changed, r.state.failingStreak], ['healthy', true, 0]);
});

test('health - failures in the start period do not count while starting; after it they do', () => {
  let s = initialHealth();
  for (const at of [1000, 2000, 3000, 4000, 9999]) s = run(s, at, 1).state;
  assert.equal([s.status, s.failingStreak], ['starting', 0]);
  s = run(s, 10_000, 1).state;
  assert.equal([s.status, s.failingStreak], ['starting', 1]);
  s = run(s, 11_000, 1).state;
  const r = run(s, 12_000, 1);
  assert.equal([r.state.status, r.changed, r.state.failingStreak], ['unhealthy', true, 3]);
  // a pass in the start period makes it healthy at once, and failures count from then on (docker)
  let h = run(initialHealth(), 1000, 0).state;
  h = run(h, 1500, 1).state;
  assert.equal([h.status, h.failingStreak], ['healthy', 1]);
});

test('health - the log keeps the last 5 probes', () => {
  let s = initialHealth();
  for (let i = 1; i <= 8; i++) s = run(s, 20_000 + i, 0).state;
  assert.equal(s.log.map((p) => p.output), ['p20004', 'p20005', 'p20006', 'p20007', 'p20008']);
});

test('health - the next probe: the start interval while starting in the start period, else the interval', () => {
  assert.is(nextProbeIn(initialHealth(), t, 0, 5000), 500);
  assert.is(nextProbeIn(initialHealth(), t, 0, 10_000), 2000);
  assert.is(nextProbeIn({ status: 'healthy', failingStreak: 0, log: [] }, t, 0, 5000), 2000);
});

test('health - what a probe runs: CMD\'s words, CMD-SHELL through /bin/sh -c', () => {
  assert.equal(probeArgs({ Test: ['CMD', 'a', 'b c'] }), ['a', 'b c']);
  assert.equal(probeArgs({ Test: ['CMD-SHELL', 'a && b'] }), ['/bin/sh', '-c', 'a && b']);
});

test('health - a run\'s flags merge over the image\'s as docker\'s do', () => {
  const img = { Test: ['CMD-SHELL', 'img'], Interval: 5e9, Retries: 2 };
  assert.equal(mergeHealthcheck(img, undefined), img);
  assert.equal(mergeHealthcheck(img, { Test: [], Interval: 1e9 }), { Test: ['CMD-SHELL', 'img'], Interval: 1e9, Retries: 2 });
  assert.equal(mergeHealthcheck(img, { Test: ['CMD-SHELL', 'mine'] }), { Test: ['CMD-SHELL', 'mine'], Interval: 5e9, Retries: 2 });
  assert.equal(mergeHealthcheck(img, { Test: ['NONE'] }), { Test: ['NONE'], Interval: 5e9, Retries: 2 });
  assert.is(mergeHealthcheck(undefined, { Test: [], Interval: 1e9 }), undefined);
});

test('health - run flags: --health-cmd is CMD-SHELL, durations in ns, --no-healthcheck is NONE; bad ones are one line', () => {
  assert.equal(healthRequest({ healthcheck: true }), {});
  assert.equal(healthRequest({ healthCmd: 'exit 0', healthInterval: '1s', healthTimeout: '500ms', healthRetries: '2', healthStartPeriod: '1m', healthcheck: true }),
    { healthcheck: { Test: ['CMD-SHELL', 'exit 0'], Interval: 1e9, Timeout: 5e8, Retries: 2, StartPeriod: 60e9 } });
  assert.equal(healthRequest({ healthcheck: false }), { healthcheck: { Test: ['NONE'] } });
  const refused = (o: Parameters<typeof healthRequest>[0]) => { try { healthRequest(o); } catch (err) { assert.instance(err, CliError); return (err as Error).message; } throw new Error('accepted'); };
  assert.match(refused({ healthcheck: false, healthCmd: 'x' }), /--no-healthcheck conflicts with --health-\* options/);
  assert.match(refused({ healthInterval: '5' }), /invalid --health-interval "5": a duration/);
  assert.match(refused({ healthTimeout: '1us' }), /0 or at least 1ms/);
  assert.match(refused({ healthRetries: '-2' }), /invalid --health-retries/);
  assert.match(refused({ healthCmd: '  ' }), /invalid --health-cmd/);
});

test('health - Go durations', () => {
  assert.is(parseGoDuration('1h2m3.5s'), 3723.5e9);
  assert.is(parseGoDuration('0'), 0);
  for (const bad of ['', '5', '1d', '-1s', '1e3s', 's', '25h', '1s ']) assert.is(parseGoDuration(bad), undefined, bad);
});

test('health - the config check refuses what is not docker\'s form', () => {
  healthcheckCheck({ Test: ['CMD', 'a'], Interval: 1e6 }, 'h');
  for (const bad of [{ Test: ['CMD'] }, { Test: ['CMD-SHELL'] }, { Test: ['CMD-SHELL', 'a', 'b'] }, { Test: ['NONE', 'x'] }, { Test: ['RUN', 'x'] },
    { Test: ['CMD', 'a'], Interval: 5 }, { Test: ['CMD', 'a'], Retries: -1 }, { Test: ['CMD', 'a'], Timeout: 1e20 }, { Test: 'CMD a' }]) {
    assert.throws(() => healthcheckCheck(bad, 'h'), undefined, JSON.stringify(bad));
  }
});

test('health - the event\'s check bounds the log and the output', () => {
  const ok = { status: 'healthy', failingStreak: 0, runningAt: 1, log: [{ start: 1, end: 2, exitCode: 0, output: 'x'.repeat(HEALTH_OUTPUT_MAX) }] };
  payloadChecks.ContainerHealthChanged(ok, 'data');
  assert.throws(() => payloadChecks.ContainerHealthChanged({ ...ok, status: 'dead' }, 'data'));
  assert.throws(() => payloadChecks.ContainerHealthChanged({ ...ok, log: Array(6).fill(ok.log[0]) }, 'data'));
  assert.throws(() => payloadChecks.ContainerHealthChanged({ ...ok, log: [{ ...ok.log[0], output: 'x'.repeat(HEALTH_OUTPUT_MAX + 1) }] }, 'data'));
});

test('health - the fold: starting from a start with a check; a change only from its node, about its current run', () => {
  const spec: ContainerSpec = { name: 'web', image: 'b', imageDigest: `sha256:${'b'.repeat(64)}`, args: ['true'], env: [], hostname: 'w', workdir: '/', network: 'none', autoRemove: false,
    healthcheck: { Test: ['CMD-SHELL', 'true'] } };
  const { events, add } = eventLog();
  add('controller', 'ContainerRequested', 'c1', { node: 'n1', spec, user: 'u' });
  add('node:n1', 'ContainerStarted', 'c1', { pid: 4, receivedAt: 1, runningAt: 100 });
  assert.equal(fold(events).containers.c1!.health, { status: 'starting', failingStreak: 0, log: [] });
  const change = { status: 'unhealthy' as const, failingStreak: 3, runningAt: 100, log: [probe(150, 1)] };
  // another node, the controller, an earlier run: nothing changes
  add('node:n2', 'ContainerHealthChanged', 'c1', change);
  add('controller', 'ContainerHealthChanged', 'c1', change);
  add('node:n1', 'ContainerHealthChanged', 'c1', { ...change, runningAt: 99 });
  assert.is(fold(events).containers.c1!.health!.status, 'starting');
  add('node:n1', 'ContainerHealthChanged', 'c1', change);
  assert.equal(fold(events).containers.c1!.health, { status: 'unhealthy', failingStreak: 3, log: [probe(150, 1)] });
  // a new run starts again
  add('node:n1', 'ContainerExited', 'c1', { exitCode: 0, oomKilled: false, exitedAt: 200 });
  add('node:n1', 'ContainerStarted', 'c1', { pid: 5, receivedAt: 300, runningAt: 300 });
  assert.is(fold(events).containers.c1!.health!.status, 'starting');
  // without a check (or NONE) there is no health at all
  const { events: e2, add: add2 } = eventLog();
  add2('controller', 'ContainerRequested', 'c2', { node: 'n1', spec: { ...spec, healthcheck: { Test: ['NONE'] } }, user: 'u' });
  add2('node:n1', 'ContainerStarted', 'c2', { pid: 4, receivedAt: 1, runningAt: 100 });
  add2('node:n1', 'ContainerHealthChanged', 'c2', change);
  assert.is(fold(e2).containers.c2!.health, undefined);
});

test('health - ps words', () => {
  assert.equal([healthSuffix('healthy'), healthSuffix('unhealthy'), healthSuffix('starting'), healthSuffix(undefined)],
    [' (healthy)', ' (unhealthy)', ' (health: starting)', '']);
});

test('health - output: 4 KiB, not cut inside a character, read frame by frame from the probe\'s log', async () => {
  assert.is(truncateOutput(Buffer.from('é'.repeat(3000))).length, 2048);
  const dir = mkdtempSync(join(tmpdir(), 'health-test-'));
  try {
    const path = join(dir, 'exec.log');
    // 8 MiB in 64 KiB frames, stdout and stderr: only the head is read
    const frames: Buffer[] = [];
    for (let i = 0; i < 128; i++) frames.push(encodeFrame(i % 2 ? 'stderr' : 'stdout', Date.now(), Buffer.alloc(64 << 10, i % 2 ? 'e' : 'o')));
    writeFileSync(path, Buffer.concat(frames));
    const out = await readHead(path);
    assert.is(out.length, HEALTH_OUTPUT_MAX);
    assert.is(out, 'o'.repeat(HEALTH_OUTPUT_MAX));
    writeFileSync(path, Buffer.concat([encodeFrame('stdout', 1, Buffer.from('ok ')), encodeFrame('stderr', 2, Buffer.from('warn\n'))]));
    assert.is(await readHead(path), 'ok warn\n');
    // a truncated last frame and a missing file are what there is, never an error
    writeFileSync(path, encodeFrame('stdout', 1, Buffer.from('partial')).subarray(0, 17));
    assert.is(await readHead(path), 'part');
    assert.is(await readHead(join(dir, 'none')), '');
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
