#!/bin/sh
':' //; unset NODE_EXTRA_CA_CERTS; s=$0; if [ -L "$s" ]; then s=$(readlink -f "$s"); fi; d=${s%/*}/../dist
':' //; n=; IFS=:; for p in $PATH; do if [ -x "${p:-.}/node" ]; then n=${p:-.}/node; break; fi; done; unset IFS
':' //; if [ -z "$TSCTL_NO_SNAPSHOT" ] && [ -f "$d/tsctl.blob" ] && [ "$n" -ef "$d/tsctl.blob.node" ]; then exec "$n" --snapshot-blob "$d/tsctl.blob" -- "$@"; fi
':' //; exec "${n:-node}" "$s" "$@"
// tsctl's launcher: a shell script (the lines above) that is also JavaScript (from here on).
// - As a command (`tsctl`, /usr/local/bin/tsctl links here) sh starts node with tsctl's V8
//   startup snapshot (dist/tsctl.blob, made by tsctl/bundle.mjs): tsctl's modules are loaded
//   and its commands built before the first instruction. It does so only while `node` on
//   PATH is the very file that made the blob (dist/tsctl.blob.node is a hard link to it;
//   a blob crashes or is refused in any other node), else it runs this file with node.
// - sh also drops NODE_EXTRA_CA_CERTS: node 20 reads and parses that bundle (and its own
//   root certificates) before running any code, ~30-50 ms, on every start. tsctl never
//   uses them: its only TLS peer is the cluster, trusted through the CA in its credentials
//   (tls.ca replaces the root store, so the extra certificates never counted).
// - As JavaScript (`node bin/tsctl.cjs`, or no usable snapshot) it loads the bundle
//   (dist/tsctl.cjs) through V8's code cache kept beside it: compiling its ~500 KB costs
//   ~25 ms on every call. The cache is (re)written when missing or rejected (V8 rejects a
//   cache made for other source or another V8), atomically, so concurrent calls are safe.
'use strict';
const fs = require('node:fs');
const vm = require('node:vm');
const path = require('node:path');
const Module = require('node:module');

const file = path.join(__dirname, '..', 'dist', 'tsctl.cjs');
const cacheFile = `${file}.cache`;
let source;
try {
  source = fs.readFileSync(file, 'utf8').replace(/^#!.*/, '');
} catch {
  process.stderr.write(`tsctl: ${file} is missing: build it with "npm run build" (ops/setup does)\n`);
  process.exit(125);
}
let cachedData;
try { cachedData = fs.readFileSync(cacheFile); } catch { /* first run */ }
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
if (!cachedData || script.cachedDataRejected) {
  process.once('exit', () => {
    try {
      const tmp = `${cacheFile}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch { /* a read-only install just compiles every time */ }
  });
}
const mod = { exports: {} };
script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
