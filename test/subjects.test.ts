// The controller's subject roots in one list, and everything that must know them agreeing with
// it: the audit's writerOf, a new leader's head read, and the servers' grants. A root the head read
// lacked (services' ev.service) made a restarted controller wait on a head its view had passed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CONTROLLER_ROOTS } from '../shared/subjects.js';
import { nodeWrites, writerOf } from '../shared/audit.js';
import { CONTROLLER_SUBJECTS } from '../controller/lease.js';

test('every controller root is the controller\'s in the audit, and no other root is', () => {
  for (const r of CONTROLLER_ROOTS) assert.is(writerOf(r === 'controller' ? 'ev.controller' : `ev.${r}.x.y`), 'controller', r);
  for (const r of ['state', 'node']) assert.is(writerOf(`ev.${r}.n1.x`), 'node:n1', r);
  assert.is(writerOf('ev.unknown.x'), undefined);
});

test('the audit\'s quick writer check (nodeWrites) agrees with writerOf: yes only where writerOf names that node', () => {
  const subjects = ['ev.state.n1', 'ev.state.n1.x', 'ev.state.n10.x', 'ev.state.n.x', 'ev.state.', 'ev.state', 'ev.node.n1', 'ev.node.n1.y.z',
    'ev.node.n1x', 'ev.statex.n1.x', 'ev.keys.node-n1', 'ev.desired.n1.x', 'xev.state.n1.x', 'ev.state.n1-x', 'ev.state.N1.x'];
  let yes = 0;
  for (const subject of subjects) {
    for (const src of ['node:n1', 'node:n10', 'node:n', 'node:', 'controller', 'node:n1.x', 'nodex:n1']) {
      if (nodeWrites(subject, src)) { yes++; assert.is(writerOf(subject), src, `${src} on ${subject}`); }
      else if (src.startsWith('node:') && src.length > 5 && /^ev\.(state|node)\./.test(subject)) assert.is.not(writerOf(subject), src, `${src} on ${subject}`);
    }
  }
  assert.is(yes, 6); // n1 on ev.state.n1[.x] and ev.node.n1[.y.z], n10 and n on theirs
});

test('the takeover\'s head read covers every controller root', () => {
  for (const r of CONTROLLER_ROOTS) {
    const subject = r === 'controller' ? 'ev.controller' : `ev.${r}.x.y`;
    const matches = (pattern: string) => pattern === subject || (pattern.endsWith('.>') && subject.startsWith(pattern.slice(0, -1)));
    assert.ok(CONTROLLER_SUBJECTS.some(matches), `${subject} is not read by a new leader`);
  }
});

test.run();
