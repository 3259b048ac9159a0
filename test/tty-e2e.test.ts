// Terminals end to end (-t / -i): tsctl driven under a REAL pty (python3's pty/termios,
// test/helpers/pty-drive.py) as a user at a terminal, against a real cluster and a busybox
// container. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { Cluster, until } from './helpers/cluster.js';
import { drive as ptyDrive, type Step } from './helpers/pty.js';
import { decodeReply, encodeBody } from '../shared/rpc.js';

const t = suite('tty-e2e');
let c: Cluster;
const conns: NatsConnection[] = [];

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  c.addIdentity('olive', 'user', { role: 'operator' });
  await c.ok(['run', '-d', '--name', 'box', '--network', 'none', 'busybox', 'sleep', '1000']);
});
t.after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await c?.stop();
});

/** tsctl ARGS under a fresh pty of ROWS x COLS, typed at as `steps` say. */
const drive = (args: string[], steps: Step[], size?: [number, number]) => ptyDrive(c, args, steps, size);

// Lines end in \r\n: the container's pty makes \n \r\n, and tsctl's raw mode clears the outer
// terminal's output processing (OPOST) as docker's does, so no second \r is added.
// busybox sh's prompt as root: "/ # " (then its cursor-position query, ESC [6n, which a
// terminal would answer and this one does not: busybox goes on without the answer)
const PROMPT = '/ # ';

t('exec -it: a pty of the container as the terminal, its size, a resize, typed input and the exit code', async () => {
  const r = await drive(['exec', '-it', 'box', 'sh'], [
    { expect: PROMPT }, { send: 'tty\r' }, { expect: '/dev/pts/[0-9]+\\r+\\n' },
    { send: 'stty size\r' }, { expect: '30 100\\r+\\n' },
    { resize: [41, 133] }, { sleep: 0.5 }, { send: 'stty size\r' }, { expect: '41 133\\r+\\n' },
    { send: 'exit 3\r' },
  ]);
  assert.is(r.failed, null, r.output);
  assert.match(r.output, /\/dev\/pts\/\d+\r+\n/);
  assert.is(r.code, 3, r.output);
  assert.is(r.stty_after, r.stty_before, 'the local terminal is restored');
});

t('exec -it: ^C goes to the container\'s foreground process, not to tsctl', async () => {
  const r = await drive(['exec', '-it', 'box', 'sh'], [
    { expect: PROMPT }, { send: 'sleep 300; echo slept-$((40+2))\r' }, { sleep: 1 }, { send: '\x03' },
    { expect: PROMPT }, { send: 'echo alive-$((40+2))\r' }, { expect: 'alive-42' }, { send: 'exit\r' },
  ]);
  assert.is(r.failed, null, r.output);
  assert.not.match(r.output, /slept-42/, 'the whole line was interrupted');
  assert.is(r.code, 0, r.output);
  assert.is(r.stty_after, r.stty_before);
});

t('exec -it: ctrl-p ctrl-q detaches, the process runs on, the terminal is restored', async () => {
  const mark = `mark${randomBytes(4).toString('hex')}`;
  const r = await drive(['exec', '-it', 'box', 'sh', '-c', `sleep 200; : ${mark}`], [{ sleep: 1.5 }, { send: '\x10\x11' }]);
  assert.is(r.failed, null, r.output);
  assert.is(r.code, 0, r.output);
  assert.is(r.stty_after, r.stty_before);
  const ps = await c.ok(['exec', 'box', 'ps', '-o', 'args']);
  assert.match(ps, new RegExp(mark), 'the detached process still runs');
  await c.ok(['exec', 'box', 'pkill', '-f', mark]).catch(() => undefined);
});

t('exec -t alone: a terminal for the output, stdin not read', async () => {
  const r = await drive(['exec', '-t', 'box', 'sh', '-c', 'tty; stty size; exit 5'], [{ expect: '/dev/pts/' }], [22, 77]);
  assert.is(r.failed, null, r.output);
  assert.match(r.output, /\/dev\/pts\/\d+\r+\n22 77\r+\n/, r.output);
  assert.is(r.code, 5, r.output);
  assert.is(r.stty_after, r.stty_before);
});

t('run -t: the command\'s terminal is a pty of the container with the local size; its code is tsctl\'s', async () => {
  const r = await drive(['run', '-t', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'tty; stty size; exit 6'], [{ expect: '/dev/pts/' }], [27, 91]);
  assert.is(r.failed, null, r.output);
  assert.match(r.output, /\/dev\/pts\/\d+\r+\n27 91\r+\n/, r.output);
  assert.is(r.code, 6, r.output);
  assert.is(r.stty_after, r.stty_before);
});

t('attack: a container root that swaps /dev/ptmx for another node does not choose the exec\'s terminal', async () => {
  // the exec child opens /dev/pts/ptmx of the container's devpts (checked by its fs type), never /dev/ptmx
  await c.ok(['exec', 'box', 'sh', '-c', 'rm -f /dev/ptmx && mknod /dev/ptmx c 1 3']);
  try {
    const r = await drive(['exec', '-t', 'box', 'tty'], [{ expect: '/dev/pts/' }]);
    assert.is(r.failed, null, r.output);
    assert.match(r.output, /^\/dev\/pts\/\d+\r+\n$/, r.output);
    assert.is(r.code, 0, r.output);
  } finally {
    await c.ok(['exec', 'box', 'sh', '-c', 'rm -f /dev/ptmx && ln -s pts/ptmx /dev/ptmx']);
  }
});

t('fault: the agent SIGKILLed while a -t exec runs: the monitor keeps the pty, the restarted agent streams the rest and the code', async () => {
  const run = drive(['exec', '-t', 'box', 'sh', '-c', 'echo before; sleep 3; echo after-$((40+2)); exit 4'], [{ expect: 'before' }, { expect: 'after-42', timeout: 90 }]);
  await until(async () => (await c.ok(['events', '--filter', 'type=ExecStarted', '--format', 'json'])).includes('sleep 3; echo after'), 20000, 'the exec started');
  await c.killAgent();
  c.startAgent();
  await c.waitJoined();
  const r = await run;
  assert.is(r.failed, null, r.output);
  assert.is(r.code, 4, r.output);
  assert.is(r.output.match(/after-42/g)?.length, 1, r.output);
  assert.is(r.stty_after, r.stty_before);
});

/** An exec session opened through the controller's API by `nc` (as tsctl does), its output collected. */
async function session(nc: NatsConnection, user: string, args: string[], tty: { rows: number; cols: number } = { rows: 24, cols: 80 }) {
  const execId = randomBytes(32).toString('hex');
  let out = '';
  let code: number | undefined;
  nc.subscribe(`logs.*.${execId}`, { callback: (_e, m) => {
    if (m.headers?.get('eof')) code = Number(m.headers.get('code')); else out += new TextDecoder().decode(m.data);
  } });
  const rep = decodeReply<{ started: boolean; node: string; error?: string }>((await nc.request(`api.${user}.exec`,
    encodeBody({ ref: 'box', execId, args, interactive: true, tty }), { timeout: 20000 })).data);
  return { execId, rep, out: () => out, code: () => code };
}

t('attack: another user cannot type into a session (refused by the server, or not heard by the agent)', async () => {
  const admin = await c.connect('admin');
  const olive = await c.connect('olive');
  conns.push(admin, olive);
  const s = await session(admin, 'admin', ['sh']);
  assert.ok(s.rep.started, JSON.stringify(s.rep));
  const node = s.rep.node;
  // under the owner's name: the server refuses olive's publish
  const refused = new Promise<string>((res) => {
    olive.closed().then(() => res('closed'));
    (async () => { for await (const st of olive.status()) if (/permissions/i.test(String(st.data))) res(String(st.data)); })();
    setTimeout(() => res('no refusal within 5 s'), 5000);
  });
  olive.publish(`stdin.${node}.admin.${s.execId}`, new TextEncoder().encode('echo PWNED-$((6*7))\r'));
  assert.match(await refused, /permissions/i);
  // under her own name: allowed by the server, but the agent does not listen there
  olive.publish(`stdin.${node}.olive.${s.execId}`, new TextEncoder().encode('echo PWNED-$((6*7))\r'));
  await olive.flush();
  admin.publish(`stdin.${node}.admin.${s.execId}`, new TextEncoder().encode('echo OWNER-$((6*7)); exit 0\r'));
  await until(async () => s.code() !== undefined, 20000, 'the session ended');
  assert.match(s.out(), /OWNER-42/);
  assert.not.match(s.out(), /PWNED-42/);
});

t('attack: junk on the stdin/resize subject does not crash the agent; a huge size is refused in one line', async () => {
  const admin = await c.connect('admin');
  conns.push(admin);
  // raw mode first: the junk is data for head, not ^S/^Z/^C for the line discipline
  const s = await session(admin, 'admin', ['sh', '-c', 'stty raw -echo; echo READY; head -c 4096 >/dev/null; stty size']);
  assert.ok(s.rep.started, JSON.stringify(s.rep));
  await until(async () => s.out().includes('READY'), 20000, 'the session is ready');
  const subj = `stdin.${s.rep.node}.admin.${s.execId}`;
  for (const v of ['99999999 99999999', '70000 80', 'junk', '-1 -1', '1e9 1', '0 0', '\u00ff\u00fe', '24 80 1']) {
    const h = natsHeaders();
    h.set('resize', v);
    admin.publish(subj, new Uint8Array(0), { headers: h });
  }
  const ok = natsHeaders();
  ok.set('resize', '50 60');
  admin.publish(subj, new Uint8Array(0), { headers: ok });
  admin.publish(subj, randomBytes(4096)); // raw junk is just typed input
  await until(async () => s.code() !== undefined, 20000, 'the session ended');
  assert.is(s.code(), 0, s.out());
  const lines = s.out().split('\n').filter((l) => /invalid window size/.test(l));
  assert.is(lines.length, 8, s.out());
  assert.match(lines[0]!, /99999999x99999999: rows and columns are 1-4096/);
  assert.match(s.out(), /50 60/);
  // a first size out of range is refused by the API in one line
  const bad = await session(admin, 'admin', ['sh'], { rows: 1e9, cols: 80 }).catch((e: Error) => e);
  const msg = bad instanceof Error ? bad.message : JSON.stringify(bad.rep);
  assert.match(msg, /tty/);
  assert.not.match(msg, /\n/);
  // the agent is alive
  assert.is((await c.tsctl(['exec', 'box', 'true'])).code, 0);
});

t.run();
