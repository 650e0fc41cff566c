#!/usr/bin/env node
// `npm start` (and `npm run demo`) build when dist/ is missing or older than any file under src/.
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
// Entry points to check: dist/main.js, plus any given (`npm run demo` passes dist/demo/main.js).
const outs = ['dist/main.js', ...process.argv.slice(2)].map((p) => path.join(root, p));
const srcTime = newest(path.join(root, 'src'));
const stale = outs.some((out) => !fs.existsSync(out) || fs.statSync(out).mtimeMs < srcTime);
if (stale) {
  process.stderr.write('building…\n');
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
