#!/usr/bin/env node
// `npm start` builds when dist/ is missing or older than any file under src/.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.join(__dirname, '..');
function newest(dir) {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}
const out = path.join(root, 'dist', 'main.js');
const stale = !fs.existsSync(out) || fs.statSync(out).mtimeMs < newest(path.join(root, 'src'));
if (stale) {
  process.stderr.write('building…\n');
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
