/**
 * Rendering: a resolved spec to the exact bytes written on the node. Compact JSON, keys in the
 * order of the v1beta1 spec (defaultAction, architectures, listenerPath, listenerMetadata, syscalls,
 * flags), empty and absent fields left out, no trailing newline. Each rule is names, action,
 * errnoRet, args; each arg is index, value, valueTwo, op with both values always written. This is
 * what the reference operator writes for the workshop's profiles, byte for byte.
 */
import type { Arg, SeccompProfileSpec, SyscallRule } from './schema.js';

const str = (s: string): string => JSON.stringify(s);
const strList = (xs: readonly string[]): string => `[${xs.map(str).join(',')}]`;
const uint = (v: number | bigint | undefined): string => (v === undefined ? '0' : v.toString());

function renderArg(a: Arg): string {
  return `{"index":${a.index},"value":${uint(a.value)},"valueTwo":${uint(a.valueTwo)},"op":${str(a.op)}}`;
}

function renderRule(r: SyscallRule): string {
  const parts = [`"names":${strList(r.names)}`, `"action":${str(r.action)}`];
  // errnoRet 0 is left out, as the reference operator's omitempty does: runc then returns EPERM.
  if (r.errnoRet !== undefined && r.errnoRet !== 0) parts.push(`"errnoRet":${r.errnoRet}`);
  if (r.args !== undefined && r.args.length > 0) parts.push(`"args":[${r.args.map(renderArg).join(',')}]`);
  return `{${parts.join(',')}}`;
}

/** The file content for a spec whose base profiles are already merged in. */
export function renderSpec(spec: SeccompProfileSpec): string {
  const parts = [`"defaultAction":${str(spec.defaultAction)}`];
  if (spec.architectures !== undefined && spec.architectures.length > 0) {
    parts.push(`"architectures":${strList(spec.architectures)}`);
  }
  if (spec.listenerPath !== undefined && spec.listenerPath !== '')
    parts.push(`"listenerPath":${str(spec.listenerPath)}`);
  if (spec.listenerMetadata !== undefined && spec.listenerMetadata !== '') {
    parts.push(`"listenerMetadata":${str(spec.listenerMetadata)}`);
  }
  if (spec.syscalls !== undefined && spec.syscalls.length > 0) {
    parts.push(`"syscalls":[${spec.syscalls.map(renderRule).join(',')}]`);
  }
  if (spec.flags !== undefined && spec.flags.length > 0) parts.push(`"flags":${strList(spec.flags)}`);
  return `{${parts.join(',')}}`;
}
