// Runs every compiled uvu test file in its own process (integration tests
// hold servers and kernel state; isolation keeps one failure from poisoning
// the rest) and ends with the line CI reads: "N passed, N failed".
import { readdirSync, statSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('../dist/test/', import.meta.url).pathname;
// Arguments pick top-level files by substring; one ending in '/' adds every file of that
// sub-directory (test/vm/: tests that only make sense in the cgroup v2 VM lane, ops/vm-lane).
// No argument: the main suite, dist/test/*.test.js.
const args = process.argv.slice(2);
const dirs = args.filter((a) => a.endsWith('/'));
const only = args.filter((a) => !a.endsWith('/'));
const tests = (d) => readdirSync(join(root, d)).filter((f) => f.endsWith('.test.js')).sort().map((f) => d + f);
const files = [
  ...tests('').filter((f) => args.length === 0 || only.some((o) => f.includes(o))),
  ...dirs.flatMap(tests),
];

/**
 * Writes to stdout before the next file runs. process.stdout.write to a pipe that is full (a
 * test printed ~700 KB, CI's tee behind) queues the rest for the event loop, which spawnSync
 * blocks until the last file; process.exit then dropped all of it, the summary line included.
 */
const sleeper = new Int32Array(new SharedArrayBuffer(4));
function out(text) {
  const b = Buffer.from(text);
  for (let off = 0; off < b.length;) {
    try { off += writeSync(1, b, off); } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(sleeper, 0, 0, 5);
    }
  }
}

let passed = 0, failed = 0, skipped = 0;
for (const f of files) {
  const r = spawnSync(process.execPath, [join(root, f)], { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 });
  const text = (r.stdout ?? '') + (r.stderr ?? '');
  out(`\n## ${f}\n` + text);
  const p = /Passed:\s+(\d+)/.exec(text), s = /Skipped:\s+(\d+)/.exec(text), t = /Total:\s+(\d+)/.exec(text);
  if (!p || !t) { failed += 1; out(`!! ${f}: no uvu summary (exit ${r.status}, signal ${r.signal})\n`); continue; }
  const total = Number(t[1]), ok = Number(p[1]), sk = s ? Number(s[1]) : 0;
  // uvu's Total counts the tests that ran; test.skip() ones are only in Skipped.
  passed += ok; skipped += sk; failed += total - ok;
  if (r.status !== 0 && total - ok === 0) { failed += 1; out(`!! ${f}: exit ${r.status}\n`); }
}
out(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
