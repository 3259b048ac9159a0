// create, start, restart and attach, end to end on a real cluster, and the stop signal and
// timeout. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Cluster, ROOT, sleep, until } from './helpers/cluster.js';

const t = suite('start-e2e');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

const inspect = async (ref: string) => JSON.parse(await c.ok(['inspect', ref]))[0];
const typesOf = async (id: string) => (await c.ok(['events', '--filter', `entity=${id}`, '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l).type as string);
const logs = async (ref: string) => (await c.tsctl(['logs', ref])).stdout;

t('create - placed and prepared, not started; start runs it, start -a returns its exit code; the writable layer is kept', async () => {
  const id = (await c.ok(['create', '--name', 'cr1', '--network', 'none', 'busybox', 'sh', '-c', 'echo run >> /counter; wc -l < /counter; exit 3'])).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const i = await inspect('cr1');
  assert.is(i.State.Status, 'created');
  assert.is(i.State.Pid, 0);
  assert.match(await c.ok(['ps', '-a']), /Created[^\n]*cr1/);
  assert.ok((await typesOf(id)).includes('ContainerCreated'));
  assert.not.ok((await typesOf(id)).includes('ContainerStarted'), 'a created container was started');
  const a = await c.tsctl(['start', '-a', 'cr1']);
  assert.is(a.code, 3, a.stderr);
  assert.is(a.stdout.trim(), '1');
  assert.is((await inspect('cr1')).State.ExitCode, 3);
  // started again: the same writable layer (the file has two lines), the output appended to the log
  const b = await c.tsctl(['start', '-a', 'cr1']);
  assert.is(b.code, 3, b.stderr);
  assert.is(b.stdout.trim(), '2', 'start -a showed old output or the layer was not kept');
  assert.is((await logs('cr1')).trim().split('\n').join(','), '1,2');
  // start without -a prints the name once it runs
  assert.is((await c.ok(['start', 'cr1'])).trim(), 'cr1');
  assert.is((await c.ok(['wait', 'cr1'])).trim(), '3');
  assert.is((await logs('cr1')).trim().split('\n').join(','), '1,2,3');
  await c.ok(['rm', 'cr1']);
});

t('start - of a running container, of a removed one, of an unknown one: one-line errors', async () => {
  await c.ok(['run', '-d', '--name', 'st1', '--network', 'none', 'busybox', 'sleep', '60']);
  const r = await c.tsctl(['start', 'st1']);
  assert.is(r.code, 125);
  assert.match(r.stderr, /^tsctl: container st1 is already running\n$/);
  const id = (await inspect('st1')).Id as string;
  await c.ok(['rm', '-f', 'st1']);
  for (const ref of ['st1', id]) {
    const g = await c.tsctl(['start', ref]);
    assert.is(g.code, 125);
    assert.is(g.stderr.trim().split('\n').length, 1, g.stderr);
    assert.match(g.stderr, /no such container/);
  }
  const a = await c.tsctl(['start', '-a', 'nosuch']);
  assert.is(a.code, 125);
  assert.match(a.stderr, /no such container "nosuch"/);
});

t('restart - stops (stop signal, then KILL after the timeout) and starts again; a created or exited one just starts', async () => {
  await c.ok(['run', '-d', '--name', 'rs1', '--network', 'none', 'busybox', 'sh', '-c', 'echo up; exec sleep 60']);
  const pid1 = (await inspect('rs1')).State.Pid as number;
  assert.is((await c.ok(['restart', '-t', '1', 'rs1'])).trim(), 'rs1');
  const i = await inspect('rs1');
  assert.is(i.State.Status, 'running');
  assert.is.not(i.State.Pid, pid1);
  await until(async () => (await logs('rs1')).trim() === 'up\nup', 10000, 'the second run\'s output');
  assert.is(i.RestartCount, 0, 'a user\'s restart is not the policy\'s');
  await c.ok(['stop', '-t', '0', 'rs1']);
  assert.is((await c.ok(['restart', 'rs1'])).trim(), 'rs1');
  assert.is((await inspect('rs1')).State.Status, 'running');
  await c.ok(['rm', '-f', 'rs1']);
  const bad = await c.tsctl(['restart', '-t', '-1', 'nosuch']);
  assert.is(bad.code, 125);
  assert.is(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /invalid -t "-1"|unknown option/);
});

t('attach - streams output from now on and returns the exit code; ^C detaches and the container runs on', async () => {
  await c.ok(['run', '-d', '--name', 'at1', '--network', 'none', 'busybox', 'sh', '-c', 'echo before; read x < /dev/null; sleep 2; echo after; exit 7']);
  await until(async () => (await logs('at1')).includes('before'), 10000, 'first output');
  const a = await c.tsctl(['attach', 'at1']);
  assert.is(a.code, 7, a.stderr);
  assert.not.match(a.stdout, /before/, 'attach replayed old output');
  assert.match(a.stdout, /after/);
  const stopped = await c.tsctl(['attach', 'at1']);
  assert.is(stopped.code, 125);
  assert.match(stopped.stderr, /^tsctl: you cannot attach to a stopped container: at1 is exited, start it first\n$/);
  await c.ok(['rm', 'at1']);

  // ^C: detached, the container is still running
  await c.ok(['run', '-d', '--name', 'at2', '--network', 'none', 'busybox', 'sh', '-c', 'while :; do echo tick; sleep 0.2; done']);
  const p = spawn(process.execPath, [join(ROOT, 'bin/tsctl.cjs'), 'attach', 'at2'], { env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds }, stdio: ['ignore', 'pipe', 'pipe'] });
  let outText = '';
  p.stdout.on('data', (d) => (outText += d));
  const exit = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  await until(() => outText.includes('tick'), 20000, 'attached output');
  p.kill('SIGINT');
  assert.is(await exit, 0);
  await sleep(300);
  assert.is((await inspect('at2')).State.Status, 'running', '^C stopped the container');
  // --sig-proxy: ^C goes to the container
  const q = spawn(process.execPath, [join(ROOT, 'bin/tsctl.cjs'), 'attach', '--sig-proxy', 'at2'], { env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds }, stdio: ['ignore', 'pipe', 'pipe'] });
  let qText = '';
  q.stdout.on('data', (d) => (qText += d));
  const qExit = new Promise<number | null>((r) => q.on('exit', (code) => r(code)));
  await until(() => qText.includes('tick'), 20000, 'attached output');
  q.kill('SIGINT');
  assert.is(await qExit, 130, 'the container\'s exit code (SIGINT) after --sig-proxy');
  assert.is((await inspect('at2')).State.Status, 'exited');
  await c.ok(['rm', 'at2']);
});

t('--stop-signal SIGINT - stop sends it first (a trap in the container proves it); --stop-timeout bounds the wait', async () => {
  await c.ok(['run', '-d', '--name', 'sg1', '--network', 'none', '--stop-signal', 'SIGINT', 'busybox', 'sh', '-c',
    'trap "echo got-INT; exit 42" INT; trap "echo got-TERM; exit 43" TERM; echo ready; while :; do sleep 0.1; done']);
  await until(async () => (await logs('sg1')).includes('ready'), 10000, 'trap set');
  assert.is((await inspect('sg1')).Config.StopSignal, 'SIGINT');
  await c.ok(['stop', 'sg1']);
  const i = await inspect('sg1');
  assert.is(i.State.ExitCode, 42, 'the container did not get SIGINT first');
  assert.match(await logs('sg1'), /got-INT/);
  // restart sends it too
  await c.ok(['start', 'sg1']);
  await until(async () => ((await logs('sg1')).match(/ready/g) ?? []).length === 2, 10000, 'trap set again');
  await c.ok(['restart', 'sg1']);
  assert.is(((await logs('sg1')).match(/got-INT/g) ?? []).length, 2);
  await c.ok(['rm', '-f', 'sg1']);

  // --stop-timeout 1: a container that ignores its stop signal is killed after 1 s, not 10
  await c.ok(['run', '-d', '--name', 'sg2', '--network', 'none', '--stop-timeout', '1', 'busybox', 'sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.1; done']);
  await until(async () => (await logs('sg2')).includes('ready'), 10000, 'trap set');
  assert.is((await inspect('sg2')).Config.StopTimeout, 1);
  await c.ok(['stop', 'sg2']);
  const j = await inspect('sg2');
  assert.is(j.State.ExitCode, 137);
  assert.is(j.State.Signal, 'SIGKILL');
  await c.ok(['rm', 'sg2']);
});

t('start - a container in another\'s pid namespace joins the peer as it runs now (its pid changed), or is refused while the peer is stopped', async () => {
  await c.ok(['run', '-d', '--name', 'peer', '--network', 'none', 'busybox', 'sleep', '600']);
  await c.ok(['create', '--name', 'joiner', '--network', 'none', '--pid', 'container:peer', 'busybox', 'sh', '-c', 'tr "\\0" " " < /proc/1/cmdline']);
  const a = await c.tsctl(['start', '-a', 'joiner']);
  assert.is(a.code, 0, a.stderr);
  assert.match(a.stdout, /^sleep 600/);
  await c.ok(['restart', '-t', '0', 'peer']);
  const b = await c.tsctl(['start', '-a', 'joiner']);
  assert.is(b.code, 0, b.stderr);
  assert.match(b.stdout, /^sleep 600/);
  await c.ok(['stop', '-t', '0', 'peer']);
  const r = await c.tsctl(['start', 'joiner']);
  assert.is(r.code, 125);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /is not running here: --pid container: needs a running container/);
  await c.ok(['rm', 'joiner', 'peer']);
});

t('attack - bad --restart, --stop-signal and --stop-timeout values are one-line errors, from tsctl and from the API', async () => {
  for (const [flag, v] of [['--restart', 'sometimes'], ['--restart', 'always:3'], ['--restart', 'on-failure:-1'], ['--restart', 'on-failure:1e3'], ['--restart', 'on-failure:x'],
    ['--stop-signal', 'SIGNOPE'], ['--stop-signal', '99'], ['--stop-timeout', '-1'], ['--stop-timeout', '1.5'], ['--stop-timeout', '99999999']]) {
    for (const verb of ['run', 'create']) {
      const r = await c.tsctl([verb, flag!, v!, '--network', 'none', 'busybox', 'true']);
      assert.is(r.code, 125, `${verb} ${flag} ${v}`);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`invalid ${flag}`), r.stderr);
    }
  }
  const before = (await c.ok(['ps', '-aq'])).trim();
  const rm = await c.tsctl(['run', '--rm', '--restart', 'always', 'busybox', 'true']);
  assert.is(rm.code, 125);
  assert.match(rm.stderr, /conflicting options: --restart always and --rm/);
  // hand-made requests: the controller checks the same
  const nc = await c.connect();
  try {
    const { controllerApi } = await import('../shared/api/controller.js');
    const { call } = await import('../shared/nats/rpc.js');
    const { subjects } = await import('../shared/subjects.js');
    const at = `${subjects.api}.admin`;
    for (const body of [
      { image: 'busybox', args: ['true'], restartPolicy: { name: 'sometimes' } },
      { image: 'busybox', args: ['true'], restartPolicy: { name: 'always', maxRetries: 3 } },
      { image: 'busybox', args: ['true'], restartPolicy: { name: 'on-failure', maxRetries: -5 } },
      { image: 'busybox', args: ['true'], restartPolicy: 'always' },
      { image: 'busybox', args: ['true'], stopTimeout: -1 },
      { image: 'busybox', args: ['true'], stopSignal: 'SIGNOPE' },
      { image: 'busybox', args: ['true'], autoRemove: true, restartPolicy: { name: 'always' } },
    ]) {
      let err: Error | undefined;
      try { await call(nc, at, controllerApi.run, body as never); } catch (e) { err = e as Error; }
      assert.ok(err, `accepted ${JSON.stringify(body)}`);
      assert.is(err!.message.split('\n').length, 1, err!.message);
    }
    let neg: Error | undefined;
    try { await call(nc, at, controllerApi.restart, { ref: 'x', timeout: -1 }); } catch (e) { neg = e as Error; }
    assert.match(neg?.message ?? '', /timeout/);
  } finally { await nc.close(); }
  assert.is((await c.ok(['ps', '-aq'])).trim(), before, 'a refused request left a container');
});

t('run --rm - its writable layer is mounted volatile (it goes with the container); a kept container\'s is not', async () => {
  // the container's own mount table: its root's filesystem options
  const rootOptions = 'grep " / / " /proc/self/mountinfo';
  const rm = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', rootOptions]);
  assert.is(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, / overlay overlay [^\n]*\bvolatile\b/, rm.stdout);
  const kept = await c.tsctl(['run', '--name', 'kept-layer', '--network', 'none', 'busybox', 'sh', '-c', `${rootOptions}; cat /kept 2>/dev/null; echo kept > /kept`]);
  assert.is(kept.code, 0, kept.stderr);
  assert.match(kept.stdout, / overlay overlay /, kept.stdout);
  assert.not.match(kept.stdout, /\bvolatile\b/, kept.stdout);
  // the kept one's layer is there for its next start
  assert.not.match(kept.stdout, /^kept$/m);
  const again = await c.tsctl(['start', '-a', 'kept-layer']);
  assert.is(again.code, 0, again.stderr);
  assert.match(again.stdout, /^kept$/m, again.stdout);
  await c.ok(['rm', '-f', 'kept-layer']);
});

t.run();
