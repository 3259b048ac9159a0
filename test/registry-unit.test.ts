// The registry client's pure parts, without a network or root: references, auth
// challenges, manifests (every kind, and junk), platform choice, image configs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseReference, schemeFor, ReferenceError } from '../tsctl/registry/reference.js';
import { parseChallenge, tokenUrl } from '../tsctl/registry/auth.js';
import { parseManifest, choosePlatform, layerCompression, MEDIA } from '../tsctl/registry/manifest.js';
import { configLayers } from '../shared/image-config.js';
import { IMAGE_NAME_RE } from '../shared/ids.js';

const D = `sha256:${'a'.repeat(64)}`;
const enc = (v: unknown) => Buffer.from(JSON.stringify(v));

test('reference - hosts, docker.io defaults, tags, digests; names the cluster accepts', () => {
  const r = parseReference('127.0.0.1:5000/team/app:1.2');
  assert.equal([r.registry, r.endpoint, r.repository, r.tag, r.reference, r.name], ['127.0.0.1:5000', '127.0.0.1:5000', 'team/app', '1.2', '1.2', '127.0.0.1:5000/team/app:1.2']);
  const h = parseReference('busybox');
  assert.equal([h.registry, h.endpoint, h.repository, h.tag, h.name], ['docker.io', 'registry-1.docker.io', 'library/busybox', 'latest', 'busybox:latest']);
  const d = parseReference(`localhost/x@${D}`);
  assert.equal([d.registry, d.repository, d.digest, d.reference], ['localhost', 'x', D, D]);
  assert.ok(IMAGE_NAME_RE.test(d.name), d.name);
  for (const ok of ['127.0.0.1:5000/team/app:1', 'registry.example.com/a/b/c:v1', 'busybox:latest', 'app']) assert.ok(IMAGE_NAME_RE.test(parseReference(ok).name), ok);
  for (const bad of ['UPPER/x', 'a//b', 'x:', 'x@sha256:zz', 'a/b:t@', `${'a'.repeat(600)}`, 'host:99/../x']) {
    assert.throws(() => parseReference(bad), (e: Error) => e instanceof ReferenceError, bad);
  }
  assert.is(schemeFor('127.0.0.1:5000', false), 'http');
  assert.is(schemeFor('localhost', false), 'http');
  assert.is(schemeFor('registry.example.com', false), 'https');
  assert.is(schemeFor('registry.example.com', true), 'http');
});

test('auth - Bearer and Basic challenges, quoted commas, the token URL', () => {
  const c = parseChallenge('Bearer realm="https://auth.example.com/token",service="reg, one",scope="repository:a/b:pull"')!;
  assert.equal(c, { scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'reg, one', scope: 'repository:a/b:pull' } });
  const u = tokenUrl(c, 'x') as URL;
  assert.is(u.searchParams.get('service'), 'reg, one');
  assert.equal(u.searchParams.getAll('scope'), ['repository:a/b:pull']);
  assert.equal(parseChallenge('Basic realm="r"'), { scheme: 'basic', params: { realm: 'r' } });
  assert.type(tokenUrl({ scheme: 'bearer', params: { realm: 'file:///etc/passwd' } }, 's'), 'string');
  assert.type(tokenUrl({ scheme: 'bearer', params: {} }, 's'), 'string');
  assert.is(parseChallenge(''), undefined);
});

test('manifest - OCI, schema 2, index, list; schema 1, junk and odd shapes are reasons', () => {
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D, size: 10 };
  const img = parseManifest(enc({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { ...layer, mediaType: 'c' }, layers: [layer] }), '');
  assert.equal(img, { kind: 'image', config: { mediaType: 'c', digest: D, size: 10 }, layers: [layer] });
  const v2 = parseManifest(enc({ schemaVersion: 2, config: { ...layer }, layers: [layer] }), `${MEDIA.dockerManifest}; charset=utf-8`);
  assert.is((v2 as { kind: string }).kind, 'image');
  const idx = parseManifest(enc({ schemaVersion: 2, manifests: [{ mediaType: MEDIA.dockerManifest, digest: D, size: 1, platform: { os: 'linux', architecture: 'amd64' } }] }), MEDIA.dockerList);
  assert.is((idx as { kind: string }).kind, 'index');
  assert.match(parseManifest(enc({ schemaVersion: 1 }), '') as string, /schema 1/);
  assert.match(parseManifest(Buffer.from([0xff, 0xfe, 0]), '') as string, /not JSON/);
  assert.match(parseManifest(enc([1]), '') as string, /not a JSON object/);
  assert.match(parseManifest(enc({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { ...layer, digest: 'md5:x' }, layers: [layer] }), '') as string, /config has no sha256 digest/);
  assert.match(parseManifest(enc({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: layer, layers: [] }), '') as string, /no layers/);
  assert.match(parseManifest(enc({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: layer, layers: [{ ...layer, size: -1 }] }), '') as string, /layers\[0\] has no size/);
  assert.match(parseManifest(enc({ schemaVersion: 2, mediaType: 'text/html' }), '') as string, /unsupported manifest type/);
});

test('platform - linux/amd64 picked from an index; arm64 v8; none is undefined', () => {
  const m = (architecture: string, variant?: string, os = 'linux') => ({ mediaType: MEDIA.ociManifest, digest: D, size: 1, platform: { os, architecture, ...(variant ? { variant } : {}) } });
  const list = [m('arm', 'v7'), m('amd64', undefined, 'windows'), m('arm64', 'v8'), m('amd64')];
  assert.equal(choosePlatform(list, 'linux', 'amd64'), list[3]);
  assert.equal(choosePlatform(list, 'linux', 'arm64'), list[2]);
  assert.is(choosePlatform(list, 'linux', 's390x'), undefined);
  assert.is(layerCompression('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
  assert.is(layerCompression('application/vnd.oci.image.layer.v1.tar'), 'none');
  assert.match(layerCompression('application/vnd.oci.image.layer.v1.tar+zstd'), /zstd/);
  assert.match(layerCompression('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'), /foreign/);
});

test('config - diff_ids read, junk refused', () => {
  assert.equal(configLayers(enc({ rootfs: { type: 'layers', diff_ids: [D] } })), [D]);
  assert.type(configLayers(enc({ rootfs: { type: 'layers', diff_ids: [] } })), 'string');
  assert.type(configLayers(enc({ rootfs: { type: 'layers', diff_ids: ['../x'] } })), 'string');
  assert.type(configLayers(Buffer.from('{')), 'string');
  assert.type(configLayers(enc(null)), 'string');
});

test.run();
