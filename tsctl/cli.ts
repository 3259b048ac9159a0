#!/usr/bin/env node
// Entry point when run from the compiled tree (dist/tsctl/cli.js).
import { main } from './main.js';

main(process.argv.slice(2));
