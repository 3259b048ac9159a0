// Builds dist/tsctl.cjs, tsctl as one esbuild bundle of dist/tsctl/cli.js (npm run
// build:tsctl, after tsc), and dist/tsctl-run.cjs, `tsctl run` alone (dist/tsctl/cli-run.js),
// with the Node modules their common path never needs loaded on first use rather than at
// every start.
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'tsctl.cjs');

// Loaded on first use: child_process (commander's subcommand executables, openssl for
// `tsctl user`), tls (only once connecting: not for --help or a usage error) and dns
// (nats.js resolves a server's host name with it; an address, the usual url, never does). Each is a
// proxy with the real module's keys (esbuild's import helpers copy them as getters) whose
// every property read loads the module.
const require = createRequire(import.meta.url);
const lazy = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(child_process|tls|dns)$/ }, (a) =>
      a.namespace === 'lazy' ? { path: a.path, external: true } : { path: a.path.replace(/^node:/, ''), namespace: 'lazy' });
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (a) => ({ contents: lazyModule(a.path), loader: 'js' }));
  },
};

function lazyModule(name) {
  return lazyProxy(Object.getOwnPropertyNames(require(`node:${name}`)), `require(${JSON.stringify(`node:${name}`)})`);
}

/** A CommonJS module standing for another: its keys, known at build time; any read loads it (`load`). */
function lazyProxy(keys, load) {
  return `const keys = new Set(${JSON.stringify(keys)});
let m; const load = () => (m ??= ${load});
module.exports = new Proxy({}, {
  get: (_t, k) => load()[k],
  has: (_t, k) => k in load(),
  ownKeys: () => [...keys],
  getOwnPropertyDescriptor: (_t, k) => (keys.has(k) ? { configurable: true, enumerable: true, writable: true, value: undefined } : undefined),
  getPrototypeOf: () => Object.prototype,
});
`;
}

// nats's entry shims globals Node 20 has, testing them with `typeof globalThis.X`: that
// reads each, and Node makes crypto and ReadableStream on first read (webcrypto, web
// streams: most of a ms each, more on a busy host). `in` tests the same without the read.
// Its nuid (inbox and request ids) fills its random prefix from globalThis.crypto too:
// node:crypto's randomFillSync is the same CSPRNG without building webcrypto (~1 ms per call).
const natsShims = {
  name: 'nats-shims',
  setup(b) {
    b.onLoad({ filter: /[\\/]nats[\\/]lib[\\/]src[\\/]mod\.js$/ }, async (a) => {
      const src = await readFile(a.path, 'utf8');
      const out = src.replace(/typeof globalThis\.(crypto|ReadableStream) === "undefined"/g, '!("$1" in globalThis)');
      if ((out.match(/ in globalThis\)/g) ?? []).length !== 2) throw new Error(`${a.path}: nats's global shims changed; review tsctl/bundle.mjs`);
      return { contents: out, loader: 'js' };
    });
    b.onLoad({ filter: /[\\/]nats[\\/]lib[\\/]nats-base-client[\\/]nuid\.js$/ }, async (a) => {
      const src = await readFile(a.path, 'utf8');
      const fill = /function fillRandom\(a\) \{[^]*?\n\}\n/;
      if (!fill.test(src) || !/globalThis\.crypto\.getRandomValues\(a\)/.test(fill.exec(src)[0])) throw new Error(`${a.path}: nats's nuid changed; review tsctl/bundle.mjs`);
      return { contents: src.replace(fill, 'function fillRandom(a) {\n    require("node:crypto").randomFillSync(a);\n}\n'), loader: 'js' };
    });
  },
};

/**
 * A plugin that gives each require `pick` names (by its path, from where) a proxy like the
 * builtins' above in place of the module: the module is bundled, and evaluated on first use.
 */
function lazyModules(name, filter, pick) {
  return {
    name,
    setup(b) {
      b.onResolve({ filter }, (a) => {
        const path = a.namespace === name ? undefined : pick(a);
        return path ? { path, namespace: name } : undefined;
      });
      b.onLoad({ filter: /.*/, namespace: name }, (a) => ({
        contents: lazyProxy(Object.getOwnPropertyNames(require(a.path)), `require(${JSON.stringify(a.path)})`), loader: 'js', resolveDir: dirname(a.path),
      }));
      b.onResolve({ filter: /.*/, namespace: name }, (a) => ({ path: a.path }));
    },
  };
}

// nats.js's JetStream half (streams, consumers, KV, object store: events, audit, image
// import) is required by its core at load: evaluated on first use, run, ps, stop... never pay for it.
const natsLib = join(root, 'node_modules/nats/lib');
const lazyJs = lazyModules('lazy-jetstream', /^\.\.\/jetstream\/(mod|internal_mod|kv|jsm|jsclient)$/, (a) =>
  a.importer.startsWith(natsLib) && !a.importer.includes('/jetstream/') ? join(dirname(a.importer), `${a.path}.js`) : undefined);

// nkeys.js (and the pure-JS ed25519 of tweetnacl under it, whose load alone is ~2.5 ms of CPU
// after node:crypto) is required by nats.js's core at load, for its own nkey signing: tsctl signs
// the server's nonce with node:crypto (shared/nats/trust.ts nonceSigner), and needs nkeys.js only
// to make an identity's keys (addIdentity) or for credentials without a public key.
const nkeysLib = require.resolve('nkeys.js');
const lazyNkeys = lazyModules('lazy-nkeys', /^nkeys\.js$/, (a) => (a.importer.startsWith(natsLib) ? nkeysLib : undefined));

// @msgpack/msgpack's index requires its Decoder (whose load throws and catches a RangeError to
// probe DataView, ~1 ms of CPU) for every user of its Encoder (shared/codec.ts): only snapshots
// and archives decode with it, events are read by shared/msgpack.ts.
const msgpackLib = join(root, 'node_modules/@msgpack/msgpack/dist.cjs');
const lazyDecoder = lazyModules('lazy-msgpack-decoder', /^\.\/Decoder\.cjs$/, (a) =>
  (a.importer.startsWith(msgpackLib) ? join(dirname(a.importer), 'Decoder.cjs') : undefined));

// tsctl's whole bundle, and run's own (tsctl/cli-run.ts: bin/tsctl.cjs loads it for `tsctl run`)
for (const [entry, file] of [['tsctl/cli.js', out], ['tsctl/cli-run.js', join(dist, 'tsctl-run.cjs')]]) {
  await build({
    entryPoints: [join(dist, entry)], bundle: true, platform: 'node', format: 'cjs', minify: true,
    logLevel: 'warning', outfile: file, plugins: [lazy, natsShims, lazyJs, lazyNkeys, lazyDecoder],
    // shared/nats/bulk-parallel.ts names its worker's script by import.meta.url outside a bundle
    logOverride: { 'empty-import-meta': 'silent' },
  });
}

// The reader threads of a bulk read (shared/nats/bulk-parallel.ts, `audit verify`): their own
// small bundle beside tsctl.cjs, so a thread does not load all of tsctl.
await build({
  entryPoints: [join(dist, 'shared/nats/bulk-worker.js')], bundle: true, platform: 'node', format: 'cjs', minify: true,
  logLevel: 'warning', outfile: join(dist, 'tsctl-bulk.cjs'), plugins: [natsShims],
  logOverride: { 'empty-import-meta': 'silent' },
});

