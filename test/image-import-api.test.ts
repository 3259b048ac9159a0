// The controller's image.import of a layered image, over an in-memory log and a fake object
// store: every blob must be stored with its digest, the config must list exactly the
// layers given; the view then carries them to every ContainerRequested of the image, and
// image rm deletes only the blobs no image left has.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { apiTable, serialiser, type ApiContext } from '../controller/api/index.js';
import { dispatcher } from '../shared/nats/rpc.js';
import { decodeReply, encodeBody, RpcError, type Verb } from '../shared/rpc.js';
import { controllerApi as api } from '../shared/api/controller.js';
import type { ContainerSpec } from '../shared/events.js';
import { MemLog } from './helpers/memlog.js';
import { BlobHolds, HoldLimitError, MAX_HOLDS } from '../controller/blob-holds.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function cluster() {
  const log = new MemLog();
  log.join('n1');
  const store = new Map<string, Buffer>();
  const deleted: string[] = [];
  // nats.js's delete leaves a marker that its info returns: deleted, no bytes, no digest
  const markers = new Set<string>();
  const mtimes = new Map<string, Date>();
  const ctx: ApiContext = {
    view: () => log.view,
    append: async (subject, type, entity, data) => log.append('controller', subject, type, entity, data),
    waitFor: async () => undefined,
    until: async (cond) => { if (!cond()) throw new Error('no answer'); },
    images: {
      info: async (k) => {
        const b = store.get(k);
        if (!b) return markers.has(k) ? { size: 0, digest: '', deleted: true } : null;
        return { size: b.length, digest: `SHA-256=${createHash('sha256').update(b).digest('base64url')}` };
      },
      delete: async (k) => { deleted.push(k); store.delete(k); markers.add(k); },
      read: async (k) => store.get(k) ?? null,
      list: async () => [...store].map(([name, b]) => ({ name, size: b.length, mtime: (mtimes.get(name) ?? new Date()).toISOString() })),
    },
  };
  const put = (b: Buffer) => { store.set(sha(b).replace(':', '-'), b); markers.delete(sha(b).replace(':', '-')); return sha(b); };
  const d = dispatcher(apiTable(ctx), { serialise: serialiser() });
  const call = async <Q, P>(v: Verb<Q, P>, req: Q): Promise<P> => decodeReply<P>(await d(v.name, encodeBody(req)));
  return { log, call, put, store, deleted, ctx, mtimes };
}

const rejects = async (p: Promise<unknown>, re: RegExp) => {
  try { await p; } catch (err) { assert.instance(err, RpcError); assert.match((err as Error).message, re); return; }
  assert.unreachable('expected an RpcError');
};

test('image.import - the layers are checked at once; the config is still reported first, then the first bad layer in order', async () => {
  const { call, put, ctx } = cluster();
  const cfg = (ids: string[]) => Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ids } }));
  const l1 = put(Buffer.from('layer one'));
  const m1 = sha(Buffer.from('missing one')), m2 = sha(Buffer.from('missing two'));
  // each check answers after a turn of the timers: in flight together, or one after another
  const info = ctx.images.info.bind(ctx.images);
  let inFlight = 0, most = 0;
  ctx.images.info = async (k) => {
    inFlight++; most = Math.max(most, inFlight);
    try { await new Promise((r) => setTimeout(r, 5)); return await info(k); } finally { inFlight--; }
  };
  const config = put(cfg([m1, l1, m2]));
  await rejects(call(api.imageImport, { name: 'x:1', digest: config, layers: [m1, l1, m2] }), new RegExp(`layer ${m1} was not uploaded`));
  assert.ok(most >= 3, `the config's and the layers' checks overlap (at most ${most} at once)`);
  const ok = put(cfg([l1, m2]));
  await rejects(call(api.imageImport, { name: 'x:1', digest: ok, layers: [l1, m2] }), new RegExp(`layer ${m2} was not uploaded`));
  // a config not uploaded is the answer even while layers are missing too
  const absent = sha(cfg([m1, m2]));
  await rejects(call(api.imageImport, { name: 'x:1', digest: absent, layers: [m1, m2] }), /image config sha256:[0-9a-f]{64} was not uploaded/);
  assert.is(inFlight, 0, 'no check is left running after the answer');
});

test('image.import - a layered image: blobs checked, config matched, layers reach the container spec', async () => {
  const { log, call, put, deleted } = cluster();
  const l1 = put(Buffer.from('layer one')), l2 = put(Buffer.from('layer two'));
  const cfg = (ids: string[]) => Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ids } }));
  const config = put(cfg([l1, l2]));
  await rejects(call(api.imageImport, { name: 'h:5000/team/app:1', digest: config, layers: [l2, l1] }), /its config lists 2 layer\(s\), not the 2 given/);
  await rejects(call(api.imageImport, { name: 'h:5000/team/app:1', digest: config, layers: [l1, `sha256:${'0'.repeat(64)}`] }), /not the 2 given|was not uploaded/);
  const missing = sha(Buffer.from('never uploaded'));
  const config2 = put(cfg([l1, missing]));
  await rejects(call(api.imageImport, { name: 'x:1', digest: config2, layers: [l1, missing] }), /layer sha256:[0-9a-f]{64} was not uploaded/);
  const notConfig = put(Buffer.from('{"hello":1}'));
  await rejects(call(api.imageImport, { name: 'x:1', digest: notConfig, layers: [l1] }), /has no rootfs.diff_ids/);
  await rejects(call(api.imageImport, { name: 'bad name!', digest: config, layers: [l1, l2] }), /invalid image name/);

  assert.equal(await call(api.imageImport, { name: 'h:5000/team/app:1', digest: config, layers: [l1, l2], source: 'h:5000/team/app:1' }), { name: 'h:5000/team/app:1', digest: config });
  assert.equal(log.view.images['h:5000/team/app:1'].layers, [l1, l2]);
  assert.is(log.view.images['h:5000/team/app:1'].size, 18);
  // a second image shares the bottom layer
  const l3 = put(Buffer.from('layer three'));
  const config3 = put(cfg([l1, l3]));
  await call(api.imageImport, { name: 'other:1', digest: config3, layers: [l1, l3] });
  const r = await call(api.run, { image: 'h:5000/team/app:1', args: ['true'] });
  const spec = (log.events.at(-1)!.event.data as { spec: ContainerSpec }).spec;
  assert.is(spec.imageDigest, config);
  assert.equal(spec.layers, [l1, l2]);
  assert.ok(r.id);
  await call(api.imageRm, { name: 'h:5000/team/app:1', force: true });
  // rm -f leaves the container: it keeps its image's blobs (its node, or the next one, fetches them)
  assert.equal(deleted, [], 'a blob a container uses was deleted');
  log.append(`node:${log.view.containers[r.id].node}`, `ev.node.${log.view.containers[r.id].node}`, 'ContainerRemoved', r.id, { reason: 'test' });
  assert.not.ok(log.view.containers[r.id], 'the container is gone');
  // and the uploads of the refused imports above, which nothing ever named
  const orphans = [config, l2, config2, notConfig].sort();
  assert.equal((await call(api.imageGc, { graceMs: 0 })).removed.map((b) => b.digest).sort(), orphans, 'the blobs only the container used are collected');
  assert.equal(deleted.sort(), orphans.map((d) => d.replace(':', '-')), 'l1 stays: other:1 has it');
  // what rm deleted is not there: an import naming it is told so, not that its upload is wrong
  const config4 = put(Buffer.from(JSON.stringify({ os: 'linux', rootfs: { type: 'layers', diff_ids: [l1, l2] } })));
  await rejects(call(api.imageImport, { name: 'again:1', digest: config4, layers: [l1, l2] }), new RegExp(`layer ${l2} was not uploaded`));
  await rejects(call(api.imageImport, { name: 'again:1', digest: config, layers: [l1, l2] }), /image config sha256:[0-9a-f]{64} was not uploaded/);
});

test('image.import - pending layers (a pull fills them after its answer): not checked, sized as given; attacks: one not of the image, a size that is not a byte count', async () => {
  const { log, call, put } = cluster();
  const cfg = (ids: string[]) => Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ids } }));
  const l1 = put(Buffer.from('layer one'));
  const later = sha(Buffer.from('put after the answer'));
  const config = put(cfg([l1, later]));
  await rejects(call(api.imageImport, { name: 'p:1', digest: config, layers: [l1, later] }), new RegExp(`layer ${later} was not uploaded`));
  const stranger = sha(Buffer.from('not of this image'));
  await rejects(call(api.imageImport, { name: 'p:1', digest: config, layers: [l1, later], pending: [{ layer: stranger, size: 5 }] }), /pending layer "sha256:[0-9a-f]{64}" is not one of the image's layers/);
  for (const size of [-1, 1.5, Number.MAX_VALUE]) {
    await rejects(call(api.imageImport, { name: 'p:1', digest: config, layers: [l1, later], pending: [{ layer: later, size }] }), /invalid|out of range|whole number/);
  }
  // the config still says which layers the image runs on
  await rejects(call(api.imageImport, { name: 'p:1', digest: config, layers: [later, l1], pending: [{ layer: later, size: 7 }] }), /its config lists 2 layer\(s\), not the 2 given/);
  assert.not.ok(log.view.images['p:1'], 'nothing recorded by a refused import');
  assert.equal(await call(api.imageImport, { name: 'p:1', digest: config, layers: [l1, later], pending: [{ layer: later, size: 1000 }] }), { name: 'p:1', digest: config });
  assert.equal(log.view.images['p:1'].layers, [l1, later]);
  assert.is(log.view.images['p:1'].size, 9 + 1000);
});

test('image.fill - a layer put for an image removed meanwhile is removed when the fill says it is put; one another image or a container uses stays', async () => {
  const { log, call, put, store, deleted } = cluster();
  const cfg = (ids: string[]) => Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ids } }));
  const shared = put(Buffer.from('shared bottom'));
  const keep = put(cfg([shared]));
  await call(api.imageImport, { name: 'keep:1', digest: keep, layers: [shared] });
  const late = sha(Buffer.from('a layer put after the answer')), late2 = sha(Buffer.from('another'));
  const config = put(cfg([shared, late, late2]));
  await call(api.imageImport, { name: 'gone:1', digest: config, layers: [shared, late, late2], pending: [{ layer: late, size: 28 }, { layer: late2, size: 7 }] });
  // asked before its put: wanted while the image is there
  assert.equal(await call(api.imageFill, { layer: late }), { wanted: true });
  await call(api.imageRm, { name: 'gone:1' });
  assert.ok(store.has(shared.replace(':', '-')), 'the shared layer survives the rm');
  assert.not.ok(store.has(config.replace(':', '-')));
  // the put that was under way during the rm lands now; the word after it removes it
  put(Buffer.from('a layer put after the answer'));
  assert.equal(await call(api.imageFill, { layer: late, done: true }), { wanted: false });
  assert.not.ok(store.has(late.replace(':', '-')), 'the layer put after the rm is left in the store');
  // the next layer is not wanted before its put (the fill skips it)
  const tried = deleted.length;
  assert.equal(await call(api.imageFill, { layer: late2 }), { wanted: false });
  assert.is(deleted.length, tried, 'a question deletes nothing');
  // a layer another image still has is never removed by a fill's word
  assert.equal(await call(api.imageFill, { layer: shared, done: true }), { wanted: true });
  assert.ok(store.has(shared.replace(':', '-')));
  // nor one a container uses (its image removed with -f)
  const c2 = put(Buffer.from('c2 layer'));
  const cc = put(cfg([c2]));
  await call(api.imageImport, { name: 'used:1', digest: cc, layers: [c2], pending: [] });
  await call(api.run, { image: 'used:1', args: ['true'] });
  await call(api.imageRm, { name: 'used:1', force: true });
  assert.equal(await call(api.imageFill, { layer: c2, done: true }), { wanted: true });
  assert.ok(store.has(c2.replace(':', '-')) && store.has(cc.replace(':', '-')), 'a blob a container uses was removed');
  assert.ok(log.view.images['keep:1'] && !log.view.images['gone:1']);
  // attacks: not a digest, a forged key, junk
  for (const layer of ['', 'sha256:xyz', '../../etc/passwd', `sha256:${'A'.repeat(64)}`, 'x'.repeat(81)]) {
    await rejects(call(api.imageFill, { layer, done: true }), /invalid|layer/);
  }
  await rejects(call(api.imageFill, { layer: 5 } as unknown as { layer: string }), /invalid|layer/);
});

test('image.gc - takes the blobs nothing uses put longer ago than the grace; leaves younger ones (a pull puts its layers before its import), used ones, and objects not keyed by a digest', async () => {
  const { call, put, store, mtimes } = cluster();
  const cfg = (ids: string[]) => Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ids } }));
  const used = put(Buffer.from('used layer'));
  const config = put(cfg([used]));
  await call(api.imageImport, { name: 'img:1', digest: config, layers: [used] });
  const old = put(Buffer.from('orphan from a killed fill'));
  const young = put(Buffer.from('a pull in progress put this'));
  const hour = 3600_000;
  for (const d of [used, config, old]) mtimes.set(d.replace(':', '-'), new Date(Date.now() - 2 * hour));
  store.set('not-a-digest', Buffer.from('someone else\'s'));
  mtimes.set('not-a-digest', new Date(0));
  const r = await call(api.imageGc, {});
  assert.equal(r.removed, [{ digest: old, size: 25 }]);
  assert.ok(store.has(young.replace(':', '-')) && store.has(used.replace(':', '-')) && store.has(config.replace(':', '-')) && store.has('not-a-digest'));
  assert.equal((await call(api.imageGc, { graceMs: 0 })).removed.map((b) => b.digest), [young]);
  assert.equal((await call(api.imageGc, { graceMs: 0 })).removed, [], 'nothing left to take');
  for (const graceMs of [-1, 1.5, 'x', 1e20]) await rejects(call(api.imageGc, { graceMs } as unknown as { graceMs: number }), /invalid|out of range|whole|integer|graceMs/);
});

test('image.hold - a held blob stays through image rm, a fill\'s word and gc until the import naming the hold (or a release) ends it', async () => {
  const { log, call, put, store } = cluster();
  const cfg = (ids: string[]) => Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ids } }));
  const has = (d: string) => store.has(d.replace(':', '-'));
  const shared = put(Buffer.from('shared layer'));
  const first = put(cfg([shared]));
  await call(api.imageImport, { name: 'first:1', digest: first, layers: [shared] });
  // a pull of second:1 found the shared layer in the store: it holds it, then rm takes first:1
  const { hold } = await call(api.imageHold, { blobs: [shared] });
  assert.type(hold, 'string');
  await call(api.imageRm, { name: 'first:1' });
  assert.ok(has(shared), 'image rm took a held blob');
  assert.not.ok(has(first), 'the rm left the removed image\'s own config');
  assert.equal(await call(api.imageFill, { layer: shared, done: true }), { wanted: true });
  assert.equal((await call(api.imageGc, { graceMs: 0 })).removed, []);
  assert.ok(has(shared));
  // the import that names the hold ends it: the blob is the image's; its rm then takes it
  const second = put(cfg([shared]));
  await call(api.imageImport, { name: 'second:1', digest: second, layers: [shared], hold });
  assert.ok(log.view.images['second:1']);
  await call(api.imageRm, { name: 'second:1' });
  assert.not.ok(has(shared), 'the hold outlived the import that ended it');
  // a release ends one too (a pull that failed); an unknown one is nothing to do (a takeover forgot it)
  const orphan = put(Buffer.from('a failed pull put this'));
  const h2 = (await call(api.imageHold, { blobs: [orphan] })).hold!;
  assert.equal((await call(api.imageGc, { graceMs: 0 })).removed, []);
  assert.equal(await call(api.imageHold, { release: h2 }), {});
  assert.equal(await call(api.imageHold, { release: 'f'.repeat(24) }), {});
  assert.equal((await call(api.imageGc, { graceMs: 0 })).removed.map((b) => b.digest), [orphan]);
  // attacks: not digests, too many, junk types
  for (const b of ['', 'sha256:xyz', '../../etc/passwd', `sha256:${'A'.repeat(64)}`, 'x'.repeat(81)]) await rejects(call(api.imageHold, { blobs: [b] }), /invalid|blob/);
  await rejects(call(api.imageHold, { blobs: Array.from({ length: 502 }, () => shared) }), /invalid|500|501|items|long/);
  await rejects(call(api.imageHold, { blobs: shared } as unknown as { blobs: string[] }), /invalid|blobs/);
  await rejects(call(api.imageHold, { release: 'x'.repeat(65) }), /invalid|release/);
});

test('BlobHolds - a hold lapses at its time; live holds are bounded', () => {
  const h = new BlobHolds(1000);
  const d = `sha256:${'a'.repeat(64)}`;
  h.hold([d], 0);
  assert.ok(h.has(d, 999));
  assert.not.ok(h.has(d, 1000), 'a hold outlived its time');
  for (let i = 0; i < MAX_HOLDS; i++) h.hold([d], 5000);
  assert.throws(() => h.hold([d], 5000), (e: Error) => e instanceof HoldLimitError && /holds on image blobs/.test(e.message));
  // the lapsed ones make room
  h.hold([d], 6000);
  assert.ok(h.has(d, 6500) && !h.has(d, 7000));
});

test.run();
