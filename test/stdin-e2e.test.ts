// stdin of a container's own process (run -i, run -it, attach) end to end: tsctl under a REAL
// pty (test/helpers/pty.ts) or a pipe, a real cluster, busybox. The input goes through the
// FIFO the container's monitor keeps (native/src/monitor/monitor_attach.c, agent/attach.ts).
// Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { Cluster, until } from './helpers/cluster.js';
import { drive as ptyDrive, type Step } from './helpers/pty.js';

const t = suite('stdin-e2e');
let c: Cluster;
let oliveCreds = '';
const conns: NatsConnection[] = [];
const PROMPT = '/ # ';

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  oliveCreds = c.addIdentity('olive', 'user', { role: 'operator' });
});
t.after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await c?.stop();
});

const drive = (args: string[], steps: Step[], size?: [number, number], creds?: string) => ptyDrive(c, args, steps, size, creds);
const stateOf = async (ref: string) => (JSON.parse(await c.ok(['inspect', ref])) as { State: { Status: string } }[])[0]!.State.Status;

t('run -it: a shell with line editing, its size and every resize, ^C to the container, lines end \\r\\n, its exit code', async () => {
  const r = await drive(['run', '-it', '--rm', '--network', 'none', 'busybox', 'sh'], [
    { expect: PROMPT }, { send: 'tty\r' }, { expect: '/dev/pts/[0-9]+\\r\\n' },
    { send: 'stty size\r' }, { expect: '30 100\\r\\n' },
    { resize: [41, 133] }, { sleep: 0.5 }, { send: 'stty size\r' }, { expect: '41 133\\r\\n' },
    // ^C kills the foreground sleep (the pty's line discipline), not tsctl
    { send: 'sleep 300; echo slept-$((40+2))\r' }, { sleep: 1 }, { send: '\x03' }, { expect: PROMPT },
    // line editing: a typo erased with backspace before enter
    { send: 'echo edXit\x7f\x7f\x7fited-$((40+2))\r' }, { expect: 'edited-42' },
    { send: 'exit 3\r' },
  ]);
  assert.is(r.failed, null, r.output);
  assert.not.match(r.output, /slept-42/, 'the line was interrupted');
  assert.not.match(r.output, /\r\r\n/, 'no doubled carriage return');
  assert.is(r.code, 3, r.output);
  assert.is(r.stty_after, r.stty_before, 'the local terminal is restored');
});

t('run -i from a pipe: the command reads it, exits when it ends, tsctl returns its code', async () => {
  const r = await c.tsctl(['run', '-i', '--rm', '--network', 'none', 'busybox', 'cat'], { input: 'hi\n' });
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'hi\n');
  // more than one record (4092 bytes) and more than the FIFO holds at once (64 KiB), in order
  const big = Array.from({ length: 20000 }, (_, i) => `line ${i}`).join('\n') + '\n';
  const b = await c.tsctl(['run', '-i', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'wc -l; exit 4'], { input: big });
  assert.is(b.code, 4, b.stderr);
  assert.is(b.stdout.trim(), '20000');
  const s = await c.tsctl(['run', '-i', '--rm', '--network', 'none', 'busybox', 'md5sum'], { input: big });
  const { createHash } = await import('node:crypto');
  assert.is(s.stdout.split(' ')[0], createHash('md5').update(big).digest('hex'));
  // no -i: stdin is not read (/dev/null), the command sees its end at once
  const n = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'cat'], { input: 'not read\n' });
  assert.is(n.code, 0);
  assert.is(n.stdout, '');
});

t('run -t: window resizes reach the container for the whole run, not only at its start', async () => {
  const r = await drive(['run', '-t', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'stty size; sleep 2; stty size'],
    [{ expect: '27 91\\r+\\n' }, { resize: [33, 120] }], [27, 91]);
  assert.is(r.failed, null, r.output);
  // (stdin is not read without -i, so the local terminal is not raw: its onlcr adds a \r, as with docker run -t)
  assert.match(r.output, /27 91\r+\n33 120\r+\n/, r.output);
  assert.is(r.code, 0, r.output);
});

t('attach to a -it container: typed input and resizes, ctrl-p ctrl-q leaves it running, a second attach ends it', async () => {
  const id = (await c.ok(['run', '-d', '-it', '--name', 'sh1', '--network', 'none', 'busybox', 'sh'])).trim();
  try {
    const a = await drive(['attach', 'sh1'], [
      { send: 'echo one-$((40+2))\r' }, { expect: 'one-42' },
      { resize: [44, 144] }, { sleep: 0.5 }, { send: 'stty size\r' }, { expect: '44 144\\r\\n' },
      { send: '\x10\x11' },
    ]);
    assert.is(a.failed, null, a.output);
    assert.is(a.code, 0, a.output);
    assert.is(a.stty_after, a.stty_before);
    assert.is(await stateOf(id), 'running', 'detached, it runs on');
    const b = await drive(['attach', id.slice(0, 12)], [{ send: 'echo two-$((40+2))\r' }, { expect: 'two-42' }, { send: 'exit 7\r' }]);
    assert.is(b.failed, null, b.output);
    assert.is(b.code, 7, b.output);
  } finally {
    await c.tsctl(['rm', '-f', id]);
  }
});

t('run -it: ctrl-p ctrl-q detaches from the run itself; attach takes the session over', async () => {
  const r = await drive(['run', '-it', '--name', 'sh2', '--network', 'none', 'busybox', 'sh'], [{ expect: PROMPT }, { send: '\x10\x11' }]);
  assert.is(r.failed, null, r.output);
  assert.is(r.code, 0, r.output);
  assert.match(r.output, /detached/);
  assert.is(r.stty_after, r.stty_before);
  try {
    assert.is(await stateOf('sh2'), 'running');
    const b = await drive(['attach', 'sh2'], [{ send: 'echo back-$((40+2))\r' }, { expect: 'back-42' }, { send: 'exit 5\r' }]);
    assert.is(b.failed, null, b.output);
    assert.is(b.code, 5, b.output);
  } finally {
    await c.tsctl(['rm', '-f', 'sh2']);
  }
});

t('create -i / -it, then start -ai: stdin and the terminal are the starter\'s; --detach-keys replaces ctrl-p ctrl-q', async () => {
  await c.ok(['create', '-i', '--name', 'ci1', '--network', 'none', 'busybox', 'sh', '-c', 'read x; echo got-$x; exit 6']);
  try {
    const r = await c.tsctl(['start', '-ai', 'ci1'], { input: 'v\n' });
    assert.is(r.stdout, 'got-v\n', r.stderr);
    assert.is(r.code, 6, r.stderr);
  } finally { await c.tsctl(['rm', '-f', 'ci1']); }
  const bad = await c.tsctl(['start', '-ai', '--detach-keys', 'ctrl-1', 'nosuch']);
  assert.is(bad.code, 125, bad.stderr);
  assert.match(bad.stderr, /^tsctl: invalid --detach-keys "ctrl-1"[^\n]*\n$/);
  await c.ok(['create', '-it', '--name', 'ci2', '--network', 'none', 'busybox', 'sh']);
  try {
    // another user may not take its stdin: one line, and it was not started
    const o = await c.tsctl(['start', '-ai', 'ci2'], { env: { SWARMLITE_CREDS: oliveCreds } });
    assert.is(o.code, 125, o.stderr);
    assert.match(o.stderr, /^tsctl: start -i: [^\n]*owner[^\n]*\n$/);
    assert.is(await stateOf('ci2'), 'created');
    const r = await drive(['start', '-ai', '--detach-keys', 'ctrl-x,x', 'ci2'], [
      { expect: PROMPT }, { send: 'echo a-$((40+2))\r' }, { expect: 'a-42' },
      // the default keys are ordinary input now (^U clears what ctrl-p recalled)
      { send: '\x10\x11\x15echo b-$((40+2))\r' }, { expect: 'b-42' },
      { send: '\x18x' },
    ]);
    assert.is(r.failed, null, r.output);
    assert.is(r.code, 0, r.output);
    assert.match(r.output, /detached/);
    assert.is(r.stty_after, r.stty_before);
    assert.is(await stateOf('ci2'), 'running', 'detached, it runs on');
    const b = await drive(['attach', '--detach-keys', 'ctrl-e', 'ci2'], [{ send: 'echo c-$((40+2))\r' }, { expect: 'c-42' }, { send: '\x05' }]);
    assert.is(b.failed, null, b.output);
    assert.is(await stateOf('ci2'), 'running');
  } finally { await c.tsctl(['rm', '-f', 'ci2']); }
});

t('attack: another user\'s input never reaches a container\'s stdin; junk gets one line; the agent lives on', async () => {
  const admin = await c.connect('admin');
  const olive = await c.connect('olive');
  conns.push(admin, olive);
  // admin's container, a reader that ends on a line "end"
  const id = (await c.ok(['run', '-d', '-i', '--name', 'rd', '--network', 'none', 'busybox', 'sh', '-c', 'while read l; do echo "got:$l"; [ "$l" = end ] && exit 0; done'])).trim();
  try {
    const node = c.node;
    // tsctl attach by another user: refused in one line before anything is sent
    const o = await c.tsctl(['attach', 'rd'], { env: { SWARMLITE_CREDS: oliveCreds } });
    assert.is(o.code, 125, o.stderr);
    assert.match(o.stderr, /^tsctl: attach: [^\n]*owner[^\n]*\n$/);
    // under the owner's name: the server refuses olive's publish
    const refused = new Promise<string>((res) => {
      (async () => { for await (const st of olive.status()) if (/permissions/i.test(String(st.data))) res(String(st.data)); })();
      setTimeout(() => res('no refusal within 10 s'), 10000);
    });
    olive.publish(`stdin.${node}.admin.${id}`, new TextEncoder().encode('PWNED\n'));
    assert.match(await refused, /permissions/i);
    // under her own name: allowed by the server, dropped by the agent (not the owner)
    olive.publish(`stdin.${node}.olive.${id}`, new TextEncoder().encode('PWNED\n'));
    await olive.flush();
    // junk: bad resizes (no terminal here: ignored), headers of no meaning, other ids, bad ids
    for (const v of ['99999999 99999999', 'junk', '-1 -1']) { const h = natsHeaders(); h.set('resize', v); admin.publish(`stdin.${node}.admin.${id}`, new Uint8Array(0), { headers: h }); }
    for (const s of [`stdin.${node}.admin.${'0'.repeat(64)}`, `stdin.${node}.admin.x`, `stdin.${node}.admin.${id.toUpperCase()}`]) admin.publish(s, randomBytes(512));
    const lines = new Promise<string>((res) => {
      let out = '';
      admin.subscribe(`logs.*.${id}`, { callback: (_e, m) => { out += new TextDecoder().decode(m.data); if (/got:end/.test(out)) res(out); } });
      setTimeout(() => res(out), 30000);
    });
    await admin.flush();
    admin.publish(`stdin.${node}.admin.${id}`, new TextEncoder().encode('owner\nend\n'));
    const out = await lines;
    assert.match(out, /got:owner\n/);
    assert.not.match(out, /PWNED/);
    await until(async () => (await stateOf(id)) === 'exited', 30000, 'the reader ended');
    assert.is((await c.tsctl(['logs', id])).stdout, 'got:owner\ngot:end\n');
  } finally {
    await c.tsctl(['rm', '-f', id]);
  }
  // a -t container: a bad size is one line on its output; a good one still works after it
  const tid = (await c.ok(['run', '-d', '-t', '--name', 'tt', '--network', 'none', 'busybox', 'sh', '-c', 'sleep 3; stty size'])).trim();
  try {
    const node = c.node;
    const got = new Promise<string>((res) => {
      let out = '';
      admin.subscribe(`logs.*.${tid}`, { callback: (_e, m) => { out += new TextDecoder().decode(m.data); if (/\d+ \d+\r\n/.test(out)) res(out); } });
      setTimeout(() => res(out), 30000);
    });
    await admin.flush();
    for (const v of ['99999999 99999999', 'junk', '\u00ff\u00fe']) { const h = natsHeaders(); h.set('resize', v); admin.publish(`stdin.${node}.admin.${tid}`, new Uint8Array(0), { headers: h }); }
    const ok = natsHeaders(); ok.set('resize', '50 60'); admin.publish(`stdin.${node}.admin.${tid}`, new Uint8Array(0), { headers: ok });
    const out = await got;
    assert.is(out.split('\n').filter((l) => /^swarmlite: invalid window size/.test(l)).length, 3, out);
    assert.match(out, /50 60\r\n/);
  } finally {
    await c.tsctl(['rm', '-f', tid]);
  }
  assert.is((await c.tsctl(['run', '-i', '--rm', '--network', 'none', 'busybox', 'cat'], { input: 'alive\n' })).stdout, 'alive\n', 'the agent lives on');
});

t('fault: the agent SIGKILLed during a run -it session: the monitor keeps the FIFO, the restarted agent takes input again', async () => {
  const tag = join(tmpdir(), `stdin-e2e-${randomBytes(4).toString('hex')}`);
  const [reached, flag] = [`${tag}.reached`, `${tag}.flag`];
  const session = drive(['run', '-it', '--rm', '--name', 'sh3', '--network', 'none', 'busybox', 'sh'], [
    { expect: PROMPT }, { send: 'echo before-$((40+2))\r' }, { expect: `before-42\\r\\n${PROMPT}` },
    { touch: reached }, { waitFile: flag, timeout: 150 },
    { send: 'echo after-$((40+2))\r' }, { expect: 'after-42', timeout: 60 }, { send: 'exit 4\r' },
  ]);
  try {
    await until(async () => existsSync(reached), 60000, 'the session runs');
    const joins = async () => (await c.ok(['events', '--filter', 'type=NodeJoined', '--format', 'json'])).split('\n').filter((l) => l.trim()).length;
    const before = await joins();
    await c.killAgent();
    c.startAgent();
    // the new agent listens once it has joined (what is typed before that has no reader, as any core NATS message)
    await until(async () => (await joins()) > before, 60000, 'the agent joined again');
    writeFileSync(flag, '');
    const r = await session;
    assert.is(r.failed, null, r.output);
    assert.is(r.code, 4, r.output);
    assert.is(r.stty_after, r.stty_before);
  } finally {
    rmSync(reached, { force: true });
    rmSync(flag, { force: true });
  }
});

t.run();
