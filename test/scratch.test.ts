// tsctl's temp dirs and files after a tsctl is SIGKILLed: the next tsctl that makes one sweeps
// the dead one's, and never a live one's, a recent one's, another's symlink, or a name that is
// not tsctl's. No root, no cluster.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SWEEP_AFTER_MS, scratchDir, sweepScratch } from '../tsctl/scratch.js';

const scratchModule = fileURLToPath(new URL('../tsctl/scratch.js', import.meta.url));
const later = () => Date.now() + SWEEP_AFTER_MS + 1000;

/** A node process that makes a scratch dir under `under`, fills it, says its path, and waits to be killed. */
async function killedMaker(under: string): Promise<{ pid: number; dir: string }> {
  const code = `import(${JSON.stringify(scratchModule)}).then(({ scratchDir }) => {
    const d = scratchDir('heredoc', ${JSON.stringify(under)});
    require('node:fs').writeFileSync(d + '/body', 'x'.repeat(4096));
    process.stdout.write(d + '\\n');
    setInterval(() => {}, 1000);
  });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const dir = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b; if (out.endsWith('\n')) resolve(out.trim()); });
    child.on('exit', () => reject(new Error(`maker exited before making its dir: ${out}`)));
  });
  const gone = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await gone;
  return { pid: child.pid!, dir };
}

test('a tsctl SIGKILLed with its here-document dir: the next scratchDir sweeps it (once it is old enough), and only it', async () => {
  const under = mkdtempSync(join(tmpdir(), 'scratch-test-'));
  try {
    const { pid, dir } = await killedMaker(under);
    assert.ok(dir.startsWith(join(under, `tsctl-heredoc-${pid}-`)), dir);
    assert.ok(existsSync(join(dir, 'body')));
    // a live maker's dir (this process), a dead maker's layer file, other things by similar names
    const mine = scratchDir('cp', under);
    writeFileSync(join(under, `tsctl-layer-${pid}-0123456789ab.tar`), 'layer');
    mkdirSync(join(under, 'tsctl-stage-notapid'));
    mkdirSync(join(under, 'unrelated-dir'));
    const target = mkdtempSync(join(tmpdir(), 'scratch-target-'));
    writeFileSync(join(target, 'keep'), 'k');
    symlinkSync(target, join(under, `tsctl-stage-${pid}-abcdef`));
    try {
      // just killed: too recent to tell from a tsctl of another pid namespace
      assert.equal(sweepScratch(under), []);
      assert.ok(existsSync(dir));
      const swept = sweepScratch(under, later()).sort();
      assert.equal(swept, [dir.slice(under.length + 1), `tsctl-layer-${pid}-0123456789ab.tar`].sort());
      assert.not.ok(existsSync(dir));
      assert.ok(existsSync(mine), 'a live tsctl\'s dir stays');
      assert.ok(existsSync(join(target, 'keep')), 'a symlink by a scratch name is not followed');
      assert.equal(readdirSync(under).sort(), [mine.slice(under.length + 1), `tsctl-stage-${pid}-abcdef`, 'tsctl-stage-notapid', 'unrelated-dir'].sort());
    } finally { rmSync(target, { recursive: true, force: true }); }
  } finally { rmSync(under, { recursive: true, force: true }); }
});

test('a sweep of a directory that cannot be read does not throw', () => {
  assert.equal(sweepScratch(join(tmpdir(), `no-such-dir-${process.pid}`)), []);
});

test.run();
