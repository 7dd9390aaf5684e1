// The parts of tests/testbed/images.ts that decide what an image's cache key covers and which base
// Dockerfile.agent gets: the build context's COPY sources, .dockerignore as Docker reads it, and the
// `FROM node:<version>-<suite>-slim` base. A wrong answer here means a stale image or a wrong base.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { repoPath } from '../../testbed/cluster.js';
import { agentBase, contextSources, dockerignoreMatcher } from '../../testbed/images.js';

const dockerfile = readFileSync(repoPath('Dockerfile.agent'), 'utf8');

t.test("Dockerfile.agent's context sources are what its COPY lines read", async (t) => {
  t.same(contextSources(dockerfile).sort(), [
    'agent',
    'package-lock.json',
    'package.json',
    'scripts',
    'shared',
    'tests',
    'tsconfig.base.json',
    'tsconfig.json',
  ]);
  t.same(
    contextSources('FROM x\nCOPY --from=build /a /b\nADD --chown=1:1 ./a.tar \\\n  b/ /dst/\nRUN true\n').sort(),
    ['a.tar', 'b'],
    '--from copies are not the context; flags and continuation lines are handled',
  );
});

t.test('.dockerignore patterns match as Docker matches them', async (t) => {
  const ignored = dockerignoreMatcher(readFileSync(repoPath('.dockerignore'), 'utf8'));
  for (const p of ['node_modules', 'node_modules/x/index.js', 'dist/agent/src/main.js', '.tap/x', 'build.log']) {
    t.ok(ignored(p), `${p} is ignored`);
  }
  for (const p of ['agent/src/main.ts', 'tests/node/images.test.ts', 'tests/x.log', 'tests/node_modules/y']) {
    t.notOk(ignored(p), `${p} is not (a pattern without ** matches from the context's root only)`);
  }
  const deep = dockerignoreMatcher('**/*.tmp\n# a comment\n/tmp/\n');
  t.ok(deep('a/b/c.tmp'));
  t.ok(deep('c.tmp'));
  t.ok(deep('tmp/x'));
  t.notOk(deep('a/tmp/x'));
  t.throws(() => dockerignoreMatcher('!keep'), /exceptions/, 'exceptions are refused, not misread');
});

t.test("the agent's base is read from its FROM lines", async (t) => {
  t.same(agentBase(dockerfile), {
    name: 'node:24.21.0-bookworm-slim',
    nodeVersion: '24.21.0',
    debianSuite: 'bookworm',
  });
  t.throws(() => agentBase('FROM node:24-bookworm-slim\n'), /node:<x\.y\.z>-<suite>-slim/);
  t.throws(() => agentBase('FROM node:24.1.0-bookworm-slim\nFROM node:24.2.0-bookworm-slim\n'), /one base/);
  t.same(
    agentBase('FROM scratch AS c\nFROM --platform=linux/amd64 node:24.1.0-trixie-slim AS b\n').debianSuite,
    'trixie',
  );
});
