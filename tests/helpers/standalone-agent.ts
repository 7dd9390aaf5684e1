/**
 * The standalone agent as a user runs it, for tests: the real CLI (dist/agent/src/main.js) as a child
 * process, `--once` to completion or in follow mode with its JSON log. dist/ comes from `npm run build`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Test } from 'tap';
import { repoRoot } from './shared.js';

export const MAIN = path.join(repoRoot, 'dist', 'agent', 'src', 'main.js');
const NODE = process.execPath; // the Node 24 that runs tap
export const API = 'security-profiles-operator.x-k8s.io/v1beta1';

/** Throws unless dist/ is built and newer than the agent's sources. */
export async function requireBuiltAgent(): Promise<void> {
  await fs.access(MAIN).catch(() => {
    throw new Error(`${MAIN} is missing: run 'npm run build' first (npm test does)`);
  });
  const [src, out] = await Promise.all([fs.stat(path.join(repoRoot, 'agent/src/main.ts')), fs.stat(MAIN)]);
  if (src.mtimeMs > out.mtimeMs) throw new Error(`${MAIN} is older than agent/src/main.ts: run 'npm run build' first`);
}

/** The environment for the agent: no tap loader, no SECCOMP_AGENT_* from the caller. */
export function agentEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (k !== 'NODE_OPTIONS' && !k.startsWith('SECCOMP_AGENT_')) env[k] = v;
  return { ...env, ...extra };
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (bounded: 60 s). */
export function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [MAIN, ...args], {
      cwd: repoRoot,
      env: agentEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Polls `check` until it returns a value other than undefined; returns it and the time it took. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return { value: v, ms: performance.now() - start };
    } catch (e: unknown) {
      last = e;
    }
    if (performance.now() - start > timeoutMs) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
export const readOrUndef = (p: string): Promise<Buffer | undefined> => fs.readFile(p).catch(() => undefined);
/** A SeccompProfile document; `spec` is indented YAML (`  defaultAction: ...\n`). */
export const profileYaml = (ns: string, name: string, spec: string): string =>
  `apiVersion: ${API}\nkind: SeccompProfile\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n${spec}`;

/** A "billion laughs" YAML document: 9 levels of 9 aliases each, 9^9 strings if expanded. */
export const aliasBomb = (): string => {
  const names = 'abcdefghi';
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < names.length; i++) {
    lines.push(
      `${names[i]}: &${names[i]} [${Array(9)
        .fill(`*${names[i - 1]}`)
        .join(',')}]`,
    );
  }
  return `${lines.join('\n')}\n`;
};

/** A running agent (follow mode) with its JSON log. */
export interface Agent {
  child: ChildProcess;
  base: string;
  logs: () => Record<string, unknown>[];
  waitLog: (
    what: string,
    pred: (l: Record<string, unknown>) => boolean,
    from?: number,
    timeoutMs?: number,
  ) => Promise<Record<string, unknown>>;
  /** Set once the process has exited ("exited 0", "exited SIGKILL"). */
  exited: () => string | undefined;
  /**
   * SIGTERM, then SIGKILL after 5 s; resolves when it has exited. Call it before the test ends: the
   * test's directories are removed before teardowns registered after them run, and a running agent
   * would restore its files while they go.
   */
  stop: () => Promise<void>;
}

/**
 * Starts the agent in follow mode on 127.0.0.1:<any port> with --recheck-interval 1 (plus `extra`
 * flags), stopped at teardown; resolves once it listens.
 */
export async function startAgent(t: Test, profilesDir: string, root: string, extra: string[] = []): Promise<Agent> {
  const args = [
    MAIN,
    '--profiles-dir',
    profilesDir,
    '--kubelet-root',
    root,
    '--listen',
    '127.0.0.1:0',
    '--node-name',
    'test-node',
    '--recheck-interval',
    '1',
    '--audit-source',
    'none',
    ...extra,
  ];
  const child = spawn(NODE, args, { cwd: repoRoot, env: agentEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let exited: string | undefined;
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('exit', (code, signal) => (exited = `exited ${code ?? signal}`));
  const stop = async (): Promise<void> => {
    if (exited !== undefined) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  };
  t.teardown(stop);
  const logs = (): Record<string, unknown>[] =>
    stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return { unparsed: l };
        }
      });
  const waitLog = async (
    what: string,
    pred: (l: Record<string, unknown>) => boolean,
    from = 0,
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown>> =>
    (
      await until(
        what,
        () => {
          if (exited !== undefined) throw new Error(`the agent ${exited}: ${stderr}`);
          return logs().slice(from).find(pred);
        },
        timeoutMs,
      )
    ).value;
  const listening = await waitLog(
    'the agent to listen',
    (l) => typeof l['msg'] === 'string' && l['msg'].startsWith('Server listening at http://'),
  );
  const base = String(listening['msg']).replace('Server listening at ', '');
  return { child, base, logs, waitLog, exited: () => exited, stop };
}
