/** A lifetime in whole units for messages ("expires in N minutes"): rounded up, never 0. */
export function wholeUnits(seconds: number, unitSeconds: number): number {
  return Math.max(1, Math.ceil(seconds / unitSeconds));
}
