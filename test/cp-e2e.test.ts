// tsctl cp end to end, both ways, on a running container and on one that exited. Attacks: links the container made
// (to "/" and climbing with "..") lead into its own root, never the host's; a hand-made tar
// that climbs out or carries whiteouts is refused in one line and writes nothing; a viewer may
// not copy; an operator may not ask the node to unpack directly (only the controller, which
// names the caller in ContainerFilesCopied). The container is frozen only during the copy,
// and an agent killed while it was frozen thaws it at its next start. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Cluster, ROOT, sleep, until } from './helpers/cluster.js';
import { dial } from '../tsctl/client.js';
import { readCreds } from '../shared/nats/trust.js';
import { call } from '../shared/nats/rpc.js';
import { agentApi } from '../shared/api/agent.js';
import { controllerApi } from '../shared/api/controller.js';
import { subjects } from '../shared/subjects.js';

const t = suite('cp-e2e');
const TSCTL = join(ROOT, 'bin/tsctl.cjs');
let c: Cluster;
const tag = randomBytes(3).toString('hex');

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  await c.ok(['run', '-d', '--name', 'box', '--network', 'none', 'busybox', 'sh', '-c',
    'mkdir -p /d/sub && echo one > /d/sub/f && ln -s /etc/shadow /d/shadow-link && echo cont > /etc/cont-hostname && ln -s / /tmp/to-root && ln -s ../../../../.. /tmp/up && touch /ready; exec sleep 1000']);
  await until(async () => (await c.tsctl(['exec', 'box', 'test', '-e', '/ready'])).code === 0, 20000, 'box ready');
});
t.after(async () => { await c?.stop(); });

const oneLine = (r: { code: number; stderr: string }, why: RegExp) => {
  assert.is.not(r.code, 0, r.stderr);
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
};
const cpuTicks = (pid: number) => {
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(rest[11]) + Number(rest[12]);
};

t('out - a file into a directory, a directory under a new name with its link kept, a tar on stdout', async () => {
  const out = join(c.dir, 'out');
  mkdirSync(out);
  await c.ok(['cp', 'box:/d/sub/f', out]);
  assert.is(readFileSync(join(out, 'f'), 'utf8'), 'one\n');
  await c.ok(['cp', 'box:/d', join(out, 'copy')]);
  assert.is(readFileSync(join(out, 'copy', 'sub', 'f'), 'utf8'), 'one\n');
  assert.ok(lstatSync(join(out, 'copy', 'shadow-link')).isSymbolicLink(), 'the link stays a link');
  assert.is(readlinkSync(join(out, 'copy', 'shadow-link')), '/etc/shadow');
  const tarOut = spawnSync('sh', ['-c', `"${process.execPath}" "${TSCTL}" cp box:/d/sub - | tar -tf -`], { encoding: 'utf8', env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds } });
  assert.equal(tarOut.stdout.trim().split('\n').sort(), ['sub/', 'sub/f'], tarOut.stderr);
  assert.not.ok(readdirAny(out).some((n) => n.startsWith('.tsctl-cp-')), 'a temp dir was left');
});

t('in - a file into a directory, a directory to a new name; the copy is an event naming who', async () => {
  const src = join(c.dir, 'src');
  mkdirSync(join(src, 'tree', 'deep'), { recursive: true });
  writeFileSync(join(src, 'note'), 'from the host\n');
  writeFileSync(join(src, 'tree', 'deep', 'x'), 'x\n');
  await c.ok(['cp', join(src, 'note'), 'box:/tmp/']);
  assert.is((await c.ok(['exec', 'box', 'cat', '/tmp/note'])), 'from the host\n');
  assert.is((await c.ok(['exec', 'box', 'stat', '-c', '%u:%g', '/tmp/note'])).trim(), '0:0', 'root\'s by default');
  await c.ok(['cp', join(src, 'tree'), 'box:/opt-new']);
  assert.is((await c.ok(['exec', 'box', 'cat', '/opt-new/deep/x'])), 'x\n');
  const id = JSON.parse(await c.ok(['inspect', 'box']))[0].Id as string;
  const ev = (await c.ok(['events', '--filter', `entity=${id}`, '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l))
    .filter((e) => e.type === 'ContainerFilesCopied');
  assert.equal(ev.map((e) => [e.data.dest, e.data.user]), [['/tmp/note', 'admin'], ['/opt-new', 'admin']]);
});

t('attack - links the container made lead into its own root, never onto the host', async () => {
  // out: /tmp/to-root/etc/... is the container's /etc, not the host's
  const out = join(c.dir, 'out2');
  mkdirSync(out);
  await c.ok(['cp', 'box:/tmp/to-root/etc/cont-hostname', out]);
  assert.is(readFileSync(join(out, 'cont-hostname'), 'utf8'), 'cont\n');
  const host = await c.tsctl(['cp', 'box:/tmp/up/etc/machine-id', out]);
  assert.not.ok(existsSync(join(out, 'machine-id')) && readFileSync(join(out, 'machine-id'), 'utf8') === readFileSync('/etc/machine-id', 'utf8'), 'the host\'s machine-id came out');
  oneLine(host, /no such file|not exist/i);
  // in: through the container's link to "/" the file lands in the container's root
  const f = join(c.dir, `planted-${tag}`);
  writeFileSync(f, 'planted\n');
  await c.ok(['cp', f, 'box:/tmp/up/']);
  assert.not.ok(existsSync(`/planted-${tag}`), 'the copy reached the host\'s root');
  assert.is(await c.ok(['exec', 'box', 'cat', `/planted-${tag}`]), 'planted\n');
  // a local symlink is copied as a link, not as what it points to
  const l = join(c.dir, 'hostlink');
  symlinkSync('/etc/shadow', l);
  await c.ok(['cp', l, 'box:/tmp/']);
  assert.is((await c.ok(['exec', 'box', 'readlink', '/tmp/hostlink'])).trim(), '/etc/shadow');
  assert.is((await c.tsctl(['exec', 'box', 'cat', '/tmp/hostlink'])).stdout.includes('root:'), false, 'the host\'s shadow came in');
});

function tarOf(entries: { name: string; body: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 'utf8');
    h.write('0000644\0', 100); h.write('0000000\0', 108); h.write('0000000\0', 116);
    h.write(`${Buffer.byteLength(e.body).toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136); h.write('        ', 148); h.write('0', 156); h.write('ustar\x0000', 257);
    let sum = 0; for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const body = Buffer.alloc(Math.ceil(Buffer.byteLength(e.body) / 512) * 512);
    body.write(e.body);
    blocks.push(h, body);
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

t('attack - a hand-made tar that climbs out or carries a whiteout is refused in one line; a viewer may not copy; only the controller may unpack', async () => {
  for (const [name, why] of [[`../../../../../../tmp/escaped-${tag}`, /\.\.|outside|escape/i], ['.wh.ready', /whiteout/]] as const) {
    const r = spawnSync(process.execPath, [TSCTL, 'cp', '-', 'box:/tmp'], { input: tarOf([{ name, body: 'x' }]), encoding: 'utf8', env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds } });
    oneLine({ code: r.status ?? 1, stderr: r.stderr }, why);
  }
  assert.not.ok(existsSync(`/tmp/escaped-${tag}`), 'the entry climbed onto the host');
  assert.is((await c.tsctl(['exec', 'box', 'test', '-e', '/ready'])).code, 0, 'the whiteout deleted /ready');
  const viewer = (await c.ok(['user', 'add', `peek${tag}`, '--role', 'viewer'])).trim();
  oneLine(await c.tsctl(['cp', join(c.dir, 'src', 'note'), 'box:/tmp/'], { env: { SWARMLITE_CREDS: viewer } }), /permission denied/i);
  oneLine(await c.tsctl(['cp', 'box:/etc/cont-hostname', c.dir], { env: { SWARMLITE_CREDS: viewer } }), /permission denied/i);
  // an operator stages bytes (harmless) but may not have the node unpack them: the server refuses
  const op = (await c.ok(['user', 'add', `op${tag}`, '--role', 'operator'])).trim();
  const nc = await dial(c.url, readCreds(op));
  try {
    const id = JSON.parse(await c.ok(['inspect', 'box']))[0].Id as string;
    const bytes = tarOf([{ name: 'direct', body: 'x' }]);
    const transfer = randomBytes(16).toString('hex');
    await call(nc, subjects.agent(c.node), agentApi.put, { transfer, offset: 0, data: bytes.toString('base64') });
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await call(nc, subjects.agent(c.node), agentApi.copyin, { id, transfer, size: bytes.length, digest, dest: '/tmp', by: 'someone-else' }).then(
      () => assert.unreachable('an operator had the node unpack directly'), (e: Error) => assert.match(e.message, /permission|no responders|timeout/i));
    // through the controller with a digest that is not the bytes': refused
    await call(nc, `${subjects.api}.op${tag}`, controllerApi.copyIn, { ref: id, transfer, size: bytes.length, digest: `sha256:${'0'.repeat(64)}`, dest: '/tmp' }).then(
      () => assert.unreachable('a wrong digest was unpacked'), (e: Error) => assert.match(e.message, /hash/));
  } finally { await nc.close(); }
  assert.is((await c.tsctl(['exec', 'box', 'test', '-e', '/tmp/direct'])).code, 1, 'the refused archive was unpacked');
});

t('stopped - a container that exited keeps its root until rm: cp works both ways on it, then refuses once it is removed', async () => {
  await c.ok(['run', '--name', 'done', '--network', 'none', 'busybox', 'sh', '-c', 'echo result > /artifact']);
  await until(async () => JSON.parse(await c.ok(['inspect', 'done']))[0].State.Status === 'exited', 20000, 'done exited');
  const out = join(c.dir, 'out-stopped');
  mkdirSync(out);
  await c.ok(['cp', 'done:/artifact', out]);
  assert.is(readFileSync(join(out, 'artifact'), 'utf8'), 'result\n');
  writeFileSync(join(out, 'back'), 'into a stopped one\n');
  await c.ok(['cp', join(out, 'back'), 'done:/tmp/']);
  await c.ok(['cp', 'done:/tmp/back', join(out, 'back-again')]);
  assert.is(readFileSync(join(out, 'back-again'), 'utf8'), 'into a stopped one\n');
  await c.ok(['rm', 'done']);
  const gone = await c.tsctl(['cp', 'done:/artifact', out]);
  oneLine(gone, /done|no such container|not found/i);
});

t('crash - an agent killed while a copy froze the container thaws it at its next start', async () => {
  await c.ok(['run', '-d', '--name', 'spin', '--network', 'none', 'busybox', 'sh', '-c', 'while :; do :; done']);
  const pid = JSON.parse(await c.ok(['inspect', 'spin']))[0].State.Pid as number;
  await c.killAgent();
  const armed = c.startAgent({ SWARMLITE_FAILPOINTS: 'copy:frozen' });
  await c.waitJoined();
  // the node list knew the node before this agent started: ask until this one answers and dies
  await until(async () => {
    if (armed.exitCode !== null || armed.signalCode !== null) return true;
    await c.tsctl(['cp', 'spin:/etc/passwd', c.dir], { timeout: 30000 });
    return armed.exitCode !== null || armed.signalCode !== null;
  }, 30000, 'the agent to die at copy:frozen');
  assert.is(armed.signalCode, 'SIGKILL');
  const a = cpuTicks(pid);
  await sleep(500);
  assert.is(cpuTicks(pid), a, 'the container was not frozen by the copy');
  c.startAgent();
  await c.waitJoined();
  const b = cpuTicks(pid);
  await until(async () => cpuTicks(pid) > b, 10000, 'the container to run again after the agent restarted');
  // and a copy after the restart works and leaves it running
  await c.ok(['cp', 'spin:/etc/passwd', join(c.dir, 'passwd-after')]);
  const d = cpuTicks(pid);
  await until(async () => cpuTicks(pid) > d, 10000, 'the container to run after a copy');
});

function readdirAny(dir: string): string[] { try { return spawnSync('ls', ['-A', dir], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean); } catch { return []; } }

t.run();
