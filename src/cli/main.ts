// The `gatehouse` command (started through bin/gatehouse.js). Exit codes: 0 success, 1 the
// command failed (expected errors print {"error","message"} JSON on stderr), 2 bad usage.
// On the embedded database a running server owns the data directory, so the command is sent to
// it and runs there; otherwise (no server, or PostgreSQL) the command opens the database itself.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../config.ts';
import { LOCK_FILE } from '../db/database.ts';
import { tryAcquirePidLock, type PidLock } from '../db/pid-lock.ts';
import { createCliContext, type CliOutput } from './context.ts';
import { forwardToServer } from './control.ts';
import { runCommandLine } from './program.ts';

const output: CliOutput = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** Where the command runs: in the server (its result), or here (holding the directory lock). */
async function placeCommand(dataDir: string, args: string[]): Promise<{ forwarded: number } | { lock: PidLock }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const forwarded = await forwardToServer(dataDir, args);
    if (forwarded) {
      output.out(forwarded.stdout);
      output.err(forwarded.stderr);
      return { forwarded: forwarded.code };
    }
    // No server is listening: run here once the directory is free (a server may be starting,
    // or another command finishing; both let go or start listening within moments).
    const lock = tryAcquirePidLock(path.join(dataDir, LOCK_FILE));
    if (lock) return { lock };
    if (Date.now() > deadline) throw new Error(`the embedded database in ${dataDir} is busy: another process holds it and no server answers on its control socket`);
    await sleep(200);
  }
}

async function main(args: string[]): Promise<number> {
  let lock: PidLock | undefined;
  try {
    // Usage errors and --help never need the database.
    const dryRun = await runCommandLine(args, { config: undefined, run: async () => undefined }, { out: () => undefined, err: () => undefined });
    if (dryRun === 0 && !args.includes('--help') && !args.includes('-h')) {
      let config;
      try {
        config = loadConfig(process.env);
      } catch {
        config = undefined; // reported by the command itself below
      }
      if (config && !config.databaseUrl) {
        const placed = await placeCommand(config.dataDir, args);
        if ('forwarded' in placed) return placed.forwarded;
        lock = placed.lock;
      }
    }
    return await runCommandLine(args, createCliContext(process.env, output, lock), output);
  } catch (err) {
    output.err(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    lock?.release();
  }
}

const code = await main(process.argv.slice(2));
// Exit only once stdout has drained: a piped consumer must receive the whole JSON document, and
// nothing left open (a pool timer, a socket) may keep a finished command alive.
process.stdout.write('', () => process.exit(code));
