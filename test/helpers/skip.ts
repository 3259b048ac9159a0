// A test that cannot run here is counted as skipped, with its reason printed, never as a
// pass it did not earn: uvu's skip is what test/run.mjs counts as skipped.
import type { Test } from 'uvu';

type Fn = Parameters<Test>[1];

/** `t` itself where `why` is undefined; elsewhere a `t` whose tests are skipped with `why`. */
export function unless(t: Test, why: string | undefined): (name: string, fn: Fn) => void {
  if (why === undefined) return (name, fn) => t(name, fn);
  return (name, fn) => { console.log(`  skipped "${name}": ${why}`); t.skip(name, fn); };
}
