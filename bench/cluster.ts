// Runs GATEHOUSE_WORKERS copies of src/main.ts behind one port with node:cluster, for the
// benchmark's --cluster mode. Every worker is a complete, ordinary Gatehouse instance (the same
// process an operator starts); the primary only accepts connections and hands them to the
// workers round-robin. The first worker starts alone so that migrations and key generation
// happen once; the others start together after it listens. When started with an IPC channel the
// primary reports { ready: workers } once every worker listens.
import cluster from 'node:cluster';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const workers = Number(process.env.GATEHOUSE_WORKERS ?? 2);
if (!Number.isInteger(workers) || workers < 1) {
  process.stderr.write('GATEHOUSE_WORKERS must be a positive integer\n');
  process.exit(2);
}

cluster.setupPrimary({
  exec: path.join(ROOT, 'src', 'main.ts'),
  // Passed to workers: the primary is started with npm start's options (and --cpu-prof and
  // friends when profiling), which apply to each worker too.
  execArgv: process.execArgv,
});

let stopping = false;

function forkOne(): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = cluster.fork();
    worker.once('listening', () => resolve());
    worker.once('exit', (code) => {
      if (!stopping) reject(new Error(`worker ${worker.process.pid} exited with ${code} before listening`));
    });
  });
}

async function main(): Promise<void> {
  await forkOne();
  await Promise.all(Array.from({ length: workers - 1 }, () => forkOne()));
  cluster.on('exit', (worker, code) => {
    if (!stopping) process.stderr.write(`worker ${worker.process.pid} exited with ${code}\n`);
  });
  process.send?.({ ready: workers });
}

function stop(): void {
  if (stopping) return;
  stopping = true;
  const live = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
  let left = live.length;
  if (left === 0) process.exit(0);
  for (const worker of live) {
    worker.once('exit', () => {
      left -= 1;
      if (left === 0) process.exit(0);
    });
    worker.process.kill('SIGTERM');
  }
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
main().catch((err: unknown) => {
  process.stderr.write(`cluster failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  stopping = true;
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
  process.exit(1);
});
