// Issue 7: the workshop (../shared/seed/workshop-security-profiles-operator.md), end to end, with
// seccomp-agent in place of the Security Profiles Operator. Real parts: etcd, kube-apiserver,
// kube-controller-manager (its namespace controller, so the workshop's `kubectl delete -f
// profiles/ns.yaml` really empties and removes the namespace), kubectl, helm, the agent as a
// process with a token of the chart's ServiceAccount, auditd, runc, the kernel's seccomp and
// Debian's nginx. The kubelet is a stand-in (tests/testbed/kubelet.ts): it binds the pods to its
// node, resolves `localhostProfile` under the agent's kubelet root as the kubelet does, runs the
// containers with runc and reports their status.
//
// Every command is the workshop's (from the repository root, where the pods are under
// profiles/pods/); the test prints a transcript of commands and real output (docs/workshop.md
// quotes it), and writes it to $SECCOMP_AGENT_TRANSCRIPT when that is set.
import { chmod, copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startControlPlane, type CommandResult } from '../testbed/cluster.js';
import { exec } from '../testbed/exec.js';
import { startNodeStandIn, type PodRun } from '../testbed/kubelet.js';
import { CODE_LOG, auditFence, auditMark, ensureAuditd, seccompRecords, type AuditMark } from '../testbed/node.js';
import { NGINX_INDEX_HTML, ensureStaticProgram } from '../testbed/rootfs.js';
import { AGENT_NS, NS, fileOf, getProfile, readMaybe, startAgent, waitFor } from '../cluster/sync-helpers.js';
import { repoRoot, seedListedSizes, seedPrintedProfiles } from '../helpers/shared.js';

const NODE = 'node-1';
const RELEASE = 'seccomp-agent';
// x86_64 numbers of what the high-risk probe calls.
const NR = { write: 1, ptrace: 101, mount: 165, unshare: 272 } as const;
const HIGH_RISK: readonly number[] = [NR.unshare, NR.mount, NR.ptrace];

const transcript: string[] = [];
const section = (title: string): void => {
  transcript.push('', `### ${title}`);
};

const audit = await ensureAuditd(t);
const highrisk = await ensureStaticProgram(join(repoRoot, 'tests/fixtures/bin/highrisk.c'));
const cp = await startControlPlane(t);
await cp.startControllerManager(['namespace']);

// The kubelet root the agent writes to and the stand-in reads from; shown as /var/lib/kubelet.
const work = await mkdtemp(join(tmpdir(), 'seccomp-agent-e2e-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const kubeletRoot = join(work, 'kubelet');
const show = (text: string): string => text.split(kubeletRoot).join('/var/lib/kubelet').trimEnd();
const dir = join(kubeletRoot, 'seccomp', 'operator', NS);
let agentUrl = '';
const showUrl = (url: string): string => url.replace(agentUrl, 'http://127.0.0.1:8686');

/** Runs kubectl or helm as the workshop does, records the command and its output. */
async function $(
  tool: 'kubectl' | 'helm',
  args: string[],
  o: { timeoutMs?: number; note?: string } = {},
): Promise<CommandResult> {
  transcript.push(`$ ${tool} ${args.join(' ')}${o.note === undefined ? '' : `   # ${o.note}`}`);
  const r = await (tool === 'kubectl' ? cp.kubectl(args, o) : cp.helm(args, o));
  const out = `${r.stdout}${r.stderr}`.trimEnd();
  if (out !== '') transcript.push(show(out));
  return r;
}

/** A command on the node (`ls`, `cat`, `grep`), recorded with the path shown as on a real node. */
async function onNode(cmd: string, args: string[]): Promise<string> {
  const r = await exec(cmd, args, { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C', TZ: 'UTC' } });
  const out = `${r.stdout}${r.stderr}`;
  transcript.push(`# ${show([cmd, ...args].join(' '))}`, show(out));
  return out;
}

async function curl(path: string): Promise<string> {
  const url = `${agentUrl}${path}`;
  const res = await fetch(url);
  const body = await res.text();
  transcript.push(`# curl -s '${showUrl(url)}'`, body.trimEnd());
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${body}`);
  return body;
}

async function mustKubectl(t: Test, args: string[], what: string, timeoutMs?: number): Promise<CommandResult> {
  const r = await $('kubectl', args, timeoutMs === undefined ? {} : { timeoutMs });
  t.equal(r.code, 0, `${what}: kubectl ${args.join(' ')}${r.code === 0 ? '' : ` (${r.stderr.trim()})`}`);
  return r;
}

async function waitInstalled(names: readonly string[]): Promise<void> {
  for (const name of names) {
    await waitFor(`${NS}/${name} Installed`, async () =>
      (await getProfile(cp, NS, name))?.status?.status === 'Installed' ? true : undefined,
    );
  }
}

/** `ls -al` of the operator directory, parsed: name → [mode, owner, group, size]. */
async function listing(): Promise<Map<string, [string, string, string, number]>> {
  const out = await onNode('ls', ['-al', dir]);
  const rows = new Map<string, [string, string, string, number]>();
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 9 || f[0] === 'total') continue;
    rows.set(f[8] ?? '', [f[0] ?? '', f[2] ?? '', f[3] ?? '', Number(f[4])]);
  }
  return rows;
}

const PRINTED = seedPrintedProfiles();
const LISTED = seedListedSizes();

/** The directory as the seed lists it: these files, 0644 65535:65535, sizes as listed; . and .. 0744. */
async function checkListing(t: Test, files: readonly string[]): Promise<void> {
  const rows = await listing();
  t.same(
    [...rows.keys()].filter((n) => n !== '.' && n !== '..').sort(),
    [...files].sort(),
    'the directory holds exactly the files the seed lists',
  );
  for (const d of ['.', '..'])
    t.same(rows.get(d)?.slice(0, 3), ['drwxr--r--', '65535', '65535'], `${d} drwxr--r-- 65535 65535`);
  for (const f of files) {
    const row = rows.get(f);
    t.same(row?.slice(0, 3), ['-rw-r--r--', '65535', '65535'], `${f} -rw-r--r-- 65535 65535`);
    const listed = LISTED.get(f);
    // The seed's listing gives the explicit-allow file the deny file's size (1686); its printed
    // content is 2523 bytes, and the content is what is checked for it.
    if (listed !== undefined && f !== 'confine-nginx-explicit-allow.json')
      t.equal(row?.[3], listed, `${f} ${listed} bytes, as the seed lists`);
  }
}

async function checkCat(t: Test, name: string): Promise<void> {
  const text = await onNode('cat', [join(dir, `${name}.json`)]);
  t.equal(text, PRINTED.get(name), `cat ${name}.json prints what the seed prints`);
}

/** The agent's events for the pod, once at least one of the wanted names is there. */
async function syscallsOf(pod: string, want: readonly string[]): Promise<Set<string>> {
  return waitFor(
    `the agent's /v1/syscalls for ${pod} to name ${want.join(', ')}`,
    async () => {
      const res = await fetch(`${agentUrl}/v1/syscalls?namespace=${NS}&pod=${pod}`);
      const items = ((await res.json()) as { items: { container: string; syscalls: { name: string }[] }[] }).items;
      const names = new Set(items.flatMap((i) => i.syscalls.map((s) => s.name)));
      return want.every((n) => names.has(n)) ? names : undefined;
    },
    15_000,
  );
}

async function nginxServes(t: Test, run: PodRun): Promise<void> {
  const n = run.containers[0]?.nginx;
  t.ok(n !== undefined, `${run.name}: nginx started (${run.containers[0]?.error ?? 'no error'})`);
  if (n === undefined) return;
  for (let i = 0; i < 3; i++) {
    const res = await fetch(n.url);
    t.equal(res.status, 200, `${run.name}: GET / answers 200`);
    t.equal(await res.text(), NGINX_INDEX_HTML, `${run.name}: with the page`);
  }
  t.equal(await n.container.status(), 'running', `${run.name}: nginx keeps running`);
}

async function podPhase(name: string): Promise<string> {
  const r = await cp.kubectl(['-n', NS, 'get', 'pod', name, '-o', 'jsonpath={.status.phase}']);
  return r.stdout;
}

/** The raw audit lines since `mark` that `grep nginx` would show. */
async function nginxAuditLines(mark: AuditMark): Promise<string[]> {
  return seccompRecords(await auditFence(mark))
    .filter((r) => r.line.includes('nginx'))
    .map((r) => r.line.split('\x1d')[0] ?? r.line);
}

async function cleanUp(t: Test, pod: string | undefined, profileFile: string, names: readonly string[]): Promise<void> {
  transcript.push('', '#### Clean-up');
  if (pod !== undefined) await mustKubectl(t, ['delete', '-f', `profiles/pods/${pod}.yaml`], 'pod deleted', 120_000);
  await mustKubectl(t, ['delete', '-f', `profiles/${profileFile}`], 'profiles deleted', 120_000);
  await mustKubectl(t, ['delete', '-f', 'profiles/ns.yaml'], 'namespace deleted', 180_000);
  for (const n of names) {
    await waitFor(`${n}.json removed from the node`, async () =>
      (await readMaybe(fileOf(kubeletRoot, NS, n))) === undefined ? true : undefined,
    );
  }
  t.pass(`the files of ${names.join(', ')} are gone from the node`);
}

// ---- Installation ------------------------------------------------------------------------------
section('Installation');
const install = await $(
  'helm',
  ['install', RELEASE, 'manifests/helm/seccomp-agent', '-n', AGENT_NS, '--create-namespace'],
  {
    timeoutMs: 120_000,
  },
);
if (install.code !== 0) throw new Error(`helm install: ${install.stderr}`);
await $('kubectl', ['get', 'crd', 'seccompprofiles.security-profiles-operator.x-k8s.io']);
const node = await startNodeStandIn(t, { cp, node: NODE, kubeletRoot });
const kubeconfig = await cp.kubeconfigFor(await cp.mintToken(AGENT_NS, RELEASE));
const agent = await startAgent(t, { node: NODE, kubeconfig, root: kubeletRoot, auditLog: audit.logPath });
agentUrl = agent.url;
await waitFor('the agent ready', async () => ((await agent.ready()) ? true : undefined));
await curl('/readyz');

t.test('Complainer', async (t) => {
  section('Examples - Complainer');
  await mustKubectl(t, ['apply', '-f', 'profiles/ns.yaml'], 'namespace');
  await mustKubectl(t, ['apply', '-f', 'profiles/complainer.yaml'], 'profile');
  await waitInstalled(['complainer']);
  await mustKubectl(t, ['get', 'seccompprofiles', '-n', NS], 'status');
  await checkCat(t, 'complainer');

  const mark = await auditMark(audit.logPath);
  await mustKubectl(t, ['apply', '-f', 'profiles/pods/complainer.yaml'], 'pod');
  const run = await node.waitPod(NS, 'complainer');
  t.equal(
    run.containers[0]?.profilePath,
    join(dir, 'complainer.json'),
    'the kubelet stand-in resolved operator/seccomp-test/complainer.json under the kubelet root',
  );
  await waitFor('complainer Running', async () => ((await podPhase('complainer')) === 'Running' ? true : undefined));
  const wide = await mustKubectl(t, ['-n', NS, 'get', 'pod', 'complainer', '-o', 'wide'], 'pod listed');
  t.match(
    wide.stdout,
    new RegExp(`complainer\\s+1/1\\s+Running\\s+0\\s+\\S+\\s+127\\.0\\.0\\.1\\s+${NODE}`),
    'Running, 1/1, on node-1',
  );
  await nginxServes(t, run);

  const lines = await nginxAuditLines(mark);
  transcript.push('# grep nginx /var/log/audit/audit.log', ...lines.slice(0, 3), `... (${lines.length} lines)`);
  t.ok(lines.length > 0, `audit.log has ${lines.length} type=SECCOMP lines of nginx`);
  t.ok(
    lines.every((l) => /comm="nginx" exe="\/usr\/sbin\/nginx"/.test(l) && l.includes(`code=${CODE_LOG}`)),
    'each is comm="nginx" exe="/usr/sbin/nginx" code=0x7ffc0000 (logged, allowed)',
  );
  const names = await syscallsOf('complainer', ['accept4', 'epoll_wait', 'recvfrom']);
  t.ok(
    names.size > 10,
    `the agent names ${names.size} syscalls of the complainer pod (accept4, epoll_wait, recvfrom among them)`,
  );
  const table = await curl(`/v1/syscalls?namespace=${NS}&pod=complainer&format=table`);
  t.match(
    table,
    /seccomp-test\s+complainer\s+complainer-container\s+[0-9a-f]{12}\s+accept4\s+\d+\s+LOG/,
    'the table shows namespace, pod, container and names',
  );

  await cleanUp(t, 'complainer', 'complainer.yaml', ['complainer']);
});

const MULTIPLE = [
  'profile-allow-unsafe',
  'profile-block-all',
  'profile-complain-block-high-risk',
  'profile-complain-unsafe',
];

t.test('Complain and block high-risk', async (t) => {
  section('Examples - Complain and block high-risk');
  await mustKubectl(t, ['apply', '-f', 'profiles/ns.yaml'], 'namespace');
  await mustKubectl(t, ['apply', '-f', 'profiles/multiple.yaml'], 'profiles');
  await waitInstalled(MULTIPLE);
  await mustKubectl(t, ['get', 'seccompprofiles', '-n', NS], 'status');
  await checkListing(
    t,
    MULTIPLE.map((n) => `${n}.json`),
  );
  await checkCat(t, 'profile-complain-block-high-risk');

  const mark = await auditMark(audit.logPath);
  await mustKubectl(t, ['apply', '-f', 'profiles/pods/block-high-risk.yaml'], 'pod');
  const run = await node.waitPod(NS, 'block-high-risk');
  await waitFor('block-high-risk Running', async () =>
    (await podPhase('block-high-risk')) === 'Running' ? true : undefined,
  );
  await mustKubectl(t, ['-n', NS, 'get', 'pod', 'block-high-risk', '-o', 'wide'], 'pod listed');
  await nginxServes(t, run);

  // High-risk calls from inside the pod (`kubectl cp` + `kubectl exec`, done with runc exec: the same
  // container, under the same filter): unshare, mount and ptrace all fail with EPERM. ptrace
  // (PTRACE_TRACEME) needs no privilege, so only the filter refuses it; unshare and mount also lack
  // CAP_SYS_ADMIN, and that they are refused by the filter shows in the log below: the complain
  // profile logs every call it lets through, and these three are not there.
  const c = run.containers[0]?.nginx?.container;
  if (c === undefined) throw new Error('block-high-risk: no container');
  await copyFile(highrisk, `/proc/${c.pid}/root/tmp/highrisk`);
  await chmod(`/proc/${c.pid}/root/tmp/highrisk`, 0o755);
  const probe = await c.exec(['/tmp/highrisk']);
  transcript.push('# (in the pod) /tmp/highrisk', probe.stdout.trimEnd());
  t.equal(probe.stdout, 'unshare EPERM\nmount EPERM\nptrace EPERM\n', 'unshare, mount and ptrace fail with EPERM');

  const records = seccompRecords(await auditFence(mark));
  const probeRecords = records.filter((r) => r.comm === 'highrisk');
  t.ok(
    probeRecords.some((r) => r.syscall === NR.write && r.code === CODE_LOG),
    "the probe's other calls (write) are logged",
  );
  t.same(
    probeRecords.filter((r) => HIGH_RISK.includes(r.syscall)).map((r) => r.syscall),
    [],
    'the three high-risk calls are not logged: the filter refused them',
  );
  const nginxLines = records.filter((r) => r.comm === 'nginx');
  t.ok(
    nginxLines.length > 0 && nginxLines.every((r) => r.code === CODE_LOG),
    `nginx's calls are logged (${nginxLines.length} lines)`,
  );
  transcript.push(
    '# grep nginx /var/log/audit/audit.log',
    ...nginxLines.slice(0, 2).map((r) => r.line.split('\x1d')[0] ?? ''),
    `... (${nginxLines.length} lines)`,
  );
  const names = await syscallsOf('block-high-risk', ['accept4', 'write']);
  t.notOk(names.has('ptrace') || names.has('mount') || names.has('unshare'), 'the agent lists no refused call as made');
  await curl(`/v1/syscalls?namespace=${NS}&pod=block-high-risk&container=block-high-risk-container&format=table`);

  await cleanUp(t, 'block-high-risk', 'multiple.yaml', MULTIPLE);
});

t.test('Block all', async (t) => {
  section('Examples - Block all');
  await mustKubectl(t, ['apply', '-f', 'profiles/ns.yaml'], 'namespace');
  await mustKubectl(t, ['apply', '-f', 'profiles/multiple.yaml'], 'profiles');
  await waitInstalled(MULTIPLE);
  await checkListing(
    t,
    MULTIPLE.map((n) => `${n}.json`),
  );
  await checkCat(t, 'profile-block-all');

  await mustKubectl(t, ['apply', '-f', 'profiles/pods/block-all.yaml'], 'pod');
  const run = await node.waitPod(NS, 'block-all');
  t.equal(run.containers[0]?.nginx, undefined, 'the container did not start');
  t.match(
    run.containers[0]?.error,
    /failed to start container "block-all-container": .*container process is already dead/,
    `runc's error: ${run.containers[0]?.error ?? ''}`,
  );
  await waitFor('the Failed event', async () => {
    const r = await cp.kubectl([
      '-n',
      NS,
      'get',
      'events',
      '--field-selector',
      'involvedObject.name=block-all,reason=Failed',
      '-o',
      'name',
    ]);
    return r.stdout.trim() === '' ? undefined : true;
  });
  await mustKubectl(t, ['-n', NS, 'get', 'pod', 'block-all', '-o', 'wide'], 'pod listed');
  const d = await cp.kubectl(['-n', NS, 'describe', 'pod', 'block-all']);
  const errors = d.stdout.split('\n').filter((l) => /error/i.test(l));
  transcript.push('$ kubectl -n seccomp-test describe pod block-all | grep -i error', ...errors);
  t.ok(
    errors.some((l) => /Error: failed to start container "block-all-container"/.test(l)),
    'describe | grep -i error shows the failed start',
  );
  t.equal(await podPhase('block-all'), 'Pending', 'the pod is not running');

  await cleanUp(t, 'block-all', 'multiple.yaml', MULTIPLE);
});

for (const [title, file, pod, podFile] of [
  ['Confine NGINX - Explicit Deny', 'confine-nginx-explicit-deny', 'nginx-deny', 'nginx-explicit-deny'],
  ['Confine NGINX - Explicit Allow', 'confine-nginx-explicit-allow', 'nginx-allow', 'nginx-explicit-allow'],
] as const) {
  t.test(title, async (t) => {
    section(`Examples - ${title}`);
    await mustKubectl(t, ['apply', '-f', 'profiles/ns.yaml'], 'namespace');
    await mustKubectl(t, ['apply', '-f', `profiles/${file}.yaml`], 'profile');
    await waitInstalled([file]);
    await checkListing(t, [`${file}.json`]);
    await checkCat(t, file);
    await mustKubectl(t, ['apply', '-f', `profiles/pods/${podFile}.yaml`], 'pod');
    const run = await node.waitPod(NS, pod);
    await waitFor(`${pod} Running`, async () => ((await podPhase(pod)) === 'Running' ? true : undefined));
    await mustKubectl(t, ['-n', NS, 'get', 'pod', pod, '-o', 'wide'], 'pod listed');
    await nginxServes(t, run);
    const url = run.containers[0]?.nginx?.url ?? '';
    const body = await (await fetch(url)).text();
    transcript.push(`# curl -s http://<pod IP>/`, body.trimEnd());
    await cleanUp(t, podFile, `${file}.yaml`, [file]);
  });
}

t.test('Deinstallation: a profile in use is Terminating until its pod goes', async (t) => {
  section('Deinstallation');
  await mustKubectl(t, ['apply', '-f', 'profiles/ns.yaml'], 'namespace');
  await mustKubectl(t, ['apply', '-f', 'profiles/complainer.yaml'], 'profile');
  await waitInstalled(['complainer']);
  await mustKubectl(t, ['apply', '-f', 'profiles/pods/complainer.yaml'], 'pod');
  await node.waitPod(NS, 'complainer');
  await waitFor('the profile in use', async () =>
    ((await getProfile(cp, NS, 'complainer'))?.status?.activeWorkloads ?? []).length > 0 ? true : undefined,
  );

  // The seed's command waits until every profile is gone, so it runs while we look.
  const del = $('kubectl', ['delete', 'seccompprofiles', '--all', '--all-namespaces'], {
    timeoutMs: 120_000,
    note: 'waits: a pod still uses complainer',
  });
  const p = await waitFor('complainer Terminating', async () => {
    const sp = await getProfile(cp, NS, 'complainer');
    return sp?.status?.status === 'Terminating' ? sp : undefined;
  });
  t.same(p.status?.activeWorkloads, [`${NS}/complainer`], 'status names the pod that uses it');
  const get = await cp.kubectl(['get', 'seccompprofiles', '-n', NS]);
  transcript.push(
    '$ kubectl get seccompprofiles -n seccomp-test   # in another terminal, while the delete waits',
    get.stdout.trimEnd(),
  );
  const nodes = await cp.kubectl([
    'get',
    'seccompprofile',
    '-n',
    NS,
    'complainer',
    '-o',
    'jsonpath={.status.conditions[0].message}',
  ]);
  transcript.push(
    "$ kubectl get seccompprofile -n seccomp-test complainer -o jsonpath='{.status.conditions[0].message}'",
    nodes.stdout,
  );
  t.match(nodes.stdout, /complainer/, 'the Ready condition says which pod holds it');
  t.match(get.stdout, /complainer\s+Terminating/, 'kubectl get shows Terminating');
  t.equal(
    await readMaybe(fileOf(kubeletRoot, NS, 'complainer')),
    '{"defaultAction":"SCMP_ACT_LOG"}',
    'the file stays on the node while the pod runs',
  );

  await mustKubectl(t, ['delete', '-f', 'profiles/pods/complainer.yaml'], 'pod deleted', 120_000);
  const done = await del;
  t.equal(done.code, 0, 'the delete of every profile completes once the pod is gone');
  await waitFor('complainer.json removed', async () =>
    (await readMaybe(fileOf(kubeletRoot, NS, 'complainer'))) === undefined ? true : undefined,
  );
  t.pass('and the file is gone from the node');

  const un = await $('helm', ['uninstall', RELEASE, '-n', AGENT_NS], { timeoutMs: 120_000 });
  t.equal(un.code, 0, 'helm uninstall');
  await agent.stop();
  const crd = await $('kubectl', ['get', 'crd', 'seccompprofiles.security-profiles-operator.x-k8s.io']);
  t.equal(crd.code, 0, 'the CRD stays (Helm never deletes crds/); delete it by hand to remove every profile type');
  await mustKubectl(t, ['delete', '-f', 'profiles/ns.yaml'], 'namespace deleted', 180_000);
});

t.teardown(async () => {
  const text = transcript.join('\n').trimStart();
  const out = process.env['SECCOMP_AGENT_TRANSCRIPT'];
  if (out !== undefined && out !== '') await writeFile(out, `${text}\n`);
});
t.test('transcript', async (t) => {
  t.comment(transcript.join('\n'));
  t.same(await readdir(dir).catch(() => []), [], 'no profile file left on the node');
});
