/**
 * Helpers of the chart tests: where the chart and the deploy manifest live, rendering the chart
 * with the test bed's helm, and reading the rendered objects. Not a test file.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CRDS } from '../../shared/profile/crd.js';
import { repoPath, testbedBinaries, type ControlPlane } from '../testbed/cluster.js';
import { mustExec } from '../testbed/exec.js';

export const CHART = repoPath('manifests', 'helm', 'seccomp-agent');
export const DEPLOY = repoPath('manifests', 'deploy', 'seccomp-agent.yaml');
/** The names of the CRDs the chart installs (SeccompProfile, of the layout profileLayout picks, then SeccompNodeReport). */
export const CRD_NAMES: readonly string[] = [...new Set(CRDS.map((c) => c.name))];

/** A Kubernetes object as plain data (the parts the tests read are reached through `dig`). */
export type Obj = Record<string, unknown>;

export function dig(value: unknown, ...keys: (string | number)[]): unknown {
  let v = value;
  for (const k of keys) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

/** Every non-empty document of a multi-document YAML text. */
export function objects(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as unknown)
    .filter((o): o is Obj => o !== null && typeof o === 'object');
}

export function find(objs: readonly Obj[], kind: string, name?: string): Obj {
  const o = objs.find((x) => x['kind'] === kind && (name === undefined || dig(x, 'metadata', 'name') === name));
  if (o === undefined)
    throw new Error(
      `no ${kind}${name === undefined ? '' : ` ${name}`} among ${objs.map((x) => String(x['kind'])).join(', ')}`,
    );
  return o;
}

/** `helm template` of the chart; throws with helm's stderr when it fails. */
export async function template(
  cp: ControlPlane,
  release: string,
  namespace: string,
  args: readonly string[] = [],
): Promise<string> {
  const r = await cp.helm(['template', release, CHART, '--namespace', namespace, ...args]);
  if (r.code !== 0) throw new Error(`helm template ${args.join(' ')} failed (${String(r.code)}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** The chart's DaemonSet pod as `helm template` renders it with `--set` each of `sets` (no API server). */
export async function renderedAgentPod(sets: readonly string[]): Promise<{ pod: Obj; init: Obj; agent: Obj }> {
  const args = [
    'template',
    'seccomp-agent',
    CHART,
    '--namespace',
    'seccomp-agent',
    ...sets.flatMap((s) => ['--set', s]),
  ];
  const ds = find(objects((await mustExec((await testbedBinaries()).helm, args)).stdout), 'DaemonSet');
  const pod = dig(ds, 'spec', 'template', 'spec') as Obj;
  const init = (pod['initContainers'] as Obj[]).find((c) => c['name'] === 'prepare-operator-dir');
  const agent = (pod['containers'] as Obj[]).find((c) => c['name'] === 'agent');
  if (init === undefined || agent === undefined)
    throw new Error('the chart renders no init container or agent container');
  return { pod, init, agent };
}

/** One rule of a ClusterRole or Role, as the chart writes it. */
export interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** The rules split to one (group, resource, verb) each: the unit the minimality test removes. */
export function atoms(rules: readonly Rule[]): { group: string; resource: string; verb: string }[] {
  const out: { group: string; resource: string; verb: string }[] = [];
  for (const r of rules)
    for (const group of r.apiGroups)
      for (const resource of r.resources) for (const verb of r.verbs) out.push({ group, resource, verb });
  return out;
}

/** The rules without one (group, resource, verb). */
export function without(rules: readonly Rule[], atom: { group: string; resource: string; verb: string }): Rule[] {
  const out: Rule[] = [];
  for (const r of rules) {
    if (!r.apiGroups.includes(atom.group) || !r.resources.includes(atom.resource) || !r.verbs.includes(atom.verb)) {
      out.push(r);
      continue;
    }
    // Split the rule so that only the one atom goes.
    for (const group of r.apiGroups) {
      for (const resource of r.resources) {
        const verbs = r.verbs.filter((v) => !(group === atom.group && resource === atom.resource && v === atom.verb));
        if (verbs.length > 0) out.push({ apiGroups: [group], resources: [resource], verbs });
      }
    }
  }
  return out;
}

/**
 * kube-apiserver flags for an audit log, written under `dir`, of every request by the service
 * accounts of `namespace` (Metadata level: who, verb, resource, and the answer's status and message).
 * It shows what the API server refused, whatever the client logged.
 */
export async function auditArgs(dir: string, namespace: string): Promise<{ args: string[]; log: string }> {
  const policy = join(dir, 'audit-policy.yaml');
  const log = join(dir, 'audit.log');
  await writeFile(
    policy,
    JSON.stringify({
      apiVersion: 'audit.k8s.io/v1',
      kind: 'Policy',
      omitStages: ['RequestReceived'],
      rules: [{ level: 'Metadata', userGroups: [`system:serviceaccounts:${namespace}`] }, { level: 'None' }],
    }),
  );
  return { args: [`--audit-policy-file=${policy}`, `--audit-log-path=${log}`, '--audit-log-format=json'], log };
}

/** The messages of the 403 answers the API server gave `user`, in order, from the audit log. */
export async function refusals(log: string, user: string): Promise<string[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  const out: string[] = [];
  // The last piece may be a line still being written.
  for (const line of text.split('\n').slice(0, -1)) {
    const e = JSON.parse(line) as unknown;
    if (dig(e, 'user', 'username') === user && dig(e, 'responseStatus', 'code') === 403)
      out.push(String(dig(e, 'responseStatus', 'message')));
  }
  return out;
}
