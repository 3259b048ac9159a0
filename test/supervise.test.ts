// Supervision: ops/supervise restarts a crashed process with back-off and records why;
// the systemd units pass `systemd-analyze verify`; an agent SIGKILLed under ops/up comes
// back by itself and serves, and ops/down stops everything. The ops/up part needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync, existsSync, mkdirSync, writeFileSync, copyFileSync, symlinkSync, readdirSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, freePort, sleep, until } from './helpers/cluster.js';
import { freeSubnet } from './helpers/subnets.js';

const t = suite('supervise');
const SUPERVISE = join(ROOT, 'ops/supervise');
let dir: string;
const started: number[] = [];

t.before(() => { dir = mkdtempSync(join(tmpdir(), 'swl-sup-')); });
t.after(() => {
  for (const pid of started) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  rmSync(dir, { recursive: true, force: true });
});

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const readPid = (f: string) => Number(readFileSync(f, 'utf8').trim());

/** Starts a supervisor in its own session, as ops/up does; returns its state dir. */
function supervise(name: string, backoff: string, command: string[]): { state: string; log: () => string } {
  const state = mkdtempSync(join(dir, `${name}-`));
  const p = spawn(SUPERVISE, ['--name', name, '--state-dir', state, '--backoff', backoff, '--', ...command], { stdio: 'ignore', detached: true });
  started.push(p.pid!);
  p.unref();
  return { state, log: () => { try { return readFileSync(join(state, 'logs', `${name}.log`), 'utf8'); } catch { return ''; } } };
}

async function stopSupervisor(state: string, name: string): Promise<void> {
  const f = join(state, 'run', `${name}.supervisor.pid`);
  if (!existsSync(f)) return;
  const pid = readPid(f);
  process.kill(pid, 'SIGTERM');
  await until(() => !alive(pid), 10000, `supervisor ${name} to stop`);
}

t('supervise - a crashing process is restarted with doubling back-off; the log and the restarts file say why', async () => {
  const s = supervise('crashy', '50,400,60000', ['bash', '-c', 'echo "up restarts=$SWARMLITE_RESTARTS reason=${SWARMLITE_RESTART_REASON:-none}"; exit 3']);
  await until(() => /restart 6 in/.test(s.log()), 15000, 'six restarts');
  await stopSupervisor(s.state, 'crashy');
  const log = s.log();
  const delays = [...log.matchAll(/restart (\d+) in (\d+) ms/g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.equal(delays.slice(0, 6), [[1, 50], [2, 100], [3, 200], [4, 400], [5, 400], [6, 400]]);
  assert.match(log, /exited \(exit code 3\) after \d+ ms up; restart 1 in 50 ms/);
  assert.match(log, /crash loop, backing off: restart 2 in 100 ms/);
  assert.match(log, /crash loop, backing off: restart 4 in 400 ms \(the cap\)/);
  assert.match(log, /up restarts=0 reason=none/);
  assert.match(log, /up restarts=2 reason=exit code 3 after \d+ ms up/);
  const rec = JSON.parse(readFileSync(join(s.state, 'run', 'crashy.restarts'), 'utf8'));
  assert.is(rec.name, 'crashy');
  assert.ok(rec.restarts >= 6);
  assert.is(rec.status, 3);
  assert.is(rec.exit, 'exit code 3');
  assert.is(rec.by, 'ops/supervise');
  assert.match(rec.exitedAt, /^\d{4}-\d\d-\d\dT/);
  assert.not.ok(existsSync(join(s.state, 'run', 'crashy.supervisor.pid')), 'pid files removed on stop');
});

t('supervise - a process that stayed up past the stable time restarts at the first delay again', async () => {
  // runs 0..2 crash at once, run 3 stays up 1.2 s (stable: 700 ms), then crashes
  const s = supervise('settles', '50,3200,700', ['bash', '-c', '[ "$SWARMLITE_RESTARTS" = 3 ] && sleep 1.2; exit 1']);
  await until(() => /restart 5 in/.test(s.log()), 15000, 'five restarts');
  await stopSupervisor(s.state, 'settles');
  const delays = [...s.log().matchAll(/restart (\d+) in (\d+) ms/g)].map((m) => Number(m[2]));
  assert.equal(delays.slice(0, 5), [50, 100, 200, 50, 100]);
});

t('supervise - TERM stops the process and nothing is restarted; a KILLed child is reported as such', async () => {
  const s = supervise('sleeper', '50,400,60000', ['sleep', '300']);
  const pidFile = join(s.state, 'run', 'sleeper.pid');
  await until(() => existsSync(pidFile), 5000, 'the child pid file');
  const first = readPid(pidFile);
  process.kill(first, 'SIGKILL');
  await until(() => /restarted as pid/.test(s.log()), 5000, 'the restart');
  assert.match(s.log(), /exited \(killed by SIGKILL\) after \d+ ms up; restart 1 in 50 ms/);
  const rec = JSON.parse(readFileSync(join(s.state, 'run', 'sleeper.restarts'), 'utf8'));
  assert.equal([rec.restarts, rec.status, rec.exit], [1, 137, 'killed by SIGKILL']);
  const second = readPid(pidFile);
  assert.is.not(second, first);
  assert.ok(alive(second));
  await stopSupervisor(s.state, 'sleeper');
  await until(() => !alive(second), 5000, 'the child to stop with its supervisor');
  await sleep(300);
  assert.match(s.log(), /stopped \(killed by SIGTERM\)/);
  assert.is((s.log().match(/restarted as pid/g) ?? []).length, 1, 'not restarted after the stop');
  assert.not.ok(existsSync(pidFile));
});

t('supervise - bad usage is one line and exit 2', () => {
  const r = spawnSync(SUPERVISE, ['--name', 'X!', '--state-dir', dir, '--', 'true'], { encoding: 'utf8' });
  assert.is(r.status, 2);
  assert.match(r.stderr, /^ops\/supervise: --name must be/);
  const b = spawnSync(SUPERVISE, ['--name', 'x', '--state-dir', dir, '--backoff', 'fast', '--', 'true'], { encoding: 'utf8' });
  assert.is(b.status, 2);
});

t('supervise - the systemd path records an exit in the same file (ExecStopPost)', () => {
  const state = mkdtempSync(join(dir, 'sd-'));
  const env = { ...process.env, EXIT_CODE: 'killed', EXIT_STATUS: 'KILL', SERVICE_RESULT: 'signal' };
  for (let i = 0; i < 2; i++) assert.is(spawnSync(SUPERVISE, ['--record-exit', 'agent', '--state-dir', state], { env }).status, 0);
  const rec = JSON.parse(readFileSync(join(state, 'run', 'agent.restarts'), 'utf8'));
  assert.equal([rec.name, rec.restarts, rec.status, rec.exit, rec.by], ['agent', 2, 137, 'killed KILL (signal)', 'systemd']);
});

const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
if (!analyze) {
  console.log('  SKIP units - systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)');
} else {
  t('units - systemd-analyze verify accepts the three units; a broken one is refused', () => {
    // systemd is not PID 1 on this machine (no /run/systemd/system), so ops/up's systemd
    // path is checked only this far: the units parse and their commands exist
    const units = mkdtempSync(join(dir, 'units-'));
    const state = mkdtempSync(join(dir, 'unit-state-'));
    mkdirSync(join(state, 'run')); mkdirSync(join(state, 'logs'));
    writeFileSync(join(state, 'run', 'units.env'), `SWARMLITE_ROOT=${ROOT}\nSWARMLITE_NATS=nats://127.0.0.1:4222\nSWARMLITE_NODE=n1\n`);
    const inst = spawnSync('systemd-escape', ['--path', state], { encoding: 'utf8' }).stdout.trim();
    const verify = (names: string[]) => spawnSync('systemd-analyze', ['verify', '--man=no', ...names.map((n) => join(units, n))],
      { encoding: 'utf8', cwd: units, env: { ...process.env, SYSTEMD_UNIT_PATH: `${units}:` } });
    const names: string[] = [];
    for (const u of ['nats', 'controller', 'agent']) {
      copyFileSync(join(ROOT, 'ops/units', `swarmlite-${u}@.service`), join(units, `swarmlite-${u}@.service`));
      symlinkSync(`swarmlite-${u}@.service`, join(units, `swarmlite-${u}@${inst}.service`));
      names.push(`swarmlite-${u}@${inst}.service`);
    }
    const r = verify(names);
    assert.is(r.status, 0, r.stderr);
    // systemd < 254 does not know the back-off keys and ignores them: the only warnings allowed
    const other = (r.stdout + r.stderr).split('\n').filter((l) => l && !/Unknown key '(RestartSteps|RestartMaxDelaySec)'/.test(l));
    assert.equal(other, []);
    const units2 = readFileSync(join(ROOT, 'ops/units/swarmlite-agent@.service'), 'utf8');
    assert.match(units2, /^Restart=always$/m);
    assert.match(units2, /^KillMode=process$/m, 'containers outlive an agent restart');
    // the check can fail: a unit whose command does not exist
    writeFileSync(join(units, 'swarmlite-broken.service'), '[Service]\nExecStart=/nonexistent/swarmlite\nRestart=always\n');
    assert.is.not(verify(['swarmlite-broken.service']).status, 0);
  });
}

t('ops/up - the agent SIGKILLed comes back by itself and serves; ops/down stops everything', async () => {
  const state = join(dir, 'cluster');
  const port = await freePort();
  const node = `tsup${randomBytes(3).toString('hex')}`;
  const subnet = freeSubnet();
  const env = { ...process.env, SWARMLITE_NATS: `nats://127.0.0.1:${port}`, SWARMLITE_CREDS: join(state, 'trust/creds/admin.creds') };
  const tsctl = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/tsctl.cjs'), ...args], { encoding: 'utf8', env, timeout: 60000 });
  const pids = () => readdirSync(join(state, 'run')).filter((f) => f.endsWith('.pid')).map((f) => readPid(join(state, 'run', f)));
  let all: number[] = [];
  try {
    const up = spawnSync(join(ROOT, 'ops/up'), ['--no-setup', '--state-dir', state, '--nats-port', String(port), '--node', node, '--subnet', subnet], { encoding: 'utf8', timeout: 60000 });
    assert.is(up.status, 0, up.stderr);
    assert.match(up.stdout, /supervised by supervise/);
    all = pids();
    assert.is(all.length, 6, 'three supervisors, three processes');
    const joinedAt = () => (JSON.parse(tsctl(['nodes', '--format', 'json']).stdout || '[]') as { id: string; joinedAt: number }[]).find((n) => n.id === node)?.joinedAt;
    const firstJoin = joinedAt();
    assert.ok(firstJoin);
    const agent = readPid(join(state, 'run', 'agent.pid'));
    process.kill(agent, 'SIGKILL');
    const t0 = Date.now();
    await until(() => { const j = joinedAt(); return j !== undefined && j > firstJoin!; }, 30000, 'the agent to rejoin');
    const back = Date.now() - t0;
    const again = readPid(join(state, 'run', 'agent.pid'));
    all.push(again);
    assert.is.not(again, agent);
    assert.ok(alive(again));
    const rec = JSON.parse(readFileSync(join(state, 'run', 'agent.restarts'), 'utf8'));
    assert.equal([rec.restarts, rec.exit], [1, 'killed by SIGKILL']);
    assert.match(readFileSync(join(state, 'logs', 'agent.log'), 'utf8'), /supervise agent: exited \(killed by SIGKILL\) after \d+ ms up; restart 1 in 100 ms/);
    console.log(`  agent SIGKILLed: rejoined in ${back} ms`);
    // the restart is an event in the log, with the reason
    const joins = tsctl(['events', '--format', 'json', '--filter', `ev.node.${node}`]).stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: { restart?: { count: number; exit: string; by: string } } });
    assert.equal(joins.map((j) => j.data.restart && [j.data.restart.count, j.data.restart.exit, j.data.restart.by]), [undefined, [1, 'killed by SIGKILL', 'ops/supervise']]);
    // and it serves: a container runs on the restarted agent
    const tar = join(dir, 'busybox.tar');
    assert.is(spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [tar]).status, 0);
    const imp = tsctl(['image', 'import', tar, '--name', 'busybox']);
    assert.is(imp.status, 0, imp.stderr);
    const r = tsctl(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'back']);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, 'back\n');
  } finally {
    const down = spawnSync(join(ROOT, 'ops/down'), ['--state-dir', state], { encoding: 'utf8', timeout: 120000 });
    assert.is(down.status, 0, down.stderr);
    await sleep(200);
    const left = all.filter(alive);
    for (const pid of left) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    assert.equal(left, [], 'ops/down left no supervisor or process behind');
    assert.not.ok(existsSync(state));
  }
});

t.run();
