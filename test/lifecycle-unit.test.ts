// The pure parts of exec and the lifecycle verbs: their folds, the agent's pause/rename
// actions over a fake host, the freezer's file texts, top's rows. No root, no nats-server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventLog } from './helpers/event-log.js';
import { SourceChain } from '../shared/codec.js';
import { fold } from '../shared/reducer.js';
import { decodeEvent, encodeEvent } from '../shared/codec.js';
import type { ContainerSpec, EventData, EventType, StoredEvent } from '../shared/events.js';
import * as actions from '../agent/pipeline/actions.js';
import type { ContainerRecord } from '../agent/pipeline/checkpoint.js';
import { frozenText, freezerFrozen } from '../agent/cgroups/paused.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { topRow } from '../agent/top.js';
import { execRequestOf } from '../tsctl/commands/exec.js';
import { CliError } from '../tsctl/client.js';

const spec: ContainerSpec = {
  name: 'web', image: 'busybox', imageDigest: `sha256:${'b'.repeat(64)}`, args: ['true'], env: [],
  hostname: 'web', workdir: '/', network: 'none', autoRemove: false,
};
const ID = 'c'.repeat(64);

const log = eventLog;

test('reducer - pause and unpause come from the container\'s node; an exit clears paused; rename is the controller\'s', () => {
  const { events, add } = log();
  add('controller', 'ContainerRequested', 'c1', { node: 'n1', spec, user: 'u' });
  add('node:n1', 'ContainerStarted', 'c1', { pid: 42, receivedAt: 1, runningAt: 2 });
  add('controller', 'ContainerPauseRequested', 'c1', { user: 'u' });
  add('node:n2', 'ContainerPaused', 'c1', {}); // another node's word counts for nothing
  assert.is(fold(events).containers.c1.paused, undefined);
  add('node:n1', 'ContainerPaused', 'c1', {});
  assert.is(fold(events).containers.c1.paused, true);
  add('node:n1', 'ContainerUnpaused', 'c1', {});
  assert.is(fold(events).containers.c1.paused, undefined);
  add('node:n1', 'ContainerPaused', 'c1', {});
  add('node:n1', 'ContainerExited', 'c1', { exitCode: 137, oomKilled: false, exitedAt: 3 });
  assert.is(fold(events).containers.c1.paused, undefined);
  add('node:n1', 'ContainerRenameRequested', 'c1', { name: 'evil', user: 'u' }); // not from the controller
  assert.is(fold(events).containers.c1.name, 'web');
  add('controller', 'ContainerRenameRequested', 'c1', { name: 'web2', user: 'u' });
  const v = fold(events);
  assert.is(v.containers.c1.name, 'web2');
  assert.is(v.containers.c1.spec.name, 'web2');
  // exec events fold to nothing and break nothing
  add('node:n1', 'ExecStarted', 'c1', { execId: 'a'.repeat(64), user: 'u', args: ['ps'], pid: 9 });
  add('node:n1', 'ExecExited', 'c1', { execId: 'a'.repeat(64), exitCode: 0, exitedAt: 4 });
  assert.equal(fold(events).chainIssues, []);
});

test('schema - exec and lifecycle events round-trip; junk exec ids and names are refused', () => {
  const chain = new SourceChain('node:n1');
  const ok = chain.next('ExecFailed', ID, { execId: 'f'.repeat(64), user: 'u', args: ['id'], error: 'unable to find user x', exitCode: 125 });
  assert.is(decodeEvent(encodeEvent(ok.event)).type, 'ExecFailed');
  const bad = [
    chain.next('ExecStarted', ID, { execId: '../x', user: 'u', args: [], pid: 1 }),
    chain.next('ExecExited', ID, { execId: 'a'.repeat(64), exitCode: 999, exitedAt: 1 }),
    new SourceChain('controller').next('ContainerRenameRequested', ID, { name: '../../etc', user: 'u' }),
  ];
  for (const b of bad) assert.throws(() => decodeEvent(encodeEvent(b.event)));
});

class FakeHost {
  calls: string[] = [];
  pauseFails?: Error;
  status() { return { state: 'running' as const, pid: 42 }; }
  async pause() { this.calls.push('pause'); if (this.pauseFails) throw this.pauseFails; }
  async unpause() { this.calls.push('unpause'); }
}

test('actions - pause and unpause act through the host and report; a failure is a rejection; rename is applied as is', async () => {
  const host = new FakeHost();
  const records = new Map<string, ContainerRecord>([[ID, { lastSeq: 1, reported: 'running' } as ContainerRecord]]);
  const ctx: actions.ActionContext = {
    node: 'n1', host: host as unknown as actions.HostActions, networks: {} as never, record: (id) => records.get(id), progress: () => undefined,
  };
  const chain = new SourceChain('controller');
  let seq = 1;
  const desired = <T extends EventType>(type: T, data: EventData[T]) => {
    const { event, hash } = chain.next(type, ID, data);
    chain.commit(event.srcSeq, hash);
    return { seq: ++seq, hash, event } as never;
  };
  const p = await actions.container(ctx, desired('ContainerPauseRequested', { user: 'u' }), 1);
  assert.equal(p.events.map((e) => e.type), ['ContainerPaused']);
  const u = await actions.container(ctx, desired('ContainerUnpauseRequested', { user: 'u' }), 1);
  assert.equal(u.events.map((e) => e.type), ['ContainerUnpaused']);
  host.pauseFails = new Error('no freezer hierarchy');
  const f = await actions.container(ctx, desired('ContainerPauseRequested', { user: 'u' }), 1);
  assert.equal(f.events.map((e) => e.type), ['EventRejected']);
  assert.match((f.events[0].data as { reason: string }).reason, /pause: no freezer hierarchy/);
  const r = await actions.container(ctx, desired('ContainerRenameRequested', { name: 'x', user: 'u' }), 1);
  assert.equal(r.events, []);
  assert.equal(host.calls, ['pause', 'unpause', 'pause']);
});

test('freezer - the v1 and v2 file texts', () => {
  assert.ok(frozenText('freezer.state', 'FROZEN\n'));
  assert.ok(frozenText('freezer.state', 'FREEZING\n'));
  assert.not.ok(frozenText('freezer.state', 'THAWED\n'));
  assert.ok(frozenText('cgroup.freeze', '1\n'));
  assert.not.ok(frozenText('cgroup.freeze', '0\n'));
});

test('freezer - freezerFrozen reads a v1 group\'s freezer.state (freezer hierarchy only) and a v2 group\'s cgroup.freeze', () => {
  const d = mkdtempSync(join(tmpdir(), 'sl-frozen-'));
  try {
    for (const g of ['v1', 'v1mem', 'v2']) mkdirSync(join(d, g));
    const v1 = { version: 'v1' as const, dir: (c: string) => (c === 'freezer' ? join(d, 'v1') : c === 'memory' ? join(d, 'v1mem') : undefined) };
    const v2 = { version: 'v2' as const, dir: join(d, 'v2') };
    writeFileSync(join(d, 'v1', 'freezer.state'), 'THAWED\n');
    writeFileSync(join(d, 'v1mem', 'freezer.state'), 'FROZEN\n'); // not the freezer's group: never read
    writeFileSync(join(d, 'v2', 'cgroup.freeze'), '0\n');
    assert.not.ok(freezerFrozen(v1));
    assert.not.ok(freezerFrozen(v2));
    writeFileSync(join(d, 'v2', 'cgroup.freeze'), '1\n');
    assert.ok(freezerFrozen(v2));
    writeFileSync(join(d, 'v1', 'freezer.state'), 'FREEZING\n');
    assert.ok(freezerFrozen(v1));
    assert.not.ok(freezerFrozen({ version: 'v1', dir: () => undefined })); // no freezer mounted
    assert.not.ok(freezerFrozen({ version: 'v2', dir: join(d, 'none') })); // group gone
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('top - a row from /proc texts, a comm with spaces and parentheses, an empty cmdline', () => {
  const stat = '4242 (we ird) proc) S 4200 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 1 0 360000 1000 100';
  assert.equal(topRow(4242, stat, 'Name:\tx\nUid:\t1000\t1000\t1000\t1000\n', 'sleep\x001000\x00', 100, 0), ['1000', '4242', '4200', '01:00', '00:00:04', 'sleep 1000']);
  assert.equal(topRow(7, stat, 'Uid:\t0\n', '', 100, 0)[5], '[we ird) proc]');
});

test('tsctl exec - one-line refusals before any round trip', () => {
  const id = 'e'.repeat(64);
  const bad: [string[], Record<string, unknown>, RegExp][] = [
    [[], {}, /exec needs a command/],
    [['sh'], { env: ['X'] }, /K=V/],
    [['sh'], { env: ['X=\0'] }, /NUL/],
    [['s\0h'], {}, /NUL/],
    [['sh'], { workdir: 'rel' }, /absolute/],
    [['sh'], { env: [`A=${'x'.repeat(1 << 20)}`] }, /at most/],
  ];
  for (const [cmd, o, re] of bad) {
    try { execRequestOf('box', cmd, { env: [], ...o } as never, id); assert.unreachable(JSON.stringify(cmd)); } catch (err) {
      assert.instance(err, CliError);
      assert.match((err as Error).message, re);
    }
  }
  assert.equal(execRequestOf('box', ['id'], { env: ['A=1'], user: 'nobody', interactive: true }, id),
    { ref: 'box', execId: id, args: ['id'], env: ['A=1'], processUser: 'nobody', interactive: true });
});

test.run();
