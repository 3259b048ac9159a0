// A blob's sha256 on the worker thread (tsctl/registry/hash-thread.ts): the digest of every
// byte given, in order, whatever memory the pieces are in, several hashes at once; and a
// process with nothing else to do still exits (the worker does not hold it open).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { blobHash } from '../tsctl/registry/hash-thread.js';

const sha = (...parts: Uint8Array[]) => { const h = createHash('sha256'); for (const p of parts) h.update(p); return h.digest('hex'); };

test('hash thread - pieces in shared and plain memory, offsets, two hashes interleaved, one dropped', async () => {
  const slab = Buffer.from(new SharedArrayBuffer(1 << 20));
  randomBytes(1 << 20).copy(slab);
  const plain = randomBytes(300000);
  // a view into the middle of a larger buffer: only its own bytes count
  const big = randomBytes(100000);
  const mid = big.subarray(4097, 60000);
  const a = blobHash(), b = blobHash(), dropped = blobHash();
  a.update(slab.subarray(0, 70000));
  b.update(plain);
  dropped.update(slab);
  a.update(mid);
  b.update(slab.subarray(123, 456789));
  a.update(slab.subarray(70000, 1 << 20));
  dropped.drop();
  b.update(new Uint8Array(0));
  const [da, db] = await Promise.all([a.digest(), b.digest()]);
  assert.is(da, sha(slab.subarray(0, 70000), mid, slab.subarray(70000)));
  assert.is(db, sha(plain, slab.subarray(123, 456789)));
  assert.is(await blobHash().digest(), sha());
});

test('hash thread - a digest differs when one byte does', async () => {
  const bytes = Buffer.from(new SharedArrayBuffer(65536));
  randomBytes(65536).copy(bytes);
  const h1 = blobHash();
  h1.update(bytes);
  const good = await h1.digest();
  bytes[40000] ^= 1;
  const h2 = blobHash();
  h2.update(bytes);
  assert.is.not(await h2.digest(), good);
  assert.is(await (async () => { const h = blobHash(); h.update(bytes); return h.digest(); })(), sha(bytes));
});

test('hash thread - an idle worker does not keep the process alive', () => {
  const mod = fileURLToPath(new URL('../tsctl/registry/hash-thread.js', import.meta.url));
  const script = `import(${JSON.stringify(mod)}).then(async ({ blobHash }) => { const h = blobHash(); h.update(Buffer.from('abc')); console.log(await h.digest()); })`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10000 });
  assert.is(r.signal, null, 'the process did not exit by itself');
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), sha(Buffer.from('abc')));
});

test.run();
