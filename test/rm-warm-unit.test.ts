// `tsctl rm` as the warm process serves it (tsctl/remove.ts inside a call, tsctl/warm.ts): its
// errors go to the call's stderr, not the warm process's; and a call whose client is gone (killed,
// Ctrl-C) asks the controller for no more removals, as a killed tsctl would not, and ends at once
// instead of waiting out its nodes' reports. A fake connection stands in for the cluster (no root).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NatsConnection } from 'nats';
import { removeAll } from '../tsctl/remove.js';
import { asCall, each, type Call, type Io, type Writer } from '../tsctl/session.js';
import { CliError } from '../tsctl/client.js';

const enc = new TextEncoder();

/** A connection whose rm requests wait until `answer()`; its state subscription hears nothing. */
function fakeConnection() {
  const asked: { ref: string; reply: (ok: boolean) => void }[] = [];
  let unsubscribed = 0;
  const nc = {
    subscribe: () => ({ unsubscribe: () => { unsubscribed++; } }),
    flush: () => Promise.resolve(),
    request: (subject: string, data: Uint8Array) => {
      const { ref } = JSON.parse(new TextDecoder().decode(data)) as { ref: string };
      assert.ok(subject.endsWith('.rm'), subject);
      return new Promise((resolve) => {
        asked.push({
          ref,
          reply: (ok) => resolve({ data: enc.encode(JSON.stringify(ok
            ? { ok: { id: ref.padEnd(64, '0'), name: ref, eventId: `ev-${ref}`, state: 'running' } }
            : { error: `no such container "${ref}"`, code: 'not_found' })) }),
        });
      });
    },
  } as unknown as NatsConnection;
  return { nc, asked, unsubscribed: () => unsubscribed };
}

/** A call's io that keeps what it was given; `gone` as the warm process's (tsctl/warm.ts). */
function callOf(gone?: AbortSignal): { call: Call; out: string[]; err: string[] } {
  const out: string[] = [], err: string[] = [];
  const writer = (to: string[]): Writer => ({ write: (d) => { to.push(typeof d === 'string' ? d : Buffer.from(d).toString()); return true; }, writableLength: 0 });
  const io: Io = { stdout: writer(out), stderr: writer(err), env: {}, cwd: '/', exitCode: undefined, exit: () => undefined, onSignal: () => undefined, ...(gone ? { gone } : {}) };
  const call: Call = { io, url: () => undefined, credsFlag: () => undefined, creds: null };
  return { call, out, err };
}

const settle = () => new Promise((r) => setImmediate(r));

test('rm-warm - a call whose client is gone asks for no more removals and ends at once; the requests already out stand', async () => {
  const f = fakeConnection();
  const gone = new AbortController();
  const { call } = callOf(gone.signal);
  const refs = Array.from({ length: 100 }, (_, i) => `c${i}`);
  const done = asCall(call, () => { call.conn = Promise.resolve(f.nc); return removeAll(f.nc, refs, true); });
  await settle();
  const inFlight = f.asked.length;
  assert.ok(inFlight > 0 && inFlight < refs.length, `a bounded number in flight (${inFlight})`);
  f.asked[0]!.reply(true); // one answered: its wait for the node's report begins
  await settle();
  const before = f.asked.length;
  gone.abort();
  for (const a of f.asked.slice(1)) a.reply(true);
  const t0 = Date.now();
  const err = await done.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof CliError, String(err));
  assert.ok(Date.now() - t0 < 2000, 'ended without waiting out the nodes\' reports');
  assert.is(f.asked.length, before, 'no request after the client went away');
  assert.is(f.unsubscribed(), 1, 'its subscription closed');
});

test('rm-warm - the same calls with their client there: every ref asked for (the control of the test above)', async () => {
  const f = fakeConnection();
  const { call } = callOf(new AbortController().signal);
  const refs = Array.from({ length: 100 }, (_, i) => `c${i}`);
  const done = asCall(call, () => { call.conn = Promise.resolve(f.nc); return removeAll(f.nc, refs, true); });
  // refused ones need no node's report: each answer lets the next request out
  for (let i = 0; i < refs.length; i++) {
    await settle();
    f.asked[i]!.reply(false);
  }
  const err = await done.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof CliError);
  assert.is(f.asked.length, refs.length);
});

test('rm-warm - each ref\'s error goes to the call\'s stderr, the removed ones to its stdout, in the order given', async () => {
  const { call, out, err } = callOf();
  const run = asCall(call, () => {
    call.conn = Promise.resolve({} as NatsConnection);
    return each(['a', 'missing', 'b'], async (ref) => { if (ref === 'missing') throw new CliError(`no such container "${ref}"`); });
  });
  const e = await run.then(() => undefined, (x: unknown) => x);
  assert.ok(e instanceof CliError);
  assert.equal(out, ['a\n', 'b\n']);
  assert.equal(err, ['tsctl: no such container "missing"\n']);
});

test.run();
