// COPY/ADD's reading of the build context, without a cluster: symlinks copied as links (never
// their targets), .dockerignore applied under copied directories, owners 0:0 or --chown, a
// layer GNU tar reads; and a hostile ADD archive (`..`, absolute paths, a write through a
// link it made, a device) that must leave the host untouched and the layer inside its root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect, layerFile, removeTemps, type CopyStep } from '../tsctl/build-context.js';
import { parseIgnore } from '../tsctl/dockerignore.js';
import { DockerfileError } from '../tsctl/dockerfile.js';

const root = mkdtempSync(join(tmpdir(), 'build-ctx-'));
const ctxDir = join(root, 'ctx');
mkdirSync(join(ctxDir, 'src/deep'), { recursive: true });
writeFileSync(join(ctxDir, 'src/a.txt'), 'a');
writeFileSync(join(ctxDir, 'src/deep/b.txt'), 'b');
writeFileSync(join(ctxDir, 'src/deep/c.log'), 'c');
symlinkSync('/etc/shadow', join(ctxDir, 'src/shadow'));
symlinkSync('/etc', join(ctxDir, 'etcdir'));

const step = (sources: string[], dest: string, o: Partial<CopyStep> = {}): CopyStep => ({ line: 3, keyword: 'COPY', sources, dest, workdir: '/', ...o });

test.after(() => rmSync(root, { recursive: true, force: true }));

test('copy - a directory\'s contents into the destination, links as links, .dockerignore under it, owners 0:0', async () => {
  const { entries } = await collect(step(['src'], '/app'), { dir: ctxDir, rules: parseIgnore('**/*.log\n') });
  const names = entries.map((e) => `${e.name}:${e.type}:${e.uid}`);
  assert.equal(names, ['app:5:0', 'app/a.txt:0:0', 'app/deep:5:0', 'app/deep/b.txt:0:0', 'app/shadow:2:0']);
  assert.is(entries.find((e) => e.name === 'app/shadow')!.linkname, '/etc/shadow');
  assert.is(entries.find((e) => e.name === 'app/shadow')!.path, undefined, 'the link\'s target is never read');
  // a layer GNU tar reads, the link still a link
  const { file, digest } = await layerFile(entries, root);
  const l = spawnSync('tar', ['-tvf', file], { encoding: 'utf8' });
  assert.is(l.status, 0, l.stderr);
  assert.match(l.stdout, /app\/shadow -> \/etc\/shadow/);
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
});

test('copy - --chown, several sources into a directory, a glob, one file to a path', async () => {
  const two = await collect(step(['src/a.txt', 'src/deep/b.txt'], '/x/', { chown: { uid: 5, gid: 6 } }), { dir: ctxDir, rules: [] });
  assert.equal(two.entries.map((e) => `${e.name}:${e.uid}:${e.gid}`), ['x:5:6', 'x/a.txt:5:6', 'x/b.txt:5:6']);
  const glob = await collect(step(['src/deep/*.txt'], '/g/'), { dir: ctxDir, rules: [] });
  assert.equal(glob.entries.map((e) => e.name), ['g', 'g/b.txt']);
  const one = await collect(step(['src/a.txt'], 'renamed', { workdir: '/w' }), { dir: ctxDir, rules: [] });
  assert.equal(one.entries.map((e) => e.name), ['w', 'w/renamed']);
  assert.equal(one.single, { target: 'w/renamed', name: 'a.txt' });
});

test('attack - a source through a symlinked directory, ../, an ignored or missing source: one refusal naming the line', async () => {
  for (const [src, why] of [['etcdir/shadow', /etcdir is a symlink/], ['../ctx/src', /outside the build context/], ['src/deep/c.log', /excluded by \.dockerignore/], ['nope', /no such file/], ['*.none', /no file .* matches/]] as const) {
    const err = await collect(step([src], '/x'), { dir: ctxDir, rules: parseIgnore('*.log\nsrc/deep/c.log') }).then(() => null, (e: Error) => e);
    assert.instance(err, DockerfileError, src);
    assert.match(err!.message, /^Dockerfile:3: COPY /);
    assert.match(err!.message, why);
  }
});

test('attack - a hostile ADD archive: .., absolute paths, a write through its own link, a device: the host is untouched', async () => {
  const canary = join(root, 'outside');
  mkdirSync(canary);
  const py = `
import tarfile, io, sys
t = tarfile.open(sys.argv[1], 'w')
def f(name, data=b'x'):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
f('ok.txt', b'fine')
if sys.argv[2] == 'dotdot': f('../../escaped-dotdot')
f('${canary}/escaped-abs')
l = tarfile.TarInfo('lnk'); l.type = tarfile.SYMTYPE; l.linkname = '${canary}'; t.addfile(l)
f('lnk/through-link')
d = tarfile.TarInfo('dev'); d.type = tarfile.CHRTYPE; d.devmajor = 1; d.devminor = 3; t.addfile(d)
t.close()`;
  for (const variant of ['dotdot', 'links']) {
  const tarFile = join(ctxDir, 'evil.tar');
  const r = spawnSync('python3', ['-c', py, tarFile, variant], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const before = readdirSync(tmpdir()).filter((n) => n.startsWith('tsctl-add-')).length;
  const got = await collect(step(['evil.tar'], '/opt/', { keyword: 'ADD' }), { dir: ctxDir, rules: [] }).then((c) => c, (e: Error) => e);
  // either refused in one line, or unpacked with nothing outside
  assert.not.ok(existsSync(join(canary, 'escaped-abs')), 'an absolute entry was written on the host');
  assert.not.ok(existsSync(join(canary, 'through-link')), 'an entry was written through the archive\'s link');
  assert.not.ok(existsSync(join(root, 'escaped-dotdot')) || existsSync(join(tmpdir(), 'escaped-dotdot')), 'a .. entry escaped');
  if (got instanceof Error) {
    assert.instance(got, DockerfileError, `${variant}: ${got.stack}`);
    assert.match(got.message, variant === 'dotdot' ? /^Dockerfile:3: ADD evil.tar: entry "..\/..\/escaped-dotdot" climbs out/ : /^Dockerfile:3: ADD evil.tar: entry "lnk\/through-link" goes through the archive's symlink lnk/);
    assert.is(readdirSync(tmpdir()).filter((n) => n.startsWith('tsctl-add-')).length, before, 'the unpack dir of a refused archive is removed');
  } else {
    assert.is(variant, 'links', 'an archive with a .. entry is refused whole');
    const names = got.entries.map((e) => e.name);
    assert.ok(names.includes('opt/ok.txt'), names.join());
    for (const n of names) assert.ok(n === 'opt' || n.startsWith('opt/'), `entry ${n} outside the destination`);
    assert.not.ok(names.includes('opt/dev'), 'a device node from an archive');
    assert.is(got.entries.find((e) => e.name === 'opt/lnk')?.type ?? '2', '2', 'the link stays a link');
    await removeTemps(got.temps);
    for (const t of got.temps) assert.not.ok(existsSync(t));
  }
  }
});

test('add - a gzip archive unpacked into the destination: owners, modes, links and hard links kept, devices skipped, nothing written by name', async () => {
  const py = `
import tarfile, io, sys
t = tarfile.open(sys.argv[1], 'w:gz')
i = tarfile.TarInfo('d'); i.type = tarfile.DIRTYPE; i.mode = 0o750; i.uid = 7; i.gid = 8; t.addfile(i)
i = tarfile.TarInfo('/d/f'); i.size = 2; i.mode = 0o4755; i.uid = 1234; i.gid = 99; t.addfile(i, io.BytesIO(b'hi'))
i = tarfile.TarInfo('d/hard'); i.type = tarfile.LNKTYPE; i.linkname = 'd/f'; t.addfile(i)
i = tarfile.TarInfo('d/abs'); i.type = tarfile.SYMTYPE; i.linkname = '/etc/shadow'; t.addfile(i)
i = tarfile.TarInfo('d/null'); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; t.addfile(i)
t.close()`;
  const file = join(ctxDir, 'good.tgz');
  const r = spawnSync('python3', ['-c', py, file], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const got = await collect(step(['good.tgz'], '/srv', { keyword: 'ADD' }), { dir: ctxDir, rules: [] });
  try {
    const by = new Map(got.entries.map((e) => [e.name, e]));
    assert.equal([...by.keys()], ['srv', 'srv/d', 'srv/d/abs', 'srv/d/f', 'srv/d/hard'], 'the device is skipped; /d/f is d/f');
    assert.equal([by.get('srv/d')!.mode, by.get('srv/d')!.uid, by.get('srv/d')!.gid], [0o750, 7, 8]);
    assert.equal([by.get('srv/d/f')!.mode, by.get('srv/d/f')!.uid, by.get('srv/d/f')!.gid], [0o4755, 1234, 99]);
    assert.is(by.get('srv/d/abs')!.type, '2');
    assert.is(by.get('srv/d/abs')!.linkname, '/etc/shadow', 'a link\'s target is data, kept as written');
    assert.is(by.get('srv/d/hard')!.path, by.get('srv/d/f')!.path);
    for (const e of got.entries) if (e.path) assert.ok(e.path.startsWith(got.temps[0]!), 'file bytes only in the temp dir');
    const { file: layer } = await layerFile(got.entries, root);
    const list = spawnSync('tar', ['-tvf', layer, '--numeric-owner'], { encoding: 'utf8' });
    assert.match(list.stdout, /-rwsr-xr-x 1234\/99 +2 .* srv\/d\/f/);
    assert.is(spawnSync('tar', ['-xOf', layer, 'srv/d/hard'], { encoding: 'utf8' }).stdout, 'hi', 'a hard link carries its file\'s bytes');
  } finally { await removeTemps(got.temps); }
});

test.run();
