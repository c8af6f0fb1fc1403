// Open-loop load at a fixed rate: requests leave at evenly spaced moments, whether or not earlier
// ones have been answered, over at most `connections` keep-alive connections, and each latency
// counts from the moment its request was due. A server that falls behind therefore shows its
// queue in the latencies instead of slowing the generator down (coordinated omission).
//
// autocannon's own rate option does not pace: every connection sends its whole per-second quota
// back to back when a second starts and then waits for the next one, so "half the saturation
// rate" meant saturation for half of each second, and its latencies were those of saturation.
import http from 'node:http';
import { Samples } from '../lib/stats.ts';

export interface PacedRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  /** The body for this request (called at send time, so rotating tokens can be taken then). */
  body: () => string | undefined;
  /** Called with each answer's status and body (refresh chains keep the next token). */
  onResponse?: (status: number, body: string) => void;
}

export interface PacedResult {
  samples: Samples | undefined;
  /** How late each request left after it was due (ms): the generator's own lag, part of every latency. */
  sendLag: Samples;
  statusCodes: Map<number, number>;
  /** Socket errors and timeouts. */
  errors: number;
}

const TIMEOUT_MS = 10_000;

export async function runPaced(url: string, connections: number, rate: number, seconds: number, request: PacedRequest, samples: Samples | undefined): Promise<PacedResult> {
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const statusCodes = new Map<number, number>();
  let errors = 0;
  const sendLag = new Samples();
  const inFlight = new Set<Promise<void>>();

  const send = (due: number) => {
    const body = request.body();
    const headers = body === undefined ? request.headers : { ...request.headers, 'content-length': String(Buffer.byteLength(body)) };
    const done = new Promise<void>((resolve) => {
      // A response that fails midway can be reported by both the response and the request:
      // each request settles once, so its refresh token is counted lost once.
      let settled = false;
      const settle = (status: number, answer: string) => {
        if (settled) return;
        settled = true;
        // Status 0: no answer (socket error or timeout).
        if (status === 0) {
          errors += 1;
        } else {
          samples?.add(performance.now() - due);
          statusCodes.set(status, (statusCodes.get(status) ?? 0) + 1);
        }
        request.onResponse?.(status, answer);
        resolve();
      };
      const req = http.request({ agent, host: target.hostname, port: target.port, method: request.method, path: request.path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => settle(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
        res.on('error', () => settle(0, ''));
      });
      req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error('timeout')));
      req.on('error', () => settle(0, ''));
      req.end(body);
    });
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
  };

  const interval = 1000 / rate;
  const total = Math.max(1, Math.round(rate * seconds));
  const started = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    // Timers fire about once a millisecond at best: each tick sends every request now due.
    const tick = () => {
      const now = performance.now();
      while (sent < total) {
        const due = started + sent * interval;
        if (due > now) break;
        sendLag.add(now - due);
        send(due);
        sent += 1;
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, 1);
    tick();
  });
  await Promise.all(inFlight);
  agent.destroy();
  return { samples, sendLag, statusCodes, errors };
}
