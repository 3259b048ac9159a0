// The controller's lines about events it does not fold are driven by whoever can publish:
// each is printable (no terminal escapes from a subject or a decoder's message) and a flood
// is at most BURST lines per window plus one line counting the rest.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BURST, printable, ProblemLog, WINDOW_MS } from '../controller/problem-log.js';

test('problem log - escapes and non-ASCII become ?, long lines are cut', () => {
  assert.is(printable('ev.desired.x\u001b[2J\u0007\u00e9\n'), 'ev.desired.x?[2J???');
  assert.is(printable('a'.repeat(500), 10), 'a'.repeat(10));
});

test('problem log - a flood: BURST lines a window, then one line with the count; the next window starts again', () => {
  const lines: string[] = [];
  let now = 1_000;
  const log = new ProblemLog((l) => lines.push(l), () => now);
  for (let i = 0; i < 5000; i++) log.say(`controller: not folding #${i} on ev.x\u001b]0;owned\u0007`);
  assert.is(lines.length, BURST);
  assert.ok(lines.every((l) => /^[\x20-\x7e]*$/.test(l)), 'printable');
  now += WINDOW_MS;
  log.say('controller: not folding #5000');
  assert.is(lines[BURST], `controller: ${5000 - BURST} more events not folded in ${WINDOW_MS / 1000} s (not shown; tsctl audit verify lists each)`);
  assert.is(lines[BURST + 1], 'controller: not folding #5000');
  // a quiet window says nothing extra
  now += WINDOW_MS;
  log.say('one');
  assert.equal(lines.slice(BURST + 2), ['one']);
});

test('problem log - the count is said when the window ends, though nothing more comes', async () => {
  const lines: string[] = [];
  const log = new ProblemLog((l) => lines.push(l), Date.now, 100);
  for (let i = 0; i < BURST + 7; i++) log.say(`x${i}`);
  assert.is(lines.length, BURST);
  await new Promise((r) => setTimeout(r, 400));
  assert.is(lines[BURST], 'controller: 7 more events not folded in 0.1 s (not shown; tsctl audit verify lists each)');
});

test.run();
