// Password verification alone: Gatehouse's own verifyPassword (argon2id at the configured
// parameters, behind the same concurrency limit the server uses), in a process of its own. This
// is the floor for sign-ins: a sign-in cannot cost less than one verification.
import os from 'node:os';
import { hashPassword, verifyPassword } from '../../src/domain/passwords.ts';
import { Samples, type LoadReport } from '../lib/stats.ts';
import { signalMeasuring, workerMain, workerSpec } from '../lib/worker.ts';

export interface Argon2Spec {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
  concurrency: number;
  warmupSeconds: number;
  seconds: number;
}

workerMain(async (): Promise<LoadReport> => {
  const spec = workerSpec<Argon2Spec>();
  const password = 'correct horse battery staple';
  const hash = await hashPassword(password, { memoryCost: spec.memoryCost, timeCost: spec.timeCost, parallelism: spec.parallelism });

  const run = async (seconds: number, samples: Samples | undefined): Promise<void> => {
    const deadline = performance.now() + seconds * 1000;
    const loop = async (): Promise<void> => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        if (!(await verifyPassword(hash, password))) throw new Error('verification failed');
        samples?.add(performance.now() - t0);
      }
    };
    await Promise.all(Array.from({ length: spec.concurrency }, loop));
  };

  await run(spec.warmupSeconds, undefined);
  const samples = new Samples();
  await signalMeasuring();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await run(spec.seconds, samples);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    tool: 'in-process',
    connections: spec.concurrency,
    targetRate: undefined,
    seconds,
    operations: samples.count,
    latencyMs: samples.summary(),
    errors: 0,
    // Here the "generator" is the measured work itself: CPU of every thread of this process.
    generatorCpuSeconds: cpuSeconds,
    notes: {
      cores: os.availableParallelism(),
      memoryKiB: spec.memoryCost,
      iterations: spec.timeCost,
      parallelism: spec.parallelism,
      cpuMsPerVerification: Math.round((cpuSeconds / Math.max(1, samples.count)) * 1e5) / 100,
    },
  };
});
