// The controller's verdicts on ev.cluster.<node> end a tsctl wait (tsctl/node-watch.ts), but
// the subject alone does not make a message the controller's: whoever may edit a stream (an
// admin: stream administration is theirs; operators lost the image store's edit for this,
// test/trust.test.ts) can set its `republish`, which puts what is written there on any subject,
// whoever may publish there. So a NodeDown of someone's making, or a real one replayed, can
// reach any node's verdicts' subject. tsctl must not end a wait for one the controller's view
// does not hold.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type NatsConnection } from 'nats';
import { Cluster, sleep, until } from './helpers/cluster.js';
import { SourceChain, encodeEvent } from '../shared/codec.js';
import { IMAGE_BUCKET, subjects } from '../shared/subjects.js';

const t = suite('node-verdict-forge');
let c: Cluster;
const conns: NatsConnection[] = [];

t.before(async () => {
  // the controller declares a silent node down after 3 s (the real NodeDown below)
  process.env.SWARMLITE_NODE_SILENCE_MS = '3000';
  c = await Cluster.start();
  await c.importBusybox();
  c.addIdentity('adele', 'user', { role: 'admin' });
});
t.after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await c?.tsctl(['rm', '-f', 'fg0', 'fg1']).catch(() => undefined);
  await c?.stop();
});

/**
 * As admin `adele` (not the controller): the image store's stream edited to republish a chunk subject on `node`'s
 * verdicts' subject, then a NodeDown for it (src controller, signed by nobody) written there.
 * Returns a function that puts the stream back.
 */
async function forgeThroughRepublish(node: string): Promise<() => Promise<void>> {
  const nc = await c.connect('adele');
  conns.push(nc);
  const dec = (d: Uint8Array) => JSON.parse(new TextDecoder().decode(d));
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  const stream = `OBJ_${IMAGE_BUCKET}`, chunk = `$O.${IMAGE_BUCKET}.C.forged`;
  const info = dec((await nc.request(`$JS.API.STREAM.INFO.${stream}`, undefined, { timeout: 5000 })).data);
  const config = info.config;
  const edited = dec((await nc.request(`$JS.API.STREAM.UPDATE.${stream}`, enc({ ...config, republish: { src: chunk, dest: subjects.cluster(node) } }), { timeout: 5000 })).data);
  assert.not.ok(edited.error, `the admin's stream edit: ${JSON.stringify(edited.error)}`);
  const { event } = new SourceChain('controller').next('NodeDown', node, { silenceMs: 1 });
  await nc.jetstream().publish(chunk, encodeEvent(event));
  return async () => { await nc.request(`$JS.API.STREAM.UPDATE.${stream}`, enc(config), { timeout: 5000 }); };
}

t('node-verdict-forge - tsctl attach to a running container ends at its node\'s NodeDown, saying it went down while attached', async () => {
  const r = await c.tsctl(['run', '-d', '--name', 'fg0', 'busybox', 'sleep', '300']);
  assert.is(r.code, 0, r.stderr);
  const attach = c.tsctl(['attach', 'fg0']);
  await sleep(1500); // attached (its subscriptions made)
  const t0 = Date.now();
  await c.killAgent();
  try {
    const done = await attach;
    assert.is(done.code, 125, done.stderr);
    assert.match(done.stderr, new RegExp(`^tsctl: container [0-9a-f]{12}: node ${c.node} went down while attached`), done.stderr);
    assert.ok(Date.now() - t0 < 15000, `the attach took ${Date.now() - t0} ms after the kill`);
  } finally {
    c.startAgent();
    await c.waitJoined();
  }
  await until(async () => (await c.tsctl(['rm', '-f', 'fg0'])).code === 0, 20000, 'fg0 removed');
});

t('node-verdict-forge - an admin\'s NodeDown republished on the verdicts\' subject does not end an attach', async () => {
  const r = await c.tsctl(['run', '-d', '--name', 'fg1', 'busybox', 'sleep', '300']);
  assert.is(r.code, 0, r.stderr);
  const heard: string[] = [];
  const admin = await c.connect();
  conns.push(admin);
  admin.subscribe(subjects.cluster('*'), { callback: (_e, m) => heard.push(m.subject) });
  const attach = c.tsctl(['attach', 'fg1']);
  let ended = false;
  void attach.then(() => { ended = true; });
  await sleep(1500); // attached (its subscriptions made)
  const restore = await forgeThroughRepublish(c.node);
  try {
    await until(async () => heard.length > 0, 5000, 'the forged NodeDown delivered on the subject');
    await sleep(4500); // past the watch's questions to the controller
  } finally { await restore(); }
  assert.not.ok(ended, `the attach ended on a forged NodeDown: ${JSON.stringify(await attach)}`);
  assert.match((await c.tsctl(['nodes', '--format', 'json'])).stdout, /"state":"ready"/, 'the node is ready');
  assert.is((await c.tsctl(['stop', '-t', '0', 'fg1'])).code, 0);
  const done = await attach;
  assert.is.not(done.code, 125, done.stderr);
});

t.run();
