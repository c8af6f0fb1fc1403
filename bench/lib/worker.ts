// Load generators run as separate processes, so they never share an event loop (or a CPU
// account) with the orchestrator or the server. The orchestrator hands a worker its spec as JSON
// in argv; the worker says when the measured part starts (after warm-up), so server CPU can be
// sampled around exactly that window, and finally sends its report.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../../test/helpers/server.ts';
import { NODE } from './servers.ts';

type WorkerMessage = { type: 'measuring' } | { type: 'result'; result: unknown } | { type: 'failed'; message: string };

export async function runWorker<T>(name: string, spec: unknown, hooks: { onMeasuring?: () => void } = {}): Promise<T> {
  const child = spawn(NODE, ['--disable-warning=ExperimentalWarning', path.join(ROOT, 'bench', 'workers', `${name}.ts`), JSON.stringify(spec)], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    child.on('message', (raw) => {
      const msg = raw as WorkerMessage;
      if (msg.type === 'measuring') hooks.onMeasuring?.();
      else if (msg.type === 'result') {
        settled = true;
        resolve(msg.result as T);
      } else if (msg.type === 'failed') {
        settled = true;
        reject(new Error(`${name} worker: ${msg.message}`));
      }
    });
    child.once('exit', (code) => {
      if (!settled) reject(new Error(`${name} worker exited with ${code} without a result`));
    });
  });
}

// ----- worker side -----

export function workerSpec<T>(): T {
  const raw = process.argv[2];
  if (!raw) throw new Error('a worker needs its spec as the first argument');
  return JSON.parse(raw) as T;
}

function send(msg: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) {
      // Run by hand: print instead.
      process.stdout.write(`${JSON.stringify(msg)}\n`);
      resolve();
      return;
    }
    process.send(msg, () => resolve());
  });
}

export const signalMeasuring = (): Promise<void> => send({ type: 'measuring' });

/** Runs the worker body, sends its result (or failure) and exits. */
export function workerMain(body: () => Promise<unknown>): void {
  body().then(
    async (result) => {
      await send({ type: 'result', result });
      process.exit(0);
    },
    async (err: unknown) => {
      await send({ type: 'failed', message: err instanceof Error ? err.stack ?? err.message : String(err) });
      process.exit(1);
    },
  );
}
