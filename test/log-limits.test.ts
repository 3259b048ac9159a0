// The log's byte limit fits what the server can reserve: a small host's JetStream refuses an
// 8 GiB max_bytes ("insufficient storage resources"), so the limit halves until it fits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { JetStreamManager } from 'nats';
import { ensureStream, DEFAULT_LIMITS } from '../shared/nats/log.js';

function fakeJsm(room: number, existing?: { max_bytes: number; max_msg_size: number }) {
  let config = existing ? { name: 'EVENTS', ...existing } : undefined;
  const calls: string[] = [];
  const refuse = (b: number) => { if (b > room) throw new Error('insufficient storage resources available'); };
  const jsm = { streams: {
    info: async () => { if (!config) throw new Error('stream not found'); return { config }; },
    add: async (c: { max_bytes: number; max_msg_size: number }) => { calls.push(`add ${c.max_bytes}`); refuse(c.max_bytes); config = { name: 'EVENTS', ...c }; },
    update: async (_n: string, c: { max_bytes: number; max_msg_size: number }) => { calls.push(`update ${c.max_bytes}`); refuse(c.max_bytes); config = { name: 'EVENTS', ...c }; },
  } } as unknown as JetStreamManager;
  return { jsm, calls, config: () => config };
}

test('log limits - 8 GiB where there is room; halved until it fits on a small host; an existing stream keeps what fits', async () => {
  const big = fakeJsm(100 * 1024 ** 3);
  assert.is(await ensureStream(big.jsm, DEFAULT_LIMITS), 8 * 1024 ** 3);
  const small = fakeJsm(3 * 1024 ** 3);
  assert.is(await ensureStream(small.jsm, DEFAULT_LIMITS), 2 * 1024 ** 3);
  assert.equal(small.calls, [`add ${8 * 1024 ** 3}`, `add ${4 * 1024 ** 3}`, `add ${2 * 1024 ** 3}`]);
  const again = fakeJsm(3 * 1024 ** 3, { max_bytes: 2 * 1024 ** 3, max_msg_size: DEFAULT_LIMITS.maxMsgSize });
  assert.is(await ensureStream(again.jsm, DEFAULT_LIMITS), 2 * 1024 ** 3);
  const none = fakeJsm(1024);
  try { await ensureStream(none.jsm, DEFAULT_LIMITS); assert.unreachable(); } catch (err) { assert.match((err as Error).message, /insufficient storage/); }
});

test.run();
