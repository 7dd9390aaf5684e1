// `npm run agent -- ARGS`: runs dist/agent/src/main.js, compiling first only when a source is newer
// than what it compiles to (or missing). Plain JavaScript on purpose: it has to run before the build.
// The check is by modification time, as make does; `tsc -b` would need project references and still
// re-check a project that has errors anywhere.
import { spawn, spawnSync } from 'node:child_process';
import process from 'node:process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist');
/** What the agent is compiled from; tests and scripts do not change it. */
const SOURCES = ['agent', 'shared'];
const CONFIGS = ['tsconfig.json', 'tsconfig.base.json'];

const mtime = (p) => {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
};

function* tsFiles(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p;
  }
}

/** The first source newer than its output, or undefined when dist/ is current. */
function stale() {
  const main = mtime(join(out, 'agent', 'src', 'main.js'));
  if (main < 0) return 'dist/agent/src/main.js is missing';
  for (const c of CONFIGS) if (mtime(join(root, c)) > main) return c;
  for (const d of SOURCES) {
    for (const src of tsFiles(join(root, d))) {
      const js = join(out, relative(root, src)).replace(/\.ts$/, '.js');
      if (mtime(src) > mtime(js)) return relative(root, src);
    }
  }
  return undefined;
}

const why = stale();
if (why !== undefined) {
  process.stderr.write(`seccomp-agent: compiling (${why} is newer than dist/)\n`);
  const r = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')],
    {
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
}
// The flags and environment of the image's entrypoint (scripts/agent-runtime.json; the image's
// Dockerfile.agent carries the same, checked by tests/unit/agent-runtime.test.ts). glibc reads
// MALLOC_ARENA_MAX at start, so they need a process of their own; when this one has them already,
// the agent runs in it.
const runtime = JSON.parse(readFileSync(join(root, 'scripts', 'agent-runtime.json'), 'utf8'));
const NODE_FLAGS = runtime.nodeFlags;
const NODE_ENV = runtime.env;
const main = join(out, 'agent', 'src', 'main.js');
const has =
  NODE_FLAGS.every((f) => process.execArgv.includes(f)) &&
  Object.entries(NODE_ENV).every(([k, v]) => process.env[k] === v);
if (has) {
  // The agent reads process.argv.slice(2): the same arguments this script was given.
  await import(pathToFileURL(main).href);
} else {
  const child = spawn(process.execPath, [...NODE_FLAGS, main, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, ...NODE_ENV },
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  });
}
