/**
 * Events as the pipeline makes them for a pod's container, for tests that fill an EventStore
 * directly (the check routes, the logged calls of the node report).
 */
import type { SyscallEvent } from '../../agent/src/events/store.js';
import { syscallNumber, type Arch } from '../../shared/syscalls/index.js';

/** One event of `containerId` (pod `pod`, container `container` in seccomp-test); `name` null: unnamed `nr`. */
export function podEvent(
  containerId: string,
  pod: string,
  container: string,
  arch: Arch,
  name: string | null,
  nr?: number,
  action = 'SCMP_ACT_LOG',
): Omit<SyscallEvent, 'seq'> {
  const syscallNr = nr ?? (name === null ? 9999 : (syscallNumber(arch, name) ?? -1));
  const ev: Omit<SyscallEvent, 'seq'> = {
    time: '2026-12-02T12:00:00.000Z',
    node: 'node1',
    namespace: 'seccomp-test',
    pod,
    container,
    containerId,
    podUid: '11111111-2222-3333-4444-555555555555',
    attribution: 'pod',
    pid: 100,
    comm: 'nginx',
    exe: '/usr/sbin/nginx',
    uid: 0,
    gid: 0,
    auid: null,
    ses: null,
    arch,
    auditArch: arch === 'x86' ? '40000003' : 'c000003e',
    syscall: name,
    syscallNr,
    action,
    code: action === 'SCMP_ACT_LOG' ? '0x7ffc0000' : '0x80000000',
    errno: null,
    sig: null,
    compat: arch === 'x86' ? 1 : 0,
    ip: null,
    auditId: '1.0:1',
  };
  return ev;
}
