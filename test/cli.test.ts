import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildProgram, runProgram, type Actions, type RunOpts } from '../tsctl/program.js';
import { eventFilter, parsePort, parseSince, runRequest } from '../tsctl/requests.js';
import { CliError } from '../tsctl/client.js';
import { limitsFromFlags } from '../tsctl/limits-flags.js';

function capture() {
  const calls: { verb: string; args: unknown[] }[] = [];
  const rec = (verb: string) => async (...args: unknown[]) => { calls.push({ verb, args }); };
  const a = new Proxy({}, { get: (_t, k: string) => rec(k) }) as unknown as Actions;
  return { calls, parse: (argv: string[]) => runProgram(buildProgram(a), argv) };
}

test('cli - events --filter: a subject, and key=value tests that must all hold', () => {
  const f = eventFilter(['ev.state.>', 'type=ContainerExited,node=n2', 'user=alice']);
  assert.is(f.subject, 'ev.state.>');
  const e = (type: string, src: string, data: unknown) => ({ type, src, entity: 'x', data });
  assert.ok(f.match(e('ContainerExited', 'node:n2', { user: 'alice' })));
  assert.not.ok(f.match(e('ContainerExited', 'node:n1', { user: 'alice' })));
  assert.not.ok(f.match(e('ContainerStarted', 'node:n2', { user: 'alice' })));
  assert.ok(eventFilter(['node=n2']).match(e('ContainerStopRequested', 'controller', { user: 'a' }), 'ev.desired.n2.abc'), 'what was asked of a node');
  assert.throws(() => eventFilter(['colour=red']), /invalid --filter "colour=red"/);
  assert.throws(() => eventFilter(['a.>', 'b.>']), /only one subject filter/);
});

test('cli - run stops option parsing at the image: flags after it belong to the command', async () => {
  const { calls, parse } = capture();
  await parse(['run', '--rm', '-e', 'A=1', '-e', 'B=2', '--name', 'x', 'busybox', 'sh', '-c', 'echo -n hi', '-e']);
  const [image, cmd, o] = calls[0].args as [string, string[], RunOpts];
  assert.is(calls[0].verb, 'run');
  assert.is(image, 'busybox');
  assert.equal(cmd, ['sh', '-c', 'echo -n hi', '-e']);
  assert.equal(o.env, ['A=1', 'B=2']);
  assert.is(o.rm, true);
  assert.is(o.name, 'x');
});

test('cli - docker short flags: -d, -h hostname, -w, -p repeated, --net alias', async () => {
  const { calls, parse } = capture();
  await parse(['run', '-d', '-h', 'box', '-w', '/tmp', '-p', '8080:80', '-p', '53:53/udp', '--net', 'none', 'busybox', 'true']);
  const o = calls[0].args[2] as RunOpts;
  assert.is(o.detach, true);
  assert.is(o.hostname, 'box');
  assert.is(o.workdir, '/tmp');
  assert.equal(o.publish, ['8080:80', '53:53/udp']);
  assert.is(o.network, 'none');
});

test('cli - ps -a --format json, stop -t, kill -s, rm -f', async () => {
  const { calls, parse } = capture();
  await parse(['ps', '-a', '--format', 'json']);
  await parse(['stop', '-t', '3', 'a', 'b']);
  await parse(['kill', '-s', 'TERM', 'a']);
  await parse(['rm', '-f', 'a']);
  await parse(['ps', '-f', 'name=web', '--filter', 'status=exited,node=n1', '-n', '3']);
  assert.equal(calls[0].args[0], { all: true, format: 'json', filter: [] });
  assert.equal(calls[4].args[0], { filter: ['name=web', 'status=exited,node=n1'], last: '3' });
  assert.equal(calls[1].args, [['a', 'b'], { time: '3' }]);
  assert.equal(calls[2].args, [['a'], { signal: 'TERM' }]);
  assert.equal(calls[3].args, [['a'], { force: true }]);
});

test('cli - unknown flags and commands are one-line errors (exit 125)', async () => {
  const { parse } = capture();
  for (const argv of [['run', '--bogus', 'busybox'], ['frobnicate'], ['run'], ['image', 'import', 'x.tar']]) {
    try { await parse(argv); assert.unreachable(argv.join(' ')); } catch (e) {
      assert.instance(e, CliError, argv.join(' '));
      assert.is((e as CliError).exitCode, 125);
      assert.not.match((e as Error).message, /\n/);
    }
  }
});

test('cli - ports', () => {
  assert.equal(parsePort('8080:80'), { host: 8080, container: 80, proto: 'tcp' });
  assert.equal(parsePort('53:53/udp'), { host: 53, container: 53, proto: 'udp' });
  assert.equal(parsePort('0.0.0.0:80:8080'), { host: 80, container: 8080, proto: 'tcp' });
  assert.equal(parsePort('80'), { host: 0, container: 80, proto: 'tcp' }, 'no host port: the controller picks one');
  assert.equal(parsePort('53/udp'), { host: 0, container: 53, proto: 'udp' });
  assert.throws(() => parsePort('127.0.0.1:80:80'), /not supported/);
  assert.throws(() => parsePort('80:99999'), /ports are 1 to 65535/);
  assert.throws(() => parsePort('a:b'), /invalid -p "a:b"/);
});

test('cli - since accepts seq, durations, unix and ISO times', () => {
  assert.equal(parseSince('42'), { seq: 42 });
  const now = 1_000_000_000_000;
  assert.equal(parseSince('10m', now), { time: new Date(now - 600_000) });
  assert.equal(parseSince('1700000000'), { time: new Date(1_700_000_000_000) });
  assert.equal(parseSince('2026-01-01T00:00:00Z'), { time: new Date('2026-01-01T00:00:00Z') });
  assert.throws(() => parseSince('yesterday-ish'), /invalid --since/);
  // a sign is no time (V8's Date.parse made -1 the year 2001); the flag named is the one given
  for (const junk of ['-1', '+5', ' -1', '-2026-01-01']) assert.throws(() => parseSince(junk, now, '--at'), /^.*invalid --at "/);
});

test('cli - run request validation names the flag', () => {
  const o: RunOpts = { env: [], publish: [], device: [], securityOpt: [], ulimit: [], capAdd: [], capDrop: [] };
  assert.throws(() => runRequest('i', 'img', ['x'], { ...o, env: ['NOEQUALS'] }, 'u', limitsFromFlags), /invalid -e "NOEQUALS"/);
  assert.throws(() => runRequest('i', 'img', ['x'], { ...o, workdir: 'rel' }, 'u', limitsFromFlags), /absolute path/);
  assert.throws(() => runRequest('i', 'img', ['x'], { ...o, network: 'host', publish: ['80:80'] }, 'u', limitsFromFlags), /-p has no meaning/);
  const r = runRequest('i', 'img', ['x'], { ...o, rm: true, env: ['A=b=c'] }, 'u', limitsFromFlags);
  assert.equal(r, { id: 'i', image: 'img', args: ['x'], env: ['A=b=c'], autoRemove: true, ports: [], user: 'u' });
});

test.run();
