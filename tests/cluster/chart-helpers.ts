/**
 * Helpers of the chart tests: where the chart and the deploy manifest live, rendering the chart
 * with the test bed's helm, and reading the rendered objects. Not a test file.
 */
import { parseAllDocuments } from 'yaml';
import { repoPath, type ControlPlane } from '../testbed/cluster.js';

export const CHART = repoPath('manifests', 'helm', 'seccomp-agent');
export const DEPLOY = repoPath('manifests', 'deploy', 'seccomp-agent.yaml');
export const CRD_NAME = 'seccompprofiles.security-profiles-operator.x-k8s.io';
export const CRD_FILE = repoPath('manifests', 'crds', `${CRD_NAME}.yaml`);
export const CHART_CRD_FILE = repoPath('manifests', 'helm', 'seccomp-agent', 'crds', `${CRD_NAME}.yaml`);

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
