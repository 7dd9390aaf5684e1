// Issue 2 with real-world profiles: each real SeccompProfile (moby, podman, Kubernetes docs, SPO)
// is rendered by our agent, and runc loads it or refuses it exactly as results.txt records for the
// same bytes (runc 1.1.5, busybox rootfs, `runc spec` defaults): `/bin/true` and `/bin/sh -c 'echo ok'`.
//
// Test data: ../shared/real-profiles/ beside the repository (NAME.yaml and results.txt).
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { operatorDir, renderProfiles } from '../testbed/agent-cli.js';
import { sharedDir } from '../helpers/shared.js';
import { RUNC_SPEC_CAPABILITIES, runContainer } from '../testbed/node.js';
import { ensureBusyboxRootfs } from '../testbed/rootfs.js';

const DATA = path.join(sharedDir(), 'real-profiles');
const NAMESPACE = 'real-profiles';

/** One command's recorded outcome: ok, or runc's exit status, stdout and stderr. */
type Outcome = { ok: true } | { ok: false; exit: number; stdout: string; stderr: string };

/** Parses results.txt: `NAME: ok|NOT ok` then `    /bin/true: <outcome>` and `    /bin/sh -c echo ok: <outcome>`. */
function parseResults(text: string): Map<string, { true: Outcome; sh: Outcome }> {
  const out = new Map<string, { true: Outcome; sh: Outcome }>();
  let name: string | undefined;
  const partial: Partial<{ true: Outcome; sh: Outcome }> = {};
  const parseOutcome = (s: string): Outcome => {
    if (s === 'ok') return { ok: true };
    const m = /^exit (\d+); stdout='(.*)'; stderr=(.*)$/.exec(s);
    if (!m?.[1] || m[2] === undefined || m[3] === undefined)
      throw new Error(`results.txt: cannot parse outcome '${s}'`);
    return { ok: false, exit: Number(m[1]), stdout: m[2], stderr: m[3] === '(empty)' ? '' : m[3] };
  };
  for (const line of text.split('\n')) {
    const head = /^([A-Za-z0-9.-]+): (ok|NOT ok)$/.exec(line);
    if (head?.[1]) {
      name = head[1];
      delete partial.true;
      delete partial.sh;
      continue;
    }
    const cmd = /^ {4}(\/bin\/true|\/bin\/sh -c echo ok): (.*)$/.exec(line);
    if (name && cmd?.[1] && cmd[2] !== undefined) {
      partial[cmd[1] === '/bin/true' ? 'true' : 'sh'] = parseOutcome(cmd[2]);
      if (partial.true && partial.sh) out.set(name, { true: partial.true, sh: partial.sh });
    }
  }
  return out;
}

const results = parseResults(
  await fs.readFile(path.join(DATA, 'results.txt'), 'utf8').catch((e: unknown) => {
    throw new Error(`real-profiles test data missing: ${DATA}/results.txt (../shared must sit beside the repository)`, {
      cause: e,
    });
  }),
);
const yamls = (await fs.readdir(DATA)).filter((f) => f.endsWith('.yaml') && !f.endsWith('.original.yaml')).sort();
const busybox = await ensureBusyboxRootfs();

t.test('results.txt covers every real profile', async (t) => {
  t.ok(yamls.length >= 19, `${yamls.length} profiles`);
  for (const f of yamls) t.ok(results.has(f.slice(0, -'.yaml'.length)), `${f} has a result`);
});

const COMMANDS = [
  { key: 'true', args: ['/bin/true'] },
  { key: 'sh', args: ['/bin/sh', '-c', 'echo ok'] },
] as const;

/**
 * How runc is set up. results.txt was recorded with `runc spec` defaults (three capabilities,
 * no_new_privs on, so runc loads the filter just before exec). A pod without
 * `allowPrivilegeEscalation: false` gets no_new_privs off, and runc then loads the filter before it
 * drops privileges: its own init (setgroups, setgid, setuid, capget, capset, prctl, chdir, ...) runs
 * under the profile too.
 */
const MODES = [
  { label: 'runc spec defaults (results.txt)', capabilities: RUNC_SPEC_CAPABILITIES, noNewPrivileges: true },
  { label: 'kubelet-like (no_new_privs off, containerd capabilities)', noNewPrivileges: false },
] as const;

/**
 * Where kubelet-like runs differ from results.txt (observed on this node, runc 1.1.5):
 * - k8s-fine-grained allows none of the calls runc's init makes before exec (setgroups, setgid,
 *   setuid, capget, capset, prctl, ...), so with no_new_privs off the container cannot start.
 * - podman-default fails the same way, but runc words the error without "unable to init seccomp".
 */
const KUBELET_LIKE_DIFFERENCES: Readonly<Record<string, Outcome>> = {
  'k8s-fine-grained': {
    ok: false,
    exit: 1,
    stdout: '',
    stderr: 'level=error msg="runc run failed: unable to start container process: operation not permitted"',
  },
  'podman-default': {
    ok: false,
    exit: 1,
    stdout: '',
    stderr:
      'level=error msg="runc run failed: unable to start container process: error adding architecture to seccomp filter: numerical argument out of domain"',
  },
};

// One agent run over all the real profiles, as a node would see them; each is judged on its own.
const src = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-real-'));
t.teardown(() => fs.rm(src, { recursive: true, force: true }));
for (const f of yamls) await fs.copyFile(path.join(DATA, f), path.join(src, f));
const rendered = await renderProfiles(t, src);
const agentSaid = `${rendered.stdout}\n${rendered.stderr}`;

for (const file of yamls) {
  const name = file.slice(0, -'.yaml'.length);
  const expected = results.get(name);
  if (!expected) continue;
  const loads = expected.true.ok && expected.sh.ok;

  t.test(`${name}: runc ${loads ? 'runs it' : 'fails as recorded'}`, async (t) => {
    const file = path.join(operatorDir(rendered.kubeletRoot, NAMESPACE), `${name}.json`);
    const profile = await fs.readFile(file, 'utf8').catch(() => undefined);
    if (profile === undefined) {
      // The agent refused to write it. Acceptable only for a profile runc cannot load either, and
      // only if the agent says so, naming the profile.
      t.notOk(
        loads,
        `the agent wrote no ${NAMESPACE}/${name}.json for a profile runc loads (exit ${rendered.exitCode})`,
      );
      const said = agentSaid.split('\n').filter((l) => l.includes(name));
      t.ok(said.length > 0, 'the agent reports the refused profile by name');
      t.comment(`agent refused ${name}: ${said.join(' | ')}`);
      return;
    }
    t.match(
      agentSaid,
      new RegExp(`^Installed .*/${NAMESPACE}/${name.replace(/\./g, '\\.')}\\.json$`, 'm'),
      'the agent reports it installed',
    );

    for (const mode of MODES) {
      for (const { key, args } of COMMANDS) {
        const kubeletLike = !mode.noNewPrivileges;
        const want = (kubeletLike ? KUBELET_LIKE_DIFFERENCES[name] : undefined) ?? expected[key];
        const c = await runContainer(t, {
          rootfs: busybox,
          args,
          profile,
          noNewPrivileges: mode.noNewPrivileges,
          ...('capabilities' in mode ? { capabilities: mode.capabilities } : {}),
          timeoutMs: 20_000,
        });
        const label = `${mode.label}: ${args.join(' ')}`;
        if (want.ok) {
          t.equal(c.exitCode, 0, `${label}: exit 0 (stderr: ${c.stderr.trim()})`);
          if (key === 'sh') t.equal(c.stdout, 'ok\n', `${label}: prints ok`);
        } else {
          t.equal(c.exitCode, want.exit, `${label}: exit ${want.exit}`);
          t.equal(c.stdout.trim(), want.stdout, `${label}: stdout '${want.stdout}'`);
          if (want.stderr === '') t.equal(c.stderr, '', `${label}: no stderr`);
          else t.match(c.stderr, want.stderr, `${label}: runc says: ${want.stderr}`);
        }
      }
    }
  });
}
