// --mount, docker's long form of -v and --tmpfs: the same mounts, its keys and aliases, its CSV
// quoting; what this engine lacks is refused by name in one line, never silently dropped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inheritedMounts, mountCheck, mountProblem, parseMountFlag, parseVolumesFrom, type VolumeMount } from '../shared/volumes.js';

test('mount - bind, volume, anonymous volume and tmpfs, with docker\'s aliases', () => {
  assert.equal(parseMountFlag('type=bind,source=/srv/x,target=/data,readonly'), { type: 'bind', source: '/srv/x', target: '/data', readOnly: true });
  assert.equal(parseMountFlag('type=bind,src=/srv/x,dst=/data,ro=false'), { type: 'bind', source: '/srv/x', target: '/data' });
  assert.equal(parseMountFlag('type=bind,src=/srv/x,destination=/data,readonly=1'), { type: 'bind', source: '/srv/x', target: '/data', readOnly: true });
  // the type defaults to volume; a volume without a source is anonymous (the controller names it)
  assert.equal(parseMountFlag('source=cache,target=/cache'), { type: 'volume', source: 'cache', target: '/cache' });
  assert.equal(parseMountFlag('type=volume,target=/cache'), { type: 'volume', target: '/cache', anonymous: true });
  assert.equal(parseMountFlag('type=volume,src=cache,dst=/cache,volume-nocopy'), { type: 'volume', source: 'cache', target: '/cache', noCopy: true });
  assert.equal(parseMountFlag('type=volume,src=cache,dst=/cache,volume-nocopy=false,volume-driver=local'), { type: 'volume', source: 'cache', target: '/cache' });
  assert.equal(parseMountFlag('type=tmpfs,target=/run,tmpfs-size=1m,tmpfs-mode=700'), { type: 'tmpfs', target: '/run', size: 1 << 20, mode: 0o700 });
  assert.equal(parseMountFlag('type=tmpfs,dst=/run,tmpfs-size=65536'), { type: 'tmpfs', target: '/run', size: 65536 });
  // the keys are case-blind, empty fields and docker's no-op consistency are let be
  assert.equal(parseMountFlag('Type=bind,,Source=/a,Target=/b,consistency=cached,bind-propagation=rprivate'), { type: 'bind', source: '/a', target: '/b' });
});

test('mount - a field in double quotes may hold a comma, as docker\'s CSV reader reads it', () => {
  assert.equal(parseMountFlag('type=bind,"source=/srv/a,b",target=/data'), { type: 'bind', source: '/srv/a,b', target: '/data' });
  assert.throws(() => parseMountFlag('type=bind,"source=/srv/a,target=/data'), /invalid --mount .*a quote is not closed/);
});

test('mount - what cannot be, or is not built, is one line naming it', () => {
  for (const [spec, why] of [
    ['type=bind,target=/data', /a bind needs a source/],
    ['type=bind,source=rel,target=/data', /absolute host path/],
    ['type=volume,source=/srv,target=/data', /use type=bind for a host path/],
    ['type=tmpfs,source=x,target=/run', /a tmpfs has no source/],
    ['type=volume,source=v', /target is required/],
    ['type=overlay,target=/x', /type is bind, volume or tmpfs/],
    ['type=bind,source=/a,target=/b,tmpfs-size=1m', /tmpfs options/],
    ['type=bind,source=/a,target=/b,volume-nocopy', /volume-nocopy is a volume option/],
    ['type=tmpfs,target=/run,tmpfs-size=1', /at least 4k/],
    ['type=tmpfs,target=/run,tmpfs-size=lots', /tmpfs-size is bytes/],
    ['type=tmpfs,target=/run,tmpfs-mode=rwx', /tmpfs-mode is octal/],
    ['type=bind,source=/a,target=/b,bind-propagation=rshared', /bind-propagation rshared is not supported/],
    ['type=volume,source=v,target=/b,volume-driver=nfs', /volume driver "nfs" is not supported/],
    ['type=volume,source=v,target=/b,volume-opt=type=nfs', /volume-opt is not supported/],
    ['type=volume,source=v,target=/b,volume-subpath=a', /volume-subpath is not supported/],
    ['type=volume,source=v,target=/b,readonly=maybe', /readonly is true or false/],
    ['type=volume,source=v,target=/b,colour=blue', /unknown key "colour"/],
    ['type=volume,source=v,target', /"target" is not a key=value pair/],
    ['type=bind,source=/etc,target=/proc/x', /container's own proc/],
    ['type=bind,source=/srv/../etc,target=/x', /not a clean absolute host path/],
    ['type=volume,source=../../etc,target=/x', /invalid volume name/],
    ['type=volume,target=/', /clean absolute path below/],
  ] as const) {
    assert.throws(() => parseMountFlag(spec), (e: Error) => why.test(e.message) && e.message.startsWith('invalid --mount ') && !e.message.includes('\n'), spec);
  }
});

test('mount - volume-nocopy is a volume\'s alone, in requests written by hand too', () => {
  assert.match(mountProblem([{ type: 'tmpfs', target: '/x', noCopy: true }]) ?? '', /volume-nocopy is a volume option/);
  // the event and request schema carry the field as a boolean and nothing else
  assert.equal(mountCheck({ type: 'volume', source: 'v', target: '/x', noCopy: true }, 'mount'), { type: 'volume', source: 'v', target: '/x', noCopy: true });
  assert.throws(() => mountCheck({ type: 'volume', source: 'v', target: '/x', noCopy: 'yes' }, 'mount'), /noCopy/);
});

test('volumes-from - CONTAINER[:ro|:rw]; its volumes and binds, not its tmpfs, never over the new container\'s own mounts', () => {
  assert.equal(parseVolumesFrom('db'), { ref: 'db' });
  assert.equal(parseVolumesFrom('db.1:ro'), { ref: 'db.1', mode: 'ro' });
  for (const bad of ['', 'db:rx', ':ro', 'db:ro:rw', '../x', 'a b']) assert.throws(() => parseVolumesFrom(bad), /invalid --volumes-from/, bad);
  const theirs: VolumeMount[] = [
    { type: 'volume', source: 'a'.repeat(64), target: '/anon', anonymous: true },
    { type: 'volume', source: 'data', target: '/data', readOnly: true },
    { type: 'bind', source: '/srv/x', target: '/x' },
    { type: 'tmpfs', target: '/run', size: 4096 },
    { type: 'volume', source: 'mine', target: '/mine' },
  ];
  // as they are: each keeps its mode; an anonymous one stays the other's (no anonymous mark: rm -v of the new one leaves it)
  assert.equal(inheritedMounts(theirs, undefined, new Set(['/mine'])), [
    { type: 'volume', source: 'a'.repeat(64), target: '/anon', noCopy: true },
    { type: 'volume', source: 'data', target: '/data', readOnly: true, noCopy: true },
    { type: 'bind', source: '/srv/x', target: '/x' },
  ]);
  assert.ok(inheritedMounts(theirs, 'ro', new Set()).every((m) => m.readOnly === true));
  assert.ok(inheritedMounts(theirs, 'rw', new Set()).every((m) => m.readOnly === undefined), ':rw makes a read-only one writable, as docker');
});

test.run();
