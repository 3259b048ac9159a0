// The spine, as a new user would try it: a real nats-server, controller and agent, and
// containers checked for real isolation. Needs root (namespaces, mounts).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, until, sleep } from './helpers/cluster.js';

const t = suite('e2e');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

t('run - attached run streams output and the pid namespace starts at 1', async () => {
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'echo $$; echo err >&2']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '1\n');
  assert.is(r.stderr, 'err\n');
});

t('run - ps inside lists only the container\'s processes', async () => {
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'ps', '-o', 'pid,comm']);
  assert.is(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  assert.equal(rows, [['1', 'ps']]);
});

t('run - hostname is the container\'s, and --hostname sets it', async () => {
  const a = await c.tsctl(['run', '--rm', '--network', 'none', '--hostname', 'box7', 'busybox', 'hostname']);
  assert.is(a.stdout.trim(), 'box7');
  const b = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'hostname']);
  assert.match(b.stdout.trim(), /^[0-9a-f]{12}$/);
});

t('run - host paths are not visible; /proc, /dev and /sys are the container\'s', async () => {
  const marker = join(c.dir, 'host-marker');
  writeFileSync(marker, 'secret');
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c',
    `test -e ${marker} && echo FOUND-$((40+2)); ls /; ls /dev; cat /proc/1/cmdline | tr '\\0' ' '; echo; touch /sys/x 2>&1 || echo sysro`]);
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stdout, /FOUND-42/);
  const r2 = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'test -e /bin/busybox && echo FOUND-$((40+2))']);
  assert.match(r2.stdout, /FOUND-42/); // the probe itself works
  assert.match(r.stdout, /\bbin\b/);
  for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm', 'mqueue']) assert.match(r.stdout, new RegExp(`\\b${d}\\b`), d);
  assert.match(r.stdout, /sh -c/);
  assert.match(r.stdout, /sysro/);
});

t('run - env, working dir and exit code', async () => {
  const r = await c.tsctl(['run', '--rm', '--network', 'none', '-e', 'GREETING=hi there', '-w', '/tmp', 'busybox', 'sh', '-c', 'echo "$GREETING from $(pwd)"; exit 7']);
  assert.is(r.code, 7);
  assert.is(r.stdout, 'hi there from /tmp\n');
});

t('run - a missing command exits 127 with one clear line', async () => {
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'no-such-cmd']);
  assert.is(r.code, 127);
  assert.match(r.stderr, /no-such-cmd/);
  assert.is(r.stderr.trim().split('\n').length, 1);
});

t('run - bad input is one line and exit 125', async () => {
  for (const args of [['run', 'busybx', 'true'], ['run', '--memory', '64x', 'busybox', 'true'], ['rm', 'nope'], ['run', '--bogus', 'busybox']]) {
    const r = await c.tsctl(args);
    assert.is(r.code, 125, args.join(' '));
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^tsctl: /);
  }
  const r = await c.tsctl(['run', 'busybx', 'true']);
  assert.match(r.stderr, /no such image "busybx"/);
});

t('run - --rm leaves no mount, directory or process', async () => {
  const r = await c.tsctl(['run', '--rm', '--name', 'gone', 'busybox', 'true']);
  assert.is(r.code, 0, r.stderr);
  // like docker run --rm: once tsctl returns, the container is gone
  assert.not.match(await c.ok(['ps', '-a', '--format', 'json']), /"gone"/);
  const nodeDir = join(c.dir, 'nodes', c.node);
  assert.not.match(readFileSync('/proc/self/mounts', 'utf8'), new RegExp(nodeDir));
  for (const d of ['bundles', 'snapshots', 'runtime']) {
    const p = join(nodeDir, d);
    assert.equal(existsSync(p) ? readdirSync(p) : [], [], d);
  }
});

t('run - -d prints the id; ps, logs, stop, rm work on it', async () => {
  const id = (await c.ok(['run', '-d', '--network', 'none', '--name', 'sleeper', 'busybox', 'sh', '-c', 'echo started; exec sleep 1000'])).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const ps = JSON.parse(await c.ok(['ps', '--format', 'json'])) as { id: string; name: string; state: string; node: string; image: string }[];
  const me = ps.find((p) => p.id === id)!;
  assert.is(me.state, 'running');
  assert.is(me.name, 'sleeper');
  assert.is(me.node, c.node);
  assert.is(me.image, 'busybox');
  await until(async () => (await c.ok(['logs', 'sleeper'])) === 'started\n', 5000, 'logs');
  const t0 = Date.now();
  await c.ok(['stop', '-t', '1', 'sleeper']);
  assert.ok(Date.now() - t0 < 8000);
  const after = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { id: string; state: string; exitCode: number }[];
  const st = after.find((p) => p.id === id)!;
  assert.is(st.state, 'exited');
  assert.is(st.exitCode, 137); // sleep as pid 1 ignores TERM, so KILL after the grace period
  const ins = JSON.parse(await c.ok(['inspect', 'sleeper']))[0];
  assert.is(ins.State.Signal, 'SIGKILL');
  await c.ok(['rm', 'sleeper']);
  assert.not.match(await c.ok(['ps', '-a']), /sleeper/);
});

t('run - rm of a running container needs -f', async () => {
  await c.ok(['run', '-d', '--network', 'none', '--name', 'busy', 'busybox', 'sleep', '1000']);
  const r = await c.tsctl(['rm', 'busy']);
  assert.is(r.code, 125);
  assert.match(r.stderr, /stop it first or use rm -f/);
  await c.ok(['rm', '-f', 'busy']);
  assert.not.match(await c.ok(['ps', '-a']), /busy/);
});

t('run - kill -s delivers the signal and the exit says so', async () => {
  await c.ok(['run', '-d', '--network', 'none', '--name', 'trap', 'busybox', 'sh', '-c', 'trap "exit 3" USR1; while :; do sleep 0.05; done']);
  await sleep(200);
  await c.ok(['kill', '-s', 'USR1', 'trap']);
  await until(async () => (JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { name: string; state: string; exitCode: number }[])
    .find((p) => p.name === 'trap' && p.state === 'exited' && p.exitCode === 3), 5000, 'exit 3');
  await c.ok(['rm', 'trap']);
});

t('events - a run\'s events appear in order with their causes', async () => {
  const r = await c.tsctl(['run', '--rm', '--network', 'none', '--name', 'evs', 'busybox', 'true']);
  assert.is(r.code, 0);
  const lines = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
  const mine = lines.filter((e) => e.type.startsWith('Container') && lines.some((q) => q.type === 'ContainerRequested' && q.data.spec.name === 'evs' && q.entity === e.entity));
  assert.equal(mine.map((e) => e.type), ['ContainerRequested', 'ContainerStarted', 'ContainerExited', 'ContainerRemoved']);
  const req = mine[0];
  for (const e of mine.slice(1)) assert.is(e.cause, req.id, e.type);
  for (let i = 1; i < lines.length; i++) assert.ok(lines[i].seq > lines[i - 1].seq);
  assert.is(req.src, 'controller');
  assert.is(mine[1].src, `node:${c.node}`);
  for (const k of ['seq', 'type', 'ts', 'src', 'entity']) assert.ok(k in req, k);
  const audit = await c.tsctl(['audit', '--format', 'json']);
  assert.is(audit.code, 0, audit.stdout);
  assert.is(JSON.parse(audit.stdout).intact, true);
});

t('agent - SIGKILLed and restarted, it re-adopts a running container and reports exits it missed', async () => {
  const id = (await c.ok(['run', '-d', '--network', 'none', '--name', 'survivor', 'busybox', 'sh', '-c', 'while :; do sleep 0.1; done'])).trim();
  const short = (await c.ok(['run', '-d', '--network', 'none', '--name', 'shortlived', 'busybox', 'sh', '-c', 'sleep 1; exit 4'])).trim();
  await until(async () => (JSON.parse(await c.ok(['ps', '--format', 'json'])) as { state: string }[]).filter((p) => p.state === 'running').length === 2, 5000, 'both running');
  const pid = JSON.parse(await c.ok(['inspect', 'survivor']))[0].State.Pid as number;
  await c.killAgent();
  await sleep(1500); // shortlived exits while the agent is away
  assert.ok(existsSync(`/proc/${pid}`), 'container died with the agent');
  c.startAgent();
  await c.waitJoined();
  const ps = await until(async () => {
    const l = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { id: string; state: string; exitCode: number }[];
    const s = l.find((p) => p.id === short);
    return s?.state === 'exited' ? l : undefined;
  }, 10000, 'exit reported after restart');
  assert.is(ps.find((p) => p.id === short)!.exitCode, 4);
  assert.is(ps.find((p) => p.id === id)!.state, 'running');
  // adopted: the new agent acts on it
  await c.ok(['stop', '-t', '0', 'survivor']);
  const after = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { id: string; state: string }[];
  assert.is(after.find((p) => p.id === id)!.state, 'exited');
  assert.not.ok(existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sleep'));
  await c.ok(['rm', 'survivor', 'shortlived']);
});

t('logs - -f streams new output as it comes and ends when the container exits', async () => {
  await c.ok(['run', '-d', '--network', 'none', '--name', 'ticker', 'busybox', 'sh', '-c', 'for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done; echo bye >&2']);
  const t0 = Date.now();
  const r = await c.tsctl(['logs', '-f', 'ticker']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n');
  assert.is(r.stderr, 'bye\n');
  assert.ok(Date.now() - t0 >= 700, 'logs -f returned before the container finished');
  const again = await c.tsctl(['logs', 'ticker']);
  assert.is(again.stdout, r.stdout);
  await c.ok(['rm', 'ticker']);
});

t('controller - a restarted controller keeps the view from its snapshot plus the tail', async () => {
  await c.ok(['run', '-d', '--network', 'none', '--name', 'longrun', 'busybox', 'sleep', '1000']);
  const before = JSON.parse(await c.ok(['ps', '-a', '--format', 'json']));
  // a quiet second later the change is in the journal (controller/view.ts: DELTA_IDLE_MS)
  const journal = join(c.dir, 'controller', 'journal.bin');
  await until(async () => existsSync(journal) && statSync(journal).size > 0, 5000, 'the view\'s journal written');
  await c.restartController();
  const after = JSON.parse(await c.ok(['ps', '-a', '--format', 'json']));
  assert.equal(after.map((p: { id: string; state: string }) => [p.id, p.state]), before.map((p: { id: string; state: string }) => [p.id, p.state]));
  await c.ok(['rm', '-f', 'longrun']);
});

t('images - ls shows the import, rm refuses an image in use and removes one that is not', async () => {
  const ls = JSON.parse(await c.ok(['image', 'ls', '--format', 'json']));
  assert.is(ls[0].name, 'busybox');
  assert.match(ls[0].digest, /^sha256:[0-9a-f]{64}$/);
  await c.ok(['image', 'import', join(c.dir, 'busybox.tar'), '--name', 'bb2']);
  await c.ok(['run', '-d', '--network', 'none', '--name', 'user', 'bb2', 'sleep', '100']);
  const busy = await c.tsctl(['image', 'rm', 'bb2']);
  assert.is(busy.code, 125);
  assert.match(busy.stderr, /used by container user/);
  await c.ok(['rm', '-f', 'user']);
  await c.ok(['image', 'rm', 'bb2']);
  assert.equal(JSON.parse(await c.ok(['image', 'ls', '--format', 'json'])).map((i: { name: string }) => i.name), ['busybox']);
  const notTar = join(c.dir, 'not.tar');
  writeFileSync(notTar, 'this is not a tar archive');
  const bad = await c.tsctl(['image', 'import', notTar, '--name', 'junk']);
  assert.is(bad.code, 125);
  assert.match(bad.stderr, /is not a valid tar/);
  assert.is(bad.stderr.trim().split('\n').length, 1);
});

t.run();
