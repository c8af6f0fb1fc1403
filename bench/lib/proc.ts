// CPU time, memory and threads of processes, read from /proc (Linux). The benchmark charges a
// scenario with the CPU its server spent while the load ran, which does not depend on how much
// CPU the load generator took from the same machine.
import fs from 'node:fs';
import os from 'node:os';

// USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every mainstream Linux build.
const CLK_TCK = 100;

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  /** user + system CPU seconds of all threads. */
  cpuSeconds: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited
  }
  // The command name is in parentheses and may contain spaces; the fields follow the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return {
    pid,
    comm: text.slice(open + 1, close),
    ppid: Number(fields[1]),
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLK_TCK,
  };
}

function allStats(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** The process and all of its descendants (cluster workers, for instance). */
export function processTree(root: number): number[] {
  const stats = allStats();
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const s of stats) if (s.ppid === tree[i]) tree.push(s.pid);
  }
  return tree;
}

export function cpuSeconds(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) total += readStat(pid)?.cpuSeconds ?? 0;
  return total;
}

/** CPU seconds of every process with one of these command names (e.g. postgres, redis-server). */
export function cpuSecondsOf(commands: readonly string[]): number {
  return allStats().filter((s) => commands.includes(s.comm)).reduce((sum, s) => sum + s.cpuSeconds, 0);
}

/**
 * CPU seconds the whole machine has spent since boot (all cores): in processes (user, nice,
 * system), and in interrupt handlers, mostly the network stack carrying loopback traffic, which
 * Linux does not charge to any process. Steal time (another virtual machine running) is neither.
 */
export function machineCpu(): { processes: number; interrupts: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal ...
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return {
    processes: ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0)) / CLK_TCK,
    interrupts: ((f[5] ?? 0) + (f[6] ?? 0)) / CLK_TCK,
  };
}

/** Resident set size in bytes, summed over the processes. */
export function rssBytes(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // exited
    }
  }
  return total;
}

/** Thread names of one process, counted (e.g. { node: 7, 'libuv-worker': 6 }). */
export function threadCounts(pid: number): Record<string, number> {
  const counts: Record<string, number> = {};
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      counts[name] = (counts[name] ?? 0) + 1;
    }
  } catch {
    // exited
  }
  return counts;
}

export interface MachineDescription {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  hypervisor: string | undefined;
}

export function describeMachine(): MachineDescription {
  let hypervisor: string | undefined;
  try {
    const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
    hypervisor = /\bhypervisor\b/.test(cpuinfo) ? 'yes (virtual machine)' : undefined;
  } catch {
    hypervisor = undefined;
  }
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    hypervisor,
  };
}
