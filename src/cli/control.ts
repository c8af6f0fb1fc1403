// The control socket of a server on the embedded database. PGlite admits one process per data
// directory, so while the server runs, `gatehouse` commands are executed by the server itself:
// the CLI sends its arguments over a Unix socket in DATA_DIR (mode 0600, so only the owner of
// the data may use it) and prints what comes back. Every command then sees exactly one database
// session, the server's, with no interleaving between processes.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Services } from '../services.ts';
import { lockOwner } from '../db/pid-lock.ts';
import { LOCK_FILE } from '../db/database.ts';
import { serverCliContext } from './context.ts';
import { runCommandLine } from './program.ts';

export const CONTROL_SOCKET = 'gatehouse.sock';
const MAX_REQUEST = 64 * 1024;

export interface ForwardedResult {
  code: number;
  stdout: string;
  stderr: string;
}

function socketPath(dataDir: string): string {
  return path.join(dataDir, CONTROL_SOCKET);
}

export interface ControlServer {
  close(): Promise<void>;
}

export async function startControlServer(services: Services): Promise<ControlServer> {
  const file = socketPath(services.config.dataDir);
  fs.rmSync(file, { force: true });
  const server = net.createServer((socket) => {
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.length > MAX_REQUEST) socket.destroy();
      const newline = received.indexOf('\n');
      if (newline < 0) return;
      socket.pause();
      void (async () => {
        let stdout = '';
        let stderr = '';
        let code: number;
        try {
          const request = JSON.parse(received.slice(0, newline)) as { args?: unknown };
          const args = Array.isArray(request.args) ? request.args.map(String) : [];
          const output = { out: (t: string) => { stdout += t; }, err: (t: string) => { stderr += t; } };
          code = await runCommandLine(args, serverCliContext(services, output), output);
        } catch (err) {
          code = 1;
          stderr += `error: ${err instanceof Error ? err.message : String(err)}\n`;
        }
        socket.end(`${JSON.stringify({ code, stdout, stderr })}\n`);
      })();
    });
    socket.on('error', () => socket.destroy());
  });
  // Create the socket with owner-only permissions from the start.
  const previousMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
  } finally {
    process.umask(previousMask);
  }
  return {
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      fs.rmSync(file, { force: true });
    }),
  };
}

/**
 * Runs the command in the server owning DATA_DIR, if one is running and listening; resolves
 * undefined when there is none (the caller then opens the database itself).
 */
export async function forwardToServer(dataDir: string, args: string[]): Promise<ForwardedResult | undefined> {
  if (lockOwner(path.join(dataDir, LOCK_FILE)) === undefined) return undefined;
  const file = socketPath(dataDir);
  if (!fs.existsSync(file)) return undefined;
  return new Promise((resolve) => {
    const socket = net.connect(file);
    let received = '';
    let connected = false;
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify({ args })}\n`);
    });
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    // Before the request is sent nothing happened, so the caller may run the command itself;
    // after that, the command may have run: report a failure rather than run it twice.
    socket.on('error', () => resolve(connected ? { code: 1, stdout: '', stderr: 'error: lost the connection to the running server; check whether the command took effect\n' } : undefined));
    socket.on('close', () => {
      if (!connected) return resolve(undefined);
      try {
        resolve(JSON.parse(received) as ForwardedResult);
      } catch {
        resolve({ code: 1, stdout: '', stderr: 'error: the running server closed the connection without an answer\n' });
      }
    });
  });
}
