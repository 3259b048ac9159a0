// The controller's verbs without a server: the real verb table and dispatch (the part of
// serve() without NATS) over an in-memory log, the real codec and the real reducer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { apiTable, serialiser, type ApiContext } from '../controller/api/index.js';
import { dispatcher } from '../shared/nats/rpc.js';
import { decodeReply, encodeBody, RpcError, type Verb } from '../shared/rpc.js';
import { controllerApi as api } from '../shared/api/controller.js';
import { MemLog } from './helpers/memlog.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

function cluster(nodes = ['n1']) {
  const log = new MemLog();
  for (const n of nodes) log.join(n);
  log.append('controller', `ev.image.${DIGEST.slice(7)}`, 'ImageImported', DIGEST.slice(7), { name: 'busybox', digest: DIGEST, size: 1, user: 'u' });
  const ctx: ApiContext = {
    view: () => log.view,
    append: async (subject, type, entity, data) => log.append('controller', subject, type, entity, data),
    waitFor: async () => undefined,
    until: async (cond) => { if (!cond()) throw new Error('no answer'); },
    images: { info: async () => null, delete: async () => undefined },
  };
  const d = dispatcher(apiTable(ctx), { serialise: serialiser() });
  const call = async <Q, P>(v: Verb<Q, P>, req: Q): Promise<P> => decodeReply<P>(await d(v.name, encodeBody(req)));
  const raw = async (name: string, body: unknown) => decodeReply(await d(name, typeof body === 'string' ? new TextEncoder().encode(body) : encodeBody(body)));
  return { log, call, raw };
}

const rejects = async (p: Promise<unknown>, code: RpcError['code'], re: RegExp) => {
  try { await p; } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, code, (err as Error).message);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable('expected an RpcError');
};

test('controller api - run appends one ContainerRequested with the user, placed on a joined node', async () => {
  const { log, call } = cluster(['n1', 'n2']);
  const r = await call(api.run, { image: 'busybox', args: ['true'], name: 'web', user: 'alice@h' });
  assert.match(r.id, /^[0-9a-f]{64}$/);
  const e = log.events.at(-1)!;
  assert.is(e.event.type, 'ContainerRequested');
  assert.is(e.subject, `ev.desired.${r.node}.${r.id}`);
  assert.is((e.event.data as { user: string }).user, 'alice@h');
  assert.is(log.view.containers[r.id].name, 'web');
  // the next one spreads to the other node
  const r2 = await call(api.run, { image: 'busybox', args: ['true'] });
  assert.is.not(r2.node, r.node);
});

test('controller api - user errors carry a stable code and one line', async () => {
  const { call } = cluster();
  await rejects(call(api.run, { image: 'busybx', args: ['true'] }), 'not_found', /^no such image "busybx" \(tsctl image ls lists them\)$/);
  await rejects(call(api.run, { image: 'busybox', args: [] }), 'invalid', /no command specified/);
  await call(api.run, { image: 'busybox', args: ['true'], name: 'web' });
  await rejects(call(api.run, { image: 'busybox', args: ['true'], name: 'web' }), 'conflict', /the name "web" is already in use/);
  await rejects(call(api.run, { image: 'busybox', args: ['true'], resources: { cpus: 64 } }), 'conflict', /invalid --cpus "64": no node has that many CPUs/);
  await rejects(call(api.inspect, { ref: 'nope' }), 'not_found', /no such container "nope"/);
  await rejects(call(api.kill, { ref: 'web', signal: 'TERM' }), 'conflict', /is not running/);
  await rejects(call(api.networkCreate, { name: 'Bad Name' }), 'invalid', /invalid network name/);
  await rejects(call(api.networkInspect, { name: 'constructor' }), 'not_found', /no such network/);
});

test('controller api - hostile requests: unknown and prototype verbs, junk bodies, wrong shapes', async () => {
  const { raw, log } = cluster();
  const before = log.events.length;
  for (const verb of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'nope', '']) {
    await rejects(raw(verb, {}), 'invalid', /^unknown request/);
  }
  await rejects(raw('run', '\x00\x01{'), 'invalid', /request is not JSON/);
  await rejects(raw('run', '[1,2]'), 'invalid', /not a JSON object/);
  await rejects(raw('run', { image: 42 }), 'invalid', /^invalid request: image: expected a string/);
  await rejects(raw('run', { image: 'busybox', args: 'rm -rf /' }), 'invalid', /args: expected an array/);
  await rejects(raw('run', { image: 'busybox', args: ['x'], resources: { memory: 'lots' } }), 'invalid', /resources\.memory/);
  await rejects(raw('stop', { ref: 'x', timeout: -1 }), 'invalid', /timeout/);
  await rejects(raw('run', { image: 'busybox', args: ['true'], id: '../../etc' }), 'invalid', /invalid container id/);
  assert.is(log.events.length, before, 'nothing was appended');
});

test('controller api - kill names the signal from the platform table; rm of a running container needs force', async () => {
  const { log, call } = cluster();
  const r = await call(api.run, { image: 'busybox', args: ['sleep', '9'], name: 'a' });
  log.append('node:n1', `ev.state.n1.${r.id}`, 'ContainerStarted', r.id, { pid: 10, receivedAt: 1, runningAt: 2 });
  await call(api.kill, { ref: 'a', signal: '10' });
  assert.equal(log.events.at(-1)!.event.data, { signal: 'SIGUSR1', user: 'unknown' });
  await call(api.kill, { ref: 'a', signal: 'winch' });
  assert.is((log.events.at(-1)!.event.data as { signal: string }).signal, 'SIGWINCH');
  await rejects(call(api.kill, { ref: 'a', signal: 'SIGNOPE' }), 'invalid', /invalid signal "SIGNOPE"/);
  await rejects(call(api.rm, { ref: 'a' }), 'conflict', /stop it first or use rm -f/);
  const d = await call(api.rm, { ref: 'a', force: true });
  assert.is(d.state, 'running');
  assert.is(log.events.at(-1)!.event.type, 'ContainerRemoveRequested');
});

test('controller api - ps lists running and created unless all; mutations run one at a time', async () => {
  const { call } = cluster();
  // ten runs with the same name at once: exactly one wins (the name check and its append do not interleave)
  const results = await Promise.allSettled(Array.from({ length: 10 }, () => call(api.run, { image: 'busybox', args: ['true'], name: 'same' })));
  assert.is(results.filter((x) => x.status === 'fulfilled').length, 1);
  const ps = await call(api.ps, {});
  assert.equal(ps.items.map((c) => c.name), ['same']);
});

test('controller api - ps pages: every container once, newest first, no page over the limit', async () => {
  const { call, log } = cluster();
  for (let k = 0; k < 450; k++) {
    const id = k.toString(16).padStart(64, '0');
    log.append('controller', `ev.desired.n1.${id}`, 'ContainerRequested', id, { node: 'n1', user: 'u', spec: {
      name: `c${k}`, image: 'busybox', imageDigest: DIGEST, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'none', autoRemove: false } });
  }
  const seen: string[] = [];
  let offset: number | undefined = 0, n = 0;
  while (offset !== undefined) {
    const p: { items: { name: string }[]; next?: number } = await call(api.ps, { all: true, offset });
    assert.ok(p.items.length <= 200);
    seen.push(...p.items.map((c) => c.name));
    offset = p.next; n++;
  }
  assert.is(n, 3);
  assert.is(new Set(seen).size, 450);
});

test('controller api - -P and -p CONTAINER: exposed ports no -p names, each on the lowest free host port of the ephemeral range', async () => {
  const { withExposed, pickHostPorts, configDefaults } = await import('../controller/api/containers.js');
  const cfg = configDefaults(new TextEncoder().encode(JSON.stringify({ config: { ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8080': {}, 'junk': {}, '70000/tcp': {} }, Labels: { ok: 'y', '../bad': 'n', n: 3 } } })));
  // (a key that is a number comes first in a JSON object's order)
  assert.equal(cfg.exposed, [{ container: 8080, proto: 'tcp' }, { container: 80, proto: 'tcp' }, { container: 53, proto: 'udp' }]);
  assert.equal(cfg.labels, { ok: 'y' }, 'only well-formed image labels');
  const ports = withExposed([{ host: 9000, container: 80, proto: 'tcp' }], cfg.exposed!);
  assert.equal(ports, [{ host: 9000, container: 80, proto: 'tcp' }, { host: 0, container: 8080, proto: 'tcp' }, { host: 0, container: 53, proto: 'udp' }]);
  const picked = pickHostPorts(ports, new Set(['tcp/32768', 'udp/32769']));
  assert.equal(picked, [{ host: 9000, container: 80, proto: 'tcp' }, { host: 32769, container: 8080, proto: 'tcp' }, { host: 32768, container: 53, proto: 'udp' }]);
  const full = new Set(Array.from({ length: 60999 - 32768 + 1 }, (_, i) => `tcp/${32768 + i}`));
  assert.is(pickHostPorts([{ host: 0, container: 80, proto: 'tcp' }], full), undefined, 'a full range is no pick');
  const { parsePort } = await import('../tsctl/requests.js');
  assert.equal(parsePort('80'), { host: 0, container: 80, proto: 'tcp' });
  assert.throws(() => parsePort('0:80'), /ports are 1 to 65535/);
});

test.run();
