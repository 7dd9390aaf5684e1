import t from 'tap';
import { ERRORS, agentError, formatMessage, type ErrorCode } from '../../shared/errors.js';

t.test('every code is unique, prefixed and has a template', async (t) => {
  const codes = Object.keys(ERRORS);
  t.equal(new Set(codes).size, codes.length);
  for (const code of codes) {
    t.match(code, /^SECCOMP_AGENT_ERR_[A-Z0-9_]+$/, code);
    t.ok(ERRORS[code as ErrorCode].length > 0, `${code} has a message`);
  }
  const messages = Object.values(ERRORS);
  t.equal(new Set(messages).size, messages.length, 'no two codes share a template');
});

t.test('templates are filled and causes chained', async (t) => {
  const cause = new Error('EACCES');
  const e = agentError('SECCOMP_AGENT_ERR_WRITE', { path: '/x', detail: 'denied' }, cause);
  t.equal(e.message, 'could not write /x: denied');
  t.equal(e.code, 'SECCOMP_AGENT_ERR_WRITE');
  t.equal(e.cause, cause);
  t.equal(formatMessage('SECCOMP_AGENT_ERR_WRITE', { path: '/y' }), 'could not write /y: {detail}');
});
