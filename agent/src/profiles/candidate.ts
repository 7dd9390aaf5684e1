/**
 * The profiles /v1/check evaluates: one this node installed (by key, read back from the file the
 * node wrote, so the check sees exactly what a pod would get), or a posted SeccompProfile document,
 * validated as the node validates and merged with its base profiles as the node would write it.
 * The file reads go through `readFile`, the one seam.
 */
import { formatMessage } from '../../../shared/errors.js';
import { profileKey } from '../../../shared/profile/layout.js';
import { resolveSpec } from '../../../shared/profile/merge.js';
import type { SeccompProfileSpec } from '../../../shared/profile/schema.js';
import type { SyscallCatalog } from '../../../shared/profile/validate.js';
import { parseSourceText } from './source-parse.js';

/** A profile ready to check, or why not (the HTTP status and a message that names it). */
export type Candidate =
  | { ok: true; ref: string; spec: SeccompProfileSpec; localhostProfile?: string }
  | { ok: false; status: 400 | 404 | 422; message: string };

/** What the resolver needs to know about an installed profile (the agent's ProfileView). */
export interface InstalledProfile {
  readonly namespace: string;
  readonly name: string;
  readonly state: string;
  readonly path: string;
  readonly localhostProfile: string;
  readonly message?: string;
}

export interface CandidateDeps {
  /** The profiles this node knows, now. */
  readonly profiles: () => readonly InstalledProfile[];
  readonly readFile: (path: string) => Promise<string>;
  readonly catalog: SyscallCatalog;
}

export interface CandidateResolver {
  /** `?profile=<namespace>/<name>` (or `<name>` when cluster-scoped). */
  installed(key: string): Promise<Candidate>;
  /** A posted document: YAML or JSON, one SeccompProfile. */
  posted(text: string): Promise<Candidate>;
}

const fail = (status: 400 | 404 | 422, profile: string, detail: string): Candidate => ({
  ok: false,
  status,
  message: formatMessage('SECCOMP_AGENT_ERR_CHECK_PROFILE', { profile, detail }),
});

export function candidateResolver(deps: CandidateDeps): CandidateResolver {
  const find = (key: string): InstalledProfile | undefined =>
    deps.profiles().find((p) => profileKey(p.namespace, p.name) === key);

  /** The rendered spec of an installed profile; undefined when it is not installed or unreadable. */
  async function renderedSpec(p: InstalledProfile): Promise<SeccompProfileSpec | undefined> {
    if (p.state !== 'Installed') return undefined;
    try {
      return JSON.parse(await deps.readFile(p.path)) as SeccompProfileSpec;
    } catch {
      return undefined;
    }
  }

  return {
    async installed(key) {
      const p = find(key);
      if (p === undefined) {
        const known = deps
          .profiles()
          .map((x) => profileKey(x.namespace, x.name))
          .sort();
        const list = known.length === 0 ? 'none' : known.slice(0, 20).join(', ') + (known.length > 20 ? ', …' : '');
        return fail(404, key, `this node knows no such SeccompProfile (it knows: ${list}); or POST the profile's YAML`);
      }
      if (p.state !== 'Installed') {
        return fail(422, key, `it is ${p.state} on this node${p.message === undefined ? '' : `: ${p.message}`}`);
      }
      const spec = await renderedSpec(p);
      if (spec === undefined) return fail(422, key, `its file ${p.path} could not be read back as JSON`);
      return { ok: true, ref: key, spec, localhostProfile: p.localhostProfile };
    },

    async posted(text) {
      const parsed = parseSourceText('the request body', text, deps.catalog);
      if (parsed.problems.length > 0 && parsed.profiles.length === 0) {
        return fail(400, 'the posted document', parsed.problems.map((x) => x.message).join('; '));
      }
      if (parsed.profiles.length !== 1) {
        return fail(
          400,
          'the posted document',
          `it holds ${parsed.profiles.length} SeccompProfiles; post exactly one (kind: SeccompProfile)`,
        );
      }
      const known = parsed.profiles[0]?.profile;
      if (known === undefined) return fail(400, 'the posted document', 'it holds no SeccompProfile');
      if (!known.ok) {
        const ref = profileKey(known.namespace, known.name);
        return fail(422, ref, known.errors.map((e) => `${e.path}: ${e.message}`).join('; '));
      }
      const { namespace, name } = known.profile.metadata;
      const ref = profileKey(namespace, name);
      // Base profiles are the ones this node installed, as their files say (already merged).
      const bases = new Map<string, SeccompProfileSpec>();
      const baseName = known.profile.spec.baseProfileName;
      if (baseName !== undefined && baseName !== '') {
        const p = find(profileKey(namespace, baseName));
        const spec = p === undefined ? undefined : await renderedSpec(p);
        if (spec !== undefined) bases.set(profileKey(namespace, baseName), spec);
      }
      const r = resolveSpec(namespace, name, known.profile.spec, (ns, n) => bases.get(profileKey(ns, n)));
      if (!r.ok)
        return fail(
          422,
          ref,
          `${r.error.message} (base profiles are looked up among the profiles installed on this node)`,
        );
      return { ok: true, ref, spec: r.spec };
    },
  };
}
