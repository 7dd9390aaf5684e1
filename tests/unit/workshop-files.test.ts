// The workshop's files under profiles/, exactly as users `kubectl apply` them: kinds, names, namespaces,
// which profile each pod uses, and that every profile whose rendering the workshop prints holds exactly
// the content printed there (names in the printed order). Byte-exact rendering is tested with the renderer.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot, seedPrintedProfiles, sharedDir } from '../helpers/shared.js';

const profilesDir = join(repoRoot, 'profiles');
const podsDir = join(profilesDir, 'pods');
const SPO_API = 'security-profiles-operator.x-k8s.io/v1beta1';
const NS = 'seccomp-test';

type Obj = Record<string, unknown>;

function obj(value: unknown, what: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${what} is not a mapping: ${JSON.stringify(value)}`);
  }
  return value as Obj;
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new Error(`${what} is not a string: ${JSON.stringify(value)}`);
  return value;
}

function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${what} is not a list: ${JSON.stringify(value)}`);
  return value;
}

/**
 * Every document of a YAML file, failing on any parse error or warning. Parsed as YAML 1.2 and as 1.1
 * too: Kubernetes tooling has YAML 1.1 roots, where an unquoted word such as `on` or `y` turns into a
 * boolean, so both readings must agree.
 */
function readDocs(path: string): Obj[] {
  const text = readFileSync(path, 'utf8');
  const read = (version: '1.1' | '1.2'): unknown[] =>
    parseAllDocuments(text, { version, uniqueKeys: true }).map((doc, i) => {
      if (doc.errors.length > 0 || doc.warnings.length > 0) {
        throw new Error(`${path} document ${i}: ${[...doc.errors, ...doc.warnings].join('; ')}`);
      }
      return doc.toJS() as unknown;
    });
  const docs = read('1.2');
  if (JSON.stringify(docs) !== JSON.stringify(read('1.1'))) {
    throw new Error(`${path} reads differently as YAML 1.1 and 1.2 (quote the ambiguous scalars)`);
  }
  return docs.map((d, i) => obj(d, `${path} document ${i}`));
}

function meta(doc: Obj, what: string): { name: string; namespace: string } {
  const m = obj(doc['metadata'], `${what} metadata`);
  return {
    name: str(m['name'], `${what} name`),
    namespace: str(m['namespace'], `${what} namespace`),
  };
}

const PROFILE_FILES: Record<string, string[]> = {
  'complainer.yaml': ['complainer'],
  'multiple.yaml': [
    'profile-allow-unsafe',
    'profile-block-all',
    'profile-complain-unsafe',
    'profile-complain-block-high-risk',
  ],
  'confine-nginx-explicit-deny.yaml': ['confine-nginx-explicit-deny'],
  'confine-nginx-explicit-allow.yaml': ['confine-nginx-explicit-allow'],
};

const PODS: Record<string, { pod: string; profile: string }> = {
  'complainer.yaml': { pod: 'complainer', profile: 'complainer' },
  'block-high-risk.yaml': {
    pod: 'block-high-risk',
    profile: 'profile-complain-block-high-risk',
  },
  'block-all.yaml': { pod: 'block-all', profile: 'profile-block-all' },
  'nginx-explicit-deny.yaml': {
    pod: 'nginx-deny',
    profile: 'confine-nginx-explicit-deny',
  },
  'nginx-explicit-allow.yaml': {
    pod: 'nginx-allow',
    profile: 'confine-nginx-explicit-allow',
  },
};

/** Every SeccompProfile shipped, by name: its spec. */
function loadProfiles(): Map<string, Obj> {
  const profiles = new Map<string, Obj>();
  for (const file of Object.keys(PROFILE_FILES)) {
    for (const doc of readDocs(join(profilesDir, file))) {
      const { name } = meta(doc, file);
      profiles.set(name, obj(doc['spec'], `${file} ${name} spec`));
    }
  }
  return profiles;
}

t.test('profiles/ and profiles/pods/ hold exactly the files the workshop applies', async (t) => {
  const yamls = (dir: string): string[] =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.yaml'))
      .sort();
  t.strictSame(yamls(profilesDir), ['ns.yaml', ...Object.keys(PROFILE_FILES)].sort());
  t.strictSame(yamls(podsDir), Object.keys(PODS).sort());
});

t.test('ns.yaml is the seccomp-test Namespace', async (t) => {
  const docs = readDocs(join(profilesDir, 'ns.yaml'));
  t.equal(docs.length, 1);
  const [ns] = docs;
  t.equal(ns?.['apiVersion'], 'v1');
  t.equal(ns?.['kind'], 'Namespace');
  t.equal(obj(ns?.['metadata'], 'ns metadata')['name'], NS);
});

t.test('each profile file holds its SeccompProfiles, in seccomp-test', async (t) => {
  for (const [file, names] of Object.entries(PROFILE_FILES)) {
    const docs = readDocs(join(profilesDir, file));
    t.strictSame(
      docs.map((d) => meta(d, file).name),
      names,
      `${file} documents`,
    );
    for (const doc of docs) {
      const { name, namespace } = meta(doc, file);
      t.equal(doc['apiVersion'], SPO_API, `${name} apiVersion`);
      t.equal(doc['kind'], 'SeccompProfile', `${name} kind`);
      t.equal(namespace, NS, `${name} namespace`);
      t.type(obj(doc['metadata'], name)['annotations'], 'object', `${name} has a description`);
    }
  }
  t.strictSame(
    [...loadProfiles().keys()].sort(),
    [
      'complainer',
      'confine-nginx-explicit-allow',
      'confine-nginx-explicit-deny',
      'profile-allow-unsafe',
      'profile-block-all',
      'profile-complain-block-high-risk',
      'profile-complain-unsafe',
    ],
    'the seven profiles, each once',
  );
});

t.test('the SPO example profiles keep the upstream spec', async (t) => {
  const profiles = loadProfiles();
  for (const name of PROFILE_FILES['multiple.yaml'] ?? []) {
    const path = join(sharedDir(), 'real-profiles', `${name}.original.yaml`);
    const [original] = readDocs(path);
    t.strictSame(profiles.get(name), obj(original?.['spec'], path), name);
  }
});

t.test('every profile the workshop prints holds exactly the printed content', async (t) => {
  const profiles = loadProfiles();
  const printed = seedPrintedProfiles();
  t.strictSame(
    [...printed.keys()].sort(),
    [
      'complainer',
      'confine-nginx-explicit-allow',
      'confine-nginx-explicit-deny',
      'profile-block-all',
      'profile-complain-block-high-risk',
    ],
    'the seed prints these renderings',
  );
  for (const [name, json] of printed) {
    const want = obj(JSON.parse(json) as unknown, `printed ${name}`);
    const spec = profiles.get(name);
    // Key order is the renderer's business; arrays (arches, entries, names) must match in order.
    t.strictSame(spec, want, `${name} spec equals the printed JSON`);
  }
});

t.test('the confine-nginx profiles list the printed names in the printed order', async (t) => {
  const profiles = loadProfiles();
  const printed = seedPrintedProfiles();
  for (const [name, action] of [
    ['confine-nginx-explicit-deny', 'SCMP_ACT_ERRNO'],
    ['confine-nginx-explicit-allow', 'SCMP_ACT_ALLOW'],
  ] as const) {
    const json = printed.get(name);
    if (json === undefined) throw new Error(`the seed prints no rendering of ${name}`);
    const [want] = list(obj(JSON.parse(json) as unknown, name)['syscalls'], name);
    const spec = profiles.get(name);
    if (spec === undefined) throw new Error(`profile ${name} missing`);
    t.strictSame(spec['architectures'], ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], name);
    const entries = list(spec['syscalls'], `${name} syscalls`);
    t.equal(entries.length, 1, `${name} has one syscalls entry`);
    const entry = obj(entries[0], `${name} syscalls[0]`);
    t.equal(entry['action'], action, `${name} action`);
    const names = list(entry['names'], `${name} names`);
    t.strictSame(names, obj(want, name)['names'], `${name} names`);
    t.equal(new Set(names).size, names.length, `${name} lists no name twice`);
  }
});

t.test('each pod runs nginx in seccomp-test under an existing profile', async (t) => {
  const profiles = loadProfiles();
  for (const [file, { pod, profile }] of Object.entries(PODS)) {
    const docs = readDocs(join(podsDir, file));
    t.equal(docs.length, 1, `${file} has one document`);
    const [doc] = docs;
    if (doc === undefined) continue;
    t.equal(doc['apiVersion'], 'v1', `${file} apiVersion`);
    t.equal(doc['kind'], 'Pod', `${file} kind`);
    t.strictSame(meta(doc, file), { name: pod, namespace: NS }, `${file} name and namespace`);
    const spec = obj(doc['spec'], `${file} spec`);
    const sc = obj(obj(spec['securityContext'], `${file} securityContext`)['seccompProfile'], file);
    t.equal(sc['type'], 'Localhost', `${file} seccompProfile type`);
    const ref = str(sc['localhostProfile'], `${file} localhostProfile`);
    const m = /^operator\/([^/]+)\/([^/]+)\.json$/.exec(ref);
    t.ok(m, `${file} localhostProfile ${ref} has the form operator/<namespace>/<name>.json`);
    t.equal(m?.[1], NS, `${file} profile namespace`);
    t.equal(m?.[2], profile, `${file} profile name`);
    t.ok(profiles.has(m?.[2] ?? ''), `${file} points at a profile we ship`);
    const containers = list(spec['containers'], `${file} containers`).map((c, i) => obj(c, `${file} containers[${i}]`));
    t.equal(containers.length, 1, `${file} has one container`);
    for (const c of containers) {
      t.equal(c['name'], `${pod}-container`, `${file} container name`);
      t.match(str(c['image'], `${file} image`), /^nginx:\d+\.\d+/, `${file} image is a pinned nginx`);
      // A container-level seccompProfile would override the pod's and defeat the example.
      t.notOk(obj(c['securityContext'] ?? {}, file)['seccompProfile'], `${file} no container override`);
    }
  }
});
