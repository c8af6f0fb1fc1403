#!/usr/bin/env node
// The `gatehouse` command. Gatehouse needs Node >= 22.12 (oidc-provider 9, TypeScript type
// stripping); when started by an older Node, re-run with the project-local Node 22 from the
// `node` devDependency so `npx gatehouse` works on machines whose system Node is older.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const entry = path.join(here, '..', 'src', 'cli', 'main.ts');
const [major, minor] = process.versions.node.split('.').map(Number);
let nodeBin = process.execPath;
if (major < 22 || (major === 22 && minor < 12)) {
  try {
    nodeBin = createRequire(import.meta.url).resolve('node/bin/node');
  } catch {
    console.error(`gatehouse needs Node.js >= 22.12 (this is ${process.version}); run npm install in the checkout or install Node 22.`);
    process.exit(1);
  }
}
const result = spawnSync(nodeBin, ['--disable-warning=ExperimentalWarning', entry, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
