// The project's shape as a test: imports between top-level folders go controller/agent/tsctl
// → shared and agent → native only; shared/ outside shared/nats/ does no I/O; only native/
// loads koffi. Read from the sources, so a new arrow fails here before review.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { ROOT } from './helpers/cluster.js';

const TOP = ['shared', 'agent', 'controller', 'tsctl', 'native'] as const;
const ALLOWED: Record<string, string[]> = { shared: [], controller: ['shared', 'native'], tsctl: ['shared'], agent: ['shared', 'native'], native: [] };
// the controller's one use of native/: glibc's malloc_trim after a long replay (docs/architecture.md)
const CONTROLLER_NATIVE = ['native/malloc.ts'];
const IO = /^(nats|koffi|lowdb|lowdb\/node|node:fs|node:fs\/promises|node:net|node:child_process|node:http|node:https|node:dgram|fs|net|child_process)$/;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  return [...src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? m[2]!);
}

const all = TOP.flatMap((t) => files(join(ROOT, t)).map((f) => ({ top: t, rel: relative(ROOT, f), file: f, deps: imports(f) })));

test('layering - the sources were found (this test reads something)', () => {
  assert.ok(all.length > 60, `${all.length} files`);
  assert.ok(all.some((f) => f.rel === 'shared/rpc.ts'));
});

test('layering - imports between top-level folders follow the arrows', () => {
  const bad: string[] = [];
  for (const f of all) {
    for (const d of f.deps.filter((x) => x.startsWith('.'))) {
      const target = relative(ROOT, resolve(dirname(f.file), d)).split('/')[0]!;
      if (target !== f.top && !ALLOWED[f.top]!.includes(target)) bad.push(`${f.rel} → ${d}`);
      else if (f.top === 'controller' && target === 'native' && !CONTROLLER_NATIVE.includes(relative(ROOT, resolve(dirname(f.file), d)).replace(/\.js$/, '.ts'))) bad.push(`${f.rel} → ${d}`);
    }
  }
  assert.equal(bad, []);
});

test('layering - shared/ is pure outside shared/nats/, and only native/ loads koffi', () => {
  const impure = all.filter((f) => f.top === 'shared' && !f.rel.startsWith('shared/nats/'))
    .flatMap((f) => f.deps.filter((d) => IO.test(d)).map((d) => `${f.rel} imports ${d}`));
  assert.equal(impure, []);
  const koffi = all.filter((f) => f.top !== 'native' && f.deps.includes('koffi')).map((f) => f.rel);
  assert.equal(koffi, []);
});

test.run();
