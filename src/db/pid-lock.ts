// An exclusive lock on a file holding the owner's pid. PGlite allows one process per data
// directory; the pid tells a live owner from a crashed one exactly, so a stale lock left by a
// killed process never blocks the next start.
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryAcquire(file: string): boolean {
  try {
    fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const owner = Number(fs.readFileSync(file, 'utf8').trim());
  if (owner === process.pid) return true;
  if (!owner || !isAlive(owner)) {
    fs.rmSync(file, { force: true });
    return tryAcquire(file);
  }
  return false;
}

export function lockOwner(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return pid && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface PidLock {
  release(): void;
}

function lockHandle(file: string): PidLock {
  return {
    release() {
      if (lockOwner(file) === process.pid) fs.rmSync(file, { force: true });
    },
  };
}

/** The lock if it is free (or stale) right now, without waiting. */
export function tryAcquirePidLock(file: string): PidLock | undefined {
  return tryAcquire(file) ? lockHandle(file) : undefined;
}

/** Wait until the lock is ours; `onWait` may stop waiting early by returning false. */
export async function acquirePidLock(file: string, timeoutMs: number, onWait?: () => Promise<boolean>): Promise<PidLock | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (tryAcquire(file)) return lockHandle(file);
    if (onWait && !(await onWait())) return undefined;
    if (Date.now() > deadline) {
      throw new Error(`${file} is held by process ${lockOwner(file) ?? '?'}; only one process may open the embedded database`);
    }
    await sleep(200);
  }
}
