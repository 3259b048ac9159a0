// tsctl exec end to end: a real cluster (nats-server, controller, agent, a second node),
// a `sleep` container, and processes run into it as a user would. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { Cluster, until } from './helpers/cluster.js';
import { encodeBody, decodeReply, RpcError } from '../shared/rpc.js';

const t = suite('exec-e2e');
let c: Cluster;
let boxId = '';
let boxPid = 0;
const conns: NatsConnection[] = [];

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  c.addIdentity('olive', 'user', { role: 'operator' });
  c.addIdentity('vera', 'user', { role: 'viewer' });
  boxId = (await c.ok(['run', '-d', '--name', 'box', '--network', 'none', 'busybox', 'sleep', '1000'])).trim();
  boxPid = JSON.parse(await c.ok(['inspect', 'box']))[0].State.Pid;
});
t.after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await c?.stop();
});

const rows = (out: string) => out.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));

t('exec - ps in a sleep container shows sleep as pid 1 and ps, nothing else', async () => {
  const r = await c.tsctl(['exec', 'box', 'ps', '-o', 'pid,comm']);
  assert.is(r.code, 0, r.stderr);
  const ps = rows(r.stdout);
  assert.equal(ps.find((x) => x[0] === '1')?.[1], 'sleep', r.stdout);
  assert.ok(ps.some((x) => x[1] === 'ps'), r.stdout);
  assert.is(ps.length, 2, r.stdout);
});

t('exec - sees the container\'s hostname, rootfs and cgroup, not the host\'s processes', async () => {
  const hostname = JSON.parse(await c.ok(['inspect', 'box']))[0].Config.Hostname;
  const r = await c.tsctl(['exec', 'box', 'sh', '-c', 'hostname; ls /bin/busybox; cat /proc/self/cgroup; ls /proc | grep -c "^[0-9]"; readlink /proc/self/ns/mnt']);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines[0], hostname);
  assert.is(lines[1], '/bin/busybox');
  const cg = lines.filter((l) => /^\d+:/.test(l) && !l.endsWith(':/'));
  assert.ok(cg.length > 0 && cg.every((l) => l.includes(boxId)), `every cgroup line names the container: ${cg.join(' | ')}`);
  const procs = Number(lines[lines.length - 2]);
  assert.ok(procs <= 4, `only the container's processes in /proc, saw ${procs}`);
  assert.is(lines[lines.length - 1], readlinkSync(`/proc/${boxPid}/ns/mnt`), 'the container\'s mount namespace');
  // the host's tree is not there: the state dir of the cluster is a host path
  const probe = await c.tsctl(['exec', 'box', 'sh', '-c', `test -e ${c.dir} && echo FOUND-$((40+2)); true`]);
  assert.not.match(probe.stdout, /FOUND-42/);
});

t('exec - exit codes propagate: 0, 1, 127 (from the shell and for a missing command)', async () => {
  assert.is((await c.tsctl(['exec', 'box', 'true'])).code, 0);
  assert.is((await c.tsctl(['exec', 'box', 'false'])).code, 1);
  assert.is((await c.tsctl(['exec', 'box', 'sh', '-c', 'exit 127'])).code, 127);
  const missing = await c.tsctl(['exec', 'box', '/no/such/cmd']);
  assert.is(missing.code, 127);
  assert.is(missing.stderr.trim().split('\n').length, 1, missing.stderr);
  assert.match(missing.stderr, /executable file not found/);
});

t('exec - -e, -w and -u; stdout and stderr kept apart', async () => {
  const r = await c.tsctl(['exec', '-e', 'K=V', '-w', '/tmp', '-u', 'nobody', 'box', 'sh', '-c', 'echo $K; pwd; id -u; echo oops >&2']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'V\n/tmp\n65534\n');
  assert.is(r.stderr, 'oops\n');
});

t('exec - -i sends stdin to the process, and its end is the process\'s EOF', async () => {
  const r = await c.tsctl(['exec', '-i', 'box', 'sh', '-c', 'cat; echo end'], { input: 'line one\nline two\n' });
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'line one\nline two\nend\n');
  // a few MiB go through whole (the agent buffers what the process has not read yet)
  const big = 'z'.repeat(6 << 20);
  const w = await c.tsctl(['exec', '-i', 'box', 'wc', '-c'], { input: big });
  assert.is(w.code, 0, w.stderr);
  assert.is(w.stdout.trim(), String(big.length));
  // without -i stdin is /dev/null: cat ends at once
  const n = await c.tsctl(['exec', 'box', 'cat'], { input: 'ignored\n' });
  assert.is(n.code, 0);
  assert.is(n.stdout, '');
});

t('exec - an unknown or stopped container is a one-line error', async () => {
  const u = await c.tsctl(['exec', 'nosuchbox', 'true']);
  assert.is(u.code, 125);
  assert.match(u.stderr, /^tsctl: no such container "nosuchbox"[^\n]*\n$/);
  await c.ok(['run', '-d', '--name', 'stopped', '--network', 'none', 'busybox', 'sleep', '1000']);
  await c.ok(['stop', '-t', '0', 'stopped']);
  const s = await c.tsctl(['exec', 'stopped', 'true']);
  assert.is(s.code, 125);
  assert.match(s.stderr, /^tsctl: container stopped is not running[^\n]*\n$/);
});

t('exec - attack: junk user, junk group, bad workdir, huge env, NUL bytes: one clear line each', async () => {
  const one = (r: { code: number; stderr: string }, re: RegExp) => {
    assert.is.not(r.code, 0);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  };
  one(await c.tsctl(['exec', '-u', 'junkuser', 'box', 'id']), /unable to find user junkuser/);
  one(await c.tsctl(['exec', '-u', 'root:nosuchgroup', 'box', 'id']), /unable to find group nosuchgroup/);
  one(await c.tsctl(['exec', '-u', '$(reboot)', 'box', 'id']), /user: not user\[:group\]/);
  one(await c.tsctl(['exec', '-u', `${'a'.repeat(300)}`, 'box', 'id']), /user/i);
  one(await c.tsctl(['exec', '-w', '/no/such/dir', 'box', 'true']), /working directory \/no\/such\/dir/);
  one(await c.tsctl(['exec', '-w', 'relative', 'box', 'true']), /absolute path/);
  one(await c.tsctl(['exec', 'box']), /exec needs a command/);
  one(await c.tsctl(['exec', '-e', 'NOEQUALS', 'box', 'true']), /K=V/);
  const big = Array.from({ length: 40 }, (_, i) => ['-e', `V${i}=${'x'.repeat(30000)}`]).flat();
  one(await c.tsctl(['exec', ...big, 'box', 'true']), /bytes; an exec takes at most/);
  // under the request limit but past what execve takes: E2BIG from the kernel, one line
  const e2big = Array.from({ length: 4 }, (_, i) => ['-e', `W${i}=${'y'.repeat(131000)}`]).flat();
  const r = await c.tsctl(['exec', ...e2big, 'box', 'true']);
  assert.ok(r.code === 0 || /E2BIG|longer than/.test(r.stderr), r.stderr);
  // NUL bytes cannot pass through argv: an attacker's own client sends them
  const nc = await c.connect('olive');
  conns.push(nc);
  const ask = async (req: Record<string, unknown>) => {
    const m = await nc.request('api.olive.exec', encodeBody({ ref: 'box', execId: randomBytes(32).toString('hex'), ...req }), { timeout: 5000 });
    try {
      const r = decodeReply<{ started: boolean; error?: string }>(m.data);
      return r.started ? 'started' : `not started: ${r.error}`;
    } catch (err) { return (err as RpcError).message; }
  };
  assert.match(await ask({ args: ['/bin/s\0h'] }), /contains a NUL byte/);
  assert.match(await ask({ args: ['sh'], workdir: '/t\0mp' }), /contains a NUL byte/);
  assert.match(await ask({ args: ['sh'], env: ['A=\0'] }), /contains a NUL byte/);
  assert.match(await ask({ args: [] }), /no command given/);
  assert.match(await ask({ args: ['true'], execId: '../../etc' }), /execId/);
  // the container is still fine afterwards
  assert.is((await c.tsctl(['exec', 'box', 'true'])).code, 0);
});

t('exec - each exec is in the log: who ran what, its pid, its exit code; failures too', async () => {
  const r = await c.tsctl(['exec', '-u', 'nobody', 'box', 'sh', '-c', 'exit 3']);
  assert.is(r.code, 3);
  const j = await c.tsctl(['exec', '-u', 'junkuser', 'box', 'id']);
  assert.is.not(j.code, 0);
  const evs = (await c.ok(['events', '--filter', `entity=${boxId}`, '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
  const started = evs.filter((e) => e.type === 'ExecStarted' && e.data.args.join(' ') === 'sh -c exit 3');
  assert.is(started.length, 1);
  assert.is(started[0].data.user, 'admin');
  assert.is(started[0].data.processUser, 'nobody');
  assert.ok(started[0].data.pid > 1);
  const exited = evs.find((e) => e.type === 'ExecExited' && e.data.execId === started[0].data.execId);
  assert.ok(exited, 'ExecExited');
  assert.is(exited.data.exitCode, 3);
  const failed = evs.filter((e) => e.type === 'ExecFailed' && e.data.args.join(' ') === 'id');
  assert.ok(failed.some((e) => /junkuser/.test(e.data.error) && e.data.user === 'admin'), JSON.stringify(failed));
  // an operator's exec names the operator
  const op = await c.tsctl(['exec', 'box', 'true'], { env: { SWARMLITE_CREDS: `${c.dir}/trust/creds/olive.creds` } });
  assert.is(op.code, 0, op.stderr);
  await until(async () => (await c.ok(['events', '--filter', `type=ExecStarted,user=olive`, '--format', 'json'])).includes('"olive"'), 5000, 'olive\'s exec in the log');
});

t('exec - a viewer may not exec, and only the controller may ask a node to exec', async () => {
  const v = await c.tsctl(['exec', 'box', 'true'], { env: { SWARMLITE_CREDS: `${c.dir}/trust/creds/vera.creds` } });
  assert.is(v.code, 125);
  assert.match(v.stderr, /permission denied/, v.stderr);
  const nc = await c.connect('olive');
  conns.push(nc);
  const err = await nc.request(`agent.${c.node}.exec`, encodeBody({ id: boxId, execId: randomBytes(32).toString('hex'), args: ['true'], by: 'someone-else' }), { timeout: 3000 })
    .then(() => undefined, (e: Error & { code?: string }) => e);
  assert.ok(err, 'an operator asked the agent directly');
  assert.match(`${err!.code} ${err!.message}`, /PERMISSIONS_VIOLATION|Permissions Violation/i);
  // a user may write an exec's stdin, never read another's
  const why = await new Promise<string>((res) => {
    nc.subscribe(`stdin.${c.node}.*`, { callback: (e) => res(e ? e.message : 'a message arrived') });
    setTimeout(() => res('no refusal within 3 s'), 3000);
  });
  assert.match(why, /Permissions Violation/i);
});

t('exec - an agent killed while an exec runs: the restarted agent reports its end, and tsctl still gets the code', async () => {
  const run = c.tsctl(['exec', 'box', 'sh', '-c', 'echo before; sleep 2; echo after; exit 4']);
  await until(async () => (await c.ok(['events', '--filter', 'type=ExecStarted', '--format', 'json'])).includes('sleep 2; echo after'), 5000, 'the exec started');
  await c.killAgent();
  c.startAgent();
  await c.waitJoined();
  const r = await run;
  assert.is(r.code, 4, r.stderr);
  // what it wrote before, while no agent was there, and after: each once
  assert.is(r.stdout, 'before\nafter\n');
  const evs = (await c.ok(['events', '--filter', `entity=${boxId}`, '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
  const started = evs.find((e) => e.type === 'ExecStarted' && e.data.args.join(' ') === 'sh -c echo before; sleep 2; echo after; exit 4');
  const exited = evs.filter((e) => e.type === 'ExecExited' && e.data.execId === started.data.execId);
  assert.is(exited.length, 1);
  assert.is(exited[0].data.exitCode, 4);
  // nothing of it is left in the container's state
  assert.is((await c.tsctl(['exec', 'box', 'true'])).code, 0);
});

t('exec - works on a container of another node: the controller routes it', async () => {
  await c.addNode('n2', '10.251.0.0/24');
  // the new node has no container, so placement puts the next one there
  await c.ok(['run', '-d', '--name', 'far', '--network', 'none', 'busybox', 'sleep', '1000']);
  const node = JSON.parse(await c.ok(['inspect', 'far']))[0].Node;
  assert.is(node, 'n2');
  const r = await c.tsctl(['exec', 'far', 'sh', '-c', 'tr "\\0" " " </proc/1/cmdline; echo; exit 5']);
  assert.is(r.code, 5, r.stderr);
  assert.match(r.stdout, /^sleep 1000 \n$/);
  await c.ok(['rm', '-f', 'far']);
});

t.run();
