// ops/fleet's side of meta-group.ts: reads "SERVER<TAB>its /jsz body" lines on stdin (an empty
// or junk body: a server that did not answer) and prints "SERVER LEADER" for each one left out.
import { readFileSync } from 'node:fs';
import { metaGroup, type Jsz } from './meta-group.js';

const jsz = new Map<string, Jsz | undefined>();
for (const line of readFileSync(0, 'utf8').split('\n').filter(Boolean)) {
  const tab = line.indexOf('\t');
  const name = tab < 0 ? line : line.slice(0, tab);
  let body: Jsz | undefined;
  try { body = JSON.parse(line.slice(tab + 1)) as Jsz; } catch { body = undefined; }
  jsz.set(name, body);
}
const g = metaGroup(jsz);
for (const name of g.out) console.log(`${name} ${g.leader}`);
