// Builds tsctl for fast starts (npm run build:tsctl, after tsc):
//   dist/tsctl.cjs        one esbuild bundle of dist/tsctl/cli.js; bin/tsctl.cjs runs it when
//                         there is no usable snapshot (and `node bin/tsctl.cjs` always does)
//   dist/tsctl.blob       a V8 startup snapshot of the same bundle, evaluated: node starts
//                         with tsctl's modules loaded and its commands built (no parse, no
//                         compile, no module evaluation at each call)
//   dist/tsctl.blob.node  a hard link to the node binary that made the blob: a blob only
//                         loads in that exact node (another crashes or refuses), so the
//                         launcher uses it only while `node` on PATH is still this file
// The blob and its link are replaced atomically; if either cannot be made the launcher
// falls back to the bundle, so a failure here costs speed only.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { linkSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'tsctl.cjs');

// Node modules tsctl's common path never uses, loaded on first use instead of at start:
// child_process (commander's subcommand executables, openssl for `tsctl user`), and tls,
// which V8 cannot put in a snapshot (it is needed only once connecting, after the start).
// Each is a proxy with the real module's keys (so esbuild's import helpers can copy them
// as getters) whose every property read loads the module.
const require = createRequire(import.meta.url);
const lazy = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(child_process|tls)$/ }, (a) =>
      a.namespace === 'lazy' ? { path: a.path, external: true } : { path: a.path.replace(/^node:/, ''), namespace: 'lazy' });
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (a) => ({ contents: lazyModule(a.path), loader: 'js' }));
  },
};

function lazyModule(name) {
  const keys = Object.getOwnPropertyNames(require(`node:${name}`));
  return `const keys = new Set(${JSON.stringify(keys)});
let m; const load = () => (m ??= require(${JSON.stringify(`node:${name}`)}));
module.exports = new Proxy({}, {
  get: (_t, k) => load()[k],
  has: (_t, k) => k in load(),
  ownKeys: () => [...keys],
  getOwnPropertyDescriptor: (_t, k) => (keys.has(k) ? { configurable: true, enumerable: true, writable: true, value: undefined } : undefined),
  getPrototypeOf: () => Object.prototype,
});
`;
}

await build({
  entryPoints: [join(dist, 'tsctl/cli.js')], bundle: true, platform: 'node', format: 'cjs', minify: true,
  logLevel: 'warning', outfile: out, plugins: [lazy],
});

const blob = join(dist, 'tsctl.blob');
const link = `${blob}.node`;
rmSync(link, { force: true }); // first: a blob without its link is never used
const tmp = `${blob}.${process.pid}`;
const r = spawnSync(process.execPath, ['--snapshot-blob', tmp, '--build-snapshot', out], { encoding: 'utf8' });
if (r.status !== 0) {
  rmSync(tmp, { force: true });
  process.stderr.write(`build:tsctl: no startup snapshot (tsctl still works, slower): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' ')}\n`);
} else {
  renameSync(tmp, blob);
  try {
    linkSync(realpathSync(process.execPath), `${link}.${process.pid}`);
    renameSync(`${link}.${process.pid}`, link);
  } catch (err) {
    rmSync(`${link}.${process.pid}`, { force: true });
    process.stderr.write(`build:tsctl: cannot link ${process.execPath} beside the snapshot (${err.code ?? err.message}): tsctl will not use it\n`);
  }
}
