// Docker-style default container names ("brave_turing"): easier to type than an id.
import { randomInt } from 'node:crypto';

const ADJ = ['brave', 'calm', 'eager', 'fancy', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'merry', 'nifty',
  'proud', 'quiet', 'rapid', 'sharp', 'tender', 'vivid', 'witty', 'zen', 'bold', 'crisp', 'daring', 'epic', 'fervent'];
const NOUN = ['turing', 'hopper', 'lovelace', 'ritchie', 'thompson', 'torvalds', 'knuth', 'dijkstra', 'lamport',
  'liskov', 'hamilton', 'curie', 'noether', 'shannon', 'babbage', 'backus', 'kay', 'mccarthy', 'pike', 'wirth'];

export function randomName(taken: (n: string) => boolean): string {
  for (let i = 0; i < 100; i++) {
    const n = `${ADJ[randomInt(ADJ.length)]}_${NOUN[randomInt(NOUN.length)]}`;
    const name = i < 50 ? n : `${n}${randomInt(1000)}`;
    if (!taken(name)) return name;
  }
  return `ctr_${Date.now().toString(36)}`;
}
