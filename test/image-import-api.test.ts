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

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function cluster() {
  const log = new MemLog();
  log.join('n1');
  const store = new Map<string, Buffer>();
  const deleted: string[] = [];
  // nats.js's delete leaves a marker that its info returns: deleted, no bytes, no digest
  const markers = new Set<string>();
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
    },
  };
  const put = (b: Buffer) => { store.set(sha(b).replace(':', '-'), b); markers.delete(sha(b).replace(':', '-')); return sha(b); };
  const d = dispatcher(apiTable(ctx), { serialise: serialiser() });
  const call = async <Q, P>(v: Verb<Q, P>, req: Q): Promise<P> => decodeReply<P>(await d(v.name, encodeBody(req)));
  return { log, call, put, store, deleted, ctx };
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
  assert.equal(deleted.sort(), [config, l2].map((d) => d.replace(':', '-')).sort(), 'l1 stays: other:1 has it');
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

test.run();
