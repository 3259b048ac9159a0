// The controller's subject roots in one list, and everything that must know them agreeing with
// it: the audit's writerOf, a new leader's head read, and the servers' grants. A root the head read
// lacked (services' ev.service) made a restarted controller wait on a head its view had passed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CONTROLLER_ROOTS } from '../shared/subjects.js';
import { writerOf } from '../shared/audit.js';
import { CONTROLLER_SUBJECTS } from '../controller/lease.js';

test('every controller root is the controller\'s in the audit, and no other root is', () => {
  for (const r of CONTROLLER_ROOTS) assert.is(writerOf(r === 'controller' ? 'ev.controller' : `ev.${r}.x.y`), 'controller', r);
  for (const r of ['state', 'node']) assert.is(writerOf(`ev.${r}.n1.x`), 'node:n1', r);
  assert.is(writerOf('ev.unknown.x'), undefined);
});

test('the takeover\'s head read covers every controller root', () => {
  for (const r of CONTROLLER_ROOTS) {
    const subject = r === 'controller' ? 'ev.controller' : `ev.${r}.x.y`;
    const matches = (pattern: string) => pattern === subject || (pattern.endsWith('.>') && subject.startsWith(pattern.slice(0, -1)));
    assert.ok(CONTROLLER_SUBJECTS.some(matches), `${subject} is not read by a new leader`);
  }
});

test.run();
