#!/usr/bin/env node
// tsctl's launcher. tsctl is one esbuild bundle (dist/tsctl.cjs); compiling its ~450 KB
// costs ~25 ms on every call, so the launcher keeps V8's code cache beside it and
// compiles from that. The cache is (re)written when missing or rejected (V8 rejects a
// cache made for other source or another V8), atomically, so concurrent calls are safe.
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
