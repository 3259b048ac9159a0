// Placement is a pure function of the view.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { place, PlacementError } from '../controller/placement.js';
import type { ContainerSpec } from '../shared/events.js';
import { MemLog } from './helpers/memlog.js';

const spec = (over: Partial<ContainerSpec> = {}): ContainerSpec => ({
  name: 'c', image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'bridge', autoRemove: false, ...over,
});

test('placement - fewest running containers first; exited ones do not count', () => {
  const log = new MemLog();
  log.join('n1'); log.join('n2');
  const id = 'c'.repeat(64);
  log.append('controller', `ev.desired.n1.${id}`, 'ContainerRequested', id, { node: 'n1', spec: spec(), user: 'u' });
  assert.is(place(log.view, spec()).id, 'n2');
  log.append('node:n1', `ev.state.n1.${id}`, 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: 1 });
  assert.is(place(log.view, spec()).id, 'n1', 'ties go to the first by id');
});

test('placement - resources must fit a node; the error names the flag and the most there is', () => {
  const log = new MemLog();
  log.join('small', 1, 1024 ** 3); log.join('big', 4, 8 * 1024 ** 3);
  assert.is(place(log.view, spec({ resources: { cpus: 2 } })).id, 'big');
  assert.throws(() => place(log.view, spec({ resources: { cpus: 8 } })), (e: Error) => e instanceof PlacementError && /use at most 4/.test(e.message));
  assert.throws(() => place(log.view, spec({ resources: { memory: 16 * 1024 ** 3 } })), /use at most 8192m/);
  assert.throws(() => place(new MemLog().view, spec()), /no node has joined/);
});

test('placement - container: networking goes beside its peer', () => {
  const log = new MemLog();
  log.join('n1'); log.join('n2');
  const peer = { node: 'n2' };
  assert.is(place(log.view, spec({ network: 'container:web' }), () => peer).id, 'n2');
  assert.throws(() => place(log.view, spec({ network: 'container:web' }), () => undefined), /no such container "web"/);
});

test.run();
