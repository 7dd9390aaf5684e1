// R4 (the profile validator): 10^4 generated inputs (any JSON, any value, profile-shaped objects,
// mutated real profiles): validateProfile always returns a result and never throws, every finding
// and the whole message stay bounded, and a profile it accepts renders to JSON. The 10^6 run is
// tests/bench/validate-fuzz.ts.
import fc from 'fast-check';
import t from 'tap';
import { describeFindings } from '../../../shared/profile/findings.js';
import { renderSpec } from '../../../shared/profile/render.js';
import { validateProfile } from '../../../shared/profile/validate.js';
import { SYSCALL_CATALOG } from '../../../shared/syscalls/index.js';
import {
  MAX_FINDING_BYTES,
  MAX_FINDINGS_PER_SEVERITY,
  anyProfileInput,
  realProfileDocs,
} from '../../helpers/profile-arbitraries.js';

const docs = realProfileDocs();

t.test('R4: 10,000 generated profiles: a result every time, bounded messages', async (t) => {
  t.ok(docs.length >= 25, `${docs.length} real and workshop profiles to mutate`);
  let refused = 0;
  fc.assert(
    fc.property(anyProfileInput(docs), (doc) => {
      const check = validateProfile(doc, SYSCALL_CATALOG);
      const findings = check.ok ? check.warnings : [...check.errors, ...check.warnings];
      for (const f of findings) {
        const bytes = Buffer.byteLength(`${f.path}: ${f.message}`);
        if (bytes > MAX_FINDING_BYTES)
          throw new Error(`a ${bytes}-byte finding: ${f.path}: ${f.message.slice(0, 200)}`);
      }
      const perSeverity = Math.max(
        findings.filter((f) => f.severity === 'error').length,
        findings.filter((f) => f.severity === 'warning').length,
      );
      if (perSeverity > MAX_FINDINGS_PER_SEVERITY) throw new Error(`${perSeverity} findings of one severity`);
      if (check.ok) JSON.parse(renderSpec(check.profile.spec));
      else {
        refused++;
        if (check.errors.length === 0) throw new Error('refused without an error');
        const message = describeFindings(check.ref, check.errors);
        if (Buffer.byteLength(message) > 16_384) throw new Error(`a ${message.length}-character message`);
      }
    }),
    { numRuns: 10_000 },
  );
  t.ok(refused > 0 && refused < 10_000, `${refused} of 10,000 refused, the rest accepted`);
});
