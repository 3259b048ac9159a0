// Dockerfile VOLUME and anonymous volumes end to end on a one-node cluster: a built image's
// Volumes (image inspect), a run that mounts a fresh anonymous volume there filled from the
// image (owners and links kept, a later RUN's files too: BuildKit's rule), shown by inspect and
// volume ls, removed by rm -v and --rm and kept by a plain rm (then volume prune takes it);
// -v /path; a named volume with data gets no copy, an empty one does. Attacks: an image whose
// VOLUME path climbs with '..' or is a link out of its root copies nothing of the host; one on
// /proc is refused in one line. Fault injection: the agent SIGKILLed in the middle of a copy-up
// and between its copy and its moves; the restart starts the container on a whole copy and
// leaves nothing staged. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, until } from './helpers/cluster.js';

const t = suite('volume-anon-e2e');
let c: Cluster;
let vols: string;

const IMAGE = `FROM busybox
ARG WHERE=/data
RUN mkdir -p /data/sub && echo seeded > /data/sub/f && ln -s sub/f /data/link && chown -R 1234:99 /data/sub && chmod 750 /data/sub
VOLUME ["$WHERE"]
VOLUME /logs
RUN echo after > /data/after
CMD ["sh", "-c", "cat /data/sub/f /data/after; readlink /data/link; stat -c %u:%g:%a /data/sub; ls /logs | wc -l"]
`;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  vols = join(c.dir, 'nodes', c.node, 'volumes');
  const dir = join(c.dir, 'ctx-vol');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), IMAGE);
  const b = await c.tsctl(['build', '-t', 'withvol', dir], { timeout: 300000 });
  assert.is(b.code, 0, b.stdout + b.stderr);
});
t.after(async () => { await c?.stop(); });

interface Vol { name: string; anonymous?: boolean; containers: { name: string }[] }
const volumes = async () => JSON.parse(await c.ok(['volume', 'ls', '--format', 'json'])) as Vol[];
const mountsOf = async (ref: string) => (JSON.parse(await c.ok(['inspect', ref])) as { Mounts: { Type: string; Name?: string; Destination: string; Anonymous?: boolean }[] }[])[0]!.Mounts;
const gone = (name: string) => until(async () => (!(await volumes()).some((v) => v.name === name) && !existsSync(join(vols, name))) || undefined, 20000, `volume ${name.slice(0, 12)} gone`);

t('build - VOLUME in both forms ($X substituted) is the image config\'s Volumes, shown by image inspect', async () => {
  const [img] = JSON.parse(await c.ok(['image', 'inspect', 'withvol'])) as { Config: { Volumes: Record<string, object> } }[];
  assert.equal(img!.Config.Volumes, { '/data': {}, '/logs': {} });
});

t('run - each VOLUME path gets its own anonymous volume, filled from the image; inspect and volume ls show it; rm -v removes it', async () => {
  const r = await c.tsctl(['run', '--name', 'a1', '--network', 'none', 'withvol'], { timeout: 60000 });
  assert.is(r.code, 0, r.stderr);
  // the RUN after VOLUME kept its file (BuildKit), the copy kept owner, mode and the link
  assert.is(r.stdout, 'seeded\nafter\nsub/f\n1234:99:750\n0\n');
  const ms = await mountsOf('a1');
  assert.equal(ms.map((m) => [m.Type, m.Destination, m.Anonymous]), [['volume', '/data', true], ['volume', '/logs', true]]);
  const names = ms.map((m) => m.Name!);
  for (const n of names) assert.match(n, /^[0-9a-f]{64}$/);
  const listed = (await volumes()).filter((v) => names.includes(v.name));
  assert.is(listed.length, 2);
  assert.ok(listed.every((v) => v.anonymous === true && v.containers.map((x) => x.name).join() === 'a1'), JSON.stringify(listed));
  const data = join(vols, names[0]!, '_data');
  assert.is(readFileSync(join(data, 'sub', 'f'), 'utf8'), 'seeded\n');
  assert.equal([lstatSync(join(data, 'sub')).uid, lstatSync(join(data, 'link')).isSymbolicLink()], [1234, true]);
  assert.equal(readdirSync(join(vols, names[0]!)), ['_data'], 'nothing staged left');
  await c.ok(['rm', '-v', 'a1']);
  for (const n of names) await gone(n);
});

t('run - a plain rm keeps the anonymous volume (prune takes it); --rm removes it; -v /path is one too', async () => {
  await c.ok(['run', '--name', 'a2', '--network', 'none', '-v', '/scratch', 'withvol', 'sh', '-c', 'echo x > /scratch/f']);
  const ms = await mountsOf('a2');
  assert.equal(ms.map((m) => m.Destination).sort(), ['/data', '/logs', '/scratch']);
  assert.ok(ms.every((m) => m.Anonymous), 'every one anonymous');
  await c.ok(['rm', 'a2']);
  const kept = (await volumes()).filter((v) => ms.some((m) => m.Name === v.name));
  assert.is(kept.length, 3, 'rm without -v keeps them');
  assert.is(readFileSync(join(vols, ms.find((m) => m.Destination === '/scratch')!.Name!, '_data', 'f'), 'utf8'), 'x\n');
  const pruned = await c.ok(['volume', 'prune']);
  for (const m of ms) { assert.match(pruned, new RegExp(m.Name!)); await gone(m.Name!); }
  // --rm: the container and its anonymous volumes go at its exit
  const before = new Set((await volumes()).map((v) => v.name));
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'withvol', 'cat', '/data/sub/f'], { timeout: 60000 });
  assert.is(r.stdout, 'seeded\n', r.stderr);
  await until(async () => (await volumes()).every((v) => before.has(v.name)) || undefined, 20000, '--rm took its volumes');
  assert.equal(readdirSync(vols).filter((n) => !before.has(n)), []);
});

t('service - each task has its own anonymous volumes, filled from the image; they go with the task', async () => {
  const before = new Set((await volumes()).map((v) => v.name));
  await c.ok(['service', 'create', '--name', 'svc', '--replicas', '2', '--network', 'none', 'withvol', 'sleep', '300']);
  const mine = async () => (await volumes()).filter((v) => !before.has(v.name));
  const vs = await until(async () => { const l = await mine(); return l.length === 4 && l.every((v) => v.containers.length === 1) ? l : undefined; }, 30000, 'two tasks with two volumes each');
  assert.is(new Set(vs.map((v) => v.containers[0]!.name)).size, 2, 'one pair per task');
  // a volume is listed with its task once the task is asked for; its copy-up comes at the task's start
  await until(async () => vs.filter((v) => existsSync(join(vols, v.name, '_data', 'sub', 'f'))).length === 2 || undefined, 30000, 'each task\'s /data filled from the image');
  await c.ok(['service', 'rm', 'svc']);
  await until(async () => (await mine()).length === 0 || undefined, 30000, 'the tasks\' volumes removed with them');
  for (const v of vs) assert.not.ok(existsSync(join(vols, v.name)));
});

t('service --mount - each task its own anonymous volume and a tmpfs; --mount-rm/--mount-add roll the tasks over; binds are admins\'', async () => {
  const before = new Set((await volumes()).map((v) => v.name));
  await c.ok(['service', 'create', '--name', 'msvc', '--replicas', '2', '--network', 'none',
    '--mount', 'type=volume,target=/cache', '--mount', 'type=tmpfs,target=/scratch,tmpfs-size=1m', 'busybox', 'sleep', '300']);
  const mine = async () => (await volumes()).filter((v) => !before.has(v.name));
  const vs = await until(async () => { const l = await mine(); return l.length === 2 && l.every((v) => v.containers.length === 1) ? l : undefined; }, 30000, 'two tasks, one anonymous volume each');
  assert.is(new Set(vs.map((v) => v.containers[0]!.name)).size, 2, 'one volume per task');
  const task = vs[0]!.containers[0]!.name;
  const ms = await mountsOf(task);
  assert.equal(ms.map((m) => `${m.Type}:${m.Destination}`).sort(), ['tmpfs:/scratch', 'volume:/cache']);
  const [svc] = JSON.parse(await c.ok(['service', 'inspect', 'msvc'])) as { spec: { task: { mounts: { type: string; target: string }[] } } }[];
  assert.equal(svc!.spec.task.mounts.map((m) => m.target), ['/cache', '/scratch']);
  // an update replaces the tasks; the old ones stay stopped in the service's history (service ps), with their volumes
  const up = await c.tsctl(['service', 'update', '--mount-rm', '/cache', '--mount-add', 'type=volume,source=msvc-shared,target=/shared', 'msvc'], { timeout: 120000 });
  assert.is(up.code, 0, up.stdout + up.stderr);
  await until(async () => (await mine()).find((v) => v.name === 'msvc-shared' && v.containers.length === 2), 60000, 'both new tasks on the named volume');
  const bad = await c.tsctl(['service', 'update', '--mount-rm', '/nowhere', 'msvc']);
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /invalid --mount-rm "\/nowhere": service msvc mounts nothing there/);
  await c.ok(['service', 'rm', 'msvc']);
  // with the service go its tasks, old and new, and their anonymous volumes; the named one stays
  await until(async () => { const l = await mine(); return l.length === 1 && l[0]!.containers.length === 0 || undefined; }, 30000, 'the tasks and their anonymous volumes gone');
  for (const v of vs) assert.not.ok(existsSync(join(vols, v.name)));
  await c.ok(['volume', 'rm', 'msvc-shared']);
  // a host path is the host itself: an operator's service may not bind one, at create or update
  const op = (await c.ok(['user', 'add', 'svcop', '--role', 'operator'])).trim();
  const r = await c.tsctl(['service', 'create', '--name', 'opsvc', '--network', 'none', '--mount', 'type=bind,src=/etc,dst=/hostetc', 'busybox', 'sleep', '300'], { env: { SWARMLITE_CREDS: op } });
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /permission denied: --mount type=bind,source=\/etc mounts a host path/);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.not.ok((await c.ok(['service', 'ls', '-q'])).includes('opsvc'));
  const clash = await c.tsctl(['service', 'create', '--name', 'clash', '--mount', 'type=tmpfs,target=/a', '--mount', 'type=volume,target=/a', 'busybox', 'true']);
  assert.match(clash.stderr, /invalid --mount: two mounts on \/a/);
});

t('--volumes-from - another container\'s named and anonymous volumes, as they are, :ro or :rw; rm -v of the taker leaves them', async () => {
  await c.ok(['run', '-d', '--name', 'vsrc', '--network', 'none', '-v', 'vf-named:/named', '-v', '/anon', '--tmpfs', '/mem', 'busybox', 'sh', '-c', 'echo n > /named/f; echo a > /anon/g; sleep 300']);
  const anon = (await mountsOf('vsrc')).find((m) => m.Destination === '/anon')!.Name!;
  await until(async () => existsSync(join(vols, anon, '_data', 'g')) || undefined, 20000, 'the source wrote its files');
  const ro = await c.tsctl(['run', '--rm', '--network', 'none', '--volumes-from', 'vsrc:ro', 'busybox', 'sh', '-c',
    'cat /named/f /anon/g; touch /named/x 2>/dev/null || echo refused; grep -c " /mem " /proc/mounts'], { timeout: 60000 });
  assert.is(ro.stdout, 'n\na\nrefused\n0\n', ro.stderr);
  const rw = await c.tsctl(['run', '--name', 'vtake', '--network', 'none', '--volumes-from', 'vsrc', 'busybox', 'sh', '-c', 'echo from-taker > /anon/t'], { timeout: 60000 });
  assert.is(rw.code, 0, rw.stderr);
  assert.is(readFileSync(join(vols, anon, '_data', 't'), 'utf8'), 'from-taker\n');
  await c.ok(['rm', '-v', 'vtake']);
  assert.ok(existsSync(join(vols, anon, '_data', 'g')), 'rm -v of the taker left the source\'s anonymous volume');
  const none = await c.tsctl(['run', '--rm', '--network', 'none', '--volumes-from', 'nosuch', 'busybox', 'true']);
  assert.is.not(none.code, 0);
  assert.match(none.stderr, /no such container "nosuch" for --volumes-from/);
  const bad = await c.tsctl(['run', '--rm', '--volumes-from', 'vsrc:rx', 'busybox', 'true']);
  assert.match(bad.stderr, /invalid --volumes-from "vsrc:rx": CONTAINER\[:ro\|:rw\]/);
  await c.ok(['rm', '-f', '-v', 'vsrc']);
  await gone(anon);
  await c.ok(['volume', 'rm', 'vf-named']);
});

t('named volume - one with data gets no copy (docker copies only into an empty one); an empty one does; rm -v keeps it', async () => {
  await c.ok(['run', '--rm', '--network', 'none', '-v', 'mine:/d', 'busybox', 'sh', '-c', 'echo mine > /d/mine']);
  const full = await c.tsctl(['run', '--name', 'n1', '--network', 'none', '-v', 'mine:/data', 'withvol', 'ls', '/data'], { timeout: 60000 });
  assert.is(full.stdout, 'mine\n', full.stderr);
  await c.ok(['volume', 'create', 'empty']);
  const empty = await c.tsctl(['run', '--name', 'n2', '--network', 'none', '-v', 'empty:/data', 'withvol', 'cat', '/data/sub/f'], { timeout: 60000 });
  assert.is(empty.stdout, 'seeded\n', empty.stderr);
  await c.ok(['rm', '-v', 'n1', 'n2']);
  const left = (await volumes()).map((v) => v.name);
  assert.ok(left.includes('mine') && left.includes('empty'), 'named volumes stay');
  await c.ok(['volume', 'rm', 'mine', 'empty']);
  await until(async () => (await volumes()).length === 0 || undefined, 20000, 'every volume gone');
});

t('attack - a VOLUME through ".." or links out of the root copies only the image; a link to the host is refused in one line; /proc too', async () => {
  const secret = join(c.dir, 'host-secret');
  mkdirSync(secret);
  writeFileSync(join(secret, 'secret'), 'host only\n');
  const up = '../'.repeat(16);
  const dir = join(c.dir, 'ctx-evil');
  mkdirSync(dir, { recursive: true });
  // /up climbs past the root (it stops there: the image's /etc); the '..' path is cleaned to a
  // path inside the root that the image lacks (an empty volume)
  writeFileSync(join(dir, 'Dockerfile'), `FROM busybox
RUN ln -s ${up}etc /up && mkdir -p /deep
VOLUME /up /deep/${up}${secret.slice(1)}
CMD ["sh", "-c", "ls -A /up ${secret} | grep -cx -e secret -e debian_version || true"]
`);
  assert.is((await c.tsctl(['build', '-t', 'evil', dir], { timeout: 300000 })).code, 0);
  const r = await c.tsctl(['run', '--name', 'e1', '--network', 'none', 'evil'], { timeout: 60000 });
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '0\n', 'the container sees no host file');
  const [upVol, deepVol] = await mountsOf('e1');
  const copied = readdirSync(join(vols, upVol!.Name!, '_data'));
  assert.ok(copied.includes('passwd') && !copied.includes('debian_version'), `the image's /etc, not the host's: ${copied.join(' ')}`);
  assert.equal(readdirSync(join(vols, deepVol!.Name!, '_data')), []);
  await c.ok(['rm', '-v', 'e1']);
  // a link to the host's directory: the runtime will not follow it out of the root
  writeFileSync(join(dir, 'Dockerfile'), `FROM busybox\nRUN ln -s ${secret} /abs && ln -s ${up}${secret.slice(1)} /rel\nVOLUME /abs /rel\n`);
  assert.is((await c.tsctl(['build', '-t', 'evil-link', dir], { timeout: 300000 })).code, 0);
  const l = await c.tsctl(['run', '--name', 'e2', '--network', 'none', 'evil-link', 'true'], { timeout: 60000 });
  assert.is(l.code, 125);
  assert.match(l.stderr, /^tsctl: start: mkdir \S+\/rootfs\/(abs|rel): ENOENT/);
  assert.is(l.stderr.trim().split('\n').length, 1, l.stderr);
  for (const m of await mountsOf('e2')) assert.equal(readdirSync(join(vols, m.Name!, '_data')), [], `${m.Destination}: nothing copied`);
  assert.equal(readdirSync(secret), ['secret'], 'nothing written on the host');
  await c.ok(['rm', '-v', 'e2']);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nVOLUME /proc/sys\n');
  assert.is((await c.tsctl(['build', '-t', 'evil2', dir], { timeout: 300000 })).code, 0);
  const p = await c.tsctl(['run', '--network', 'none', 'evil2', 'true']);
  assert.is(p.code, 125);
  assert.match(p.stderr, /image evil2: the image declares volume "\/proc\/sys": mount target \/proc\/sys is the container's own proc: refused/);
  assert.is(p.stderr.trim().split('\n').length, 1, p.stderr);
  await until(async () => (await volumes()).length === 0 || undefined, 20000, 'rm -v took every anonymous volume');
});

for (const fp of ['volume:mid-copyup', 'volume:copyup-copied']) {
  t(`copy-up kill - SIGKILL at ${fp}: the restart starts the container on a whole copy, nothing staged left`, async () => {
    const name = `k-${fp.split(':')[1]}`;
    await c.crashAt(fp, () => c.tsctl(['run', '-d', '--name', name, '--network', 'none', 'withvol', 'sleep', '300'], { timeout: 60000 }));
    await until(async () => /"Status":\s*"running"/.test((await c.tsctl(['inspect', name])).stdout) || undefined, 60000, `${name} running`);
    const ls = await c.tsctl(['exec', name, 'sh', '-c', 'cat /data/sub/f /data/after; stat -c %u /data/sub']);
    assert.is(ls.stdout, 'seeded\nafter\n1234\n', ls.stderr);
    const ms = await mountsOf(name);
    for (const m of ms) assert.equal(readdirSync(join(vols, m.Name!)), ['_data'], `${m.Destination}: nothing staged left`);
    assert.equal(readdirSync(join(vols, ms[0]!.Name!, '_data')).sort(), ['after', 'link', 'sub']);
    await c.ok(['rm', '-f', '-v', name]);
    for (const m of ms) await gone(m.Name!);
  });
}

t.run();
