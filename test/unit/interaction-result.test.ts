// Recording an interaction step on the interaction the request loaded (src/interactions/context.ts):
// the same result, lifetime and destination as oidc-provider's interactionResult, and never a save
// of an interaction whose time ran out while the request was busy.
import { describe, expect, it } from 'vitest';
import { saveInteractionResult, type InteractionDetails } from '../../src/interactions/context.ts';

interface Saved { result: unknown; ttl: number }

/** The parts of oidc-provider's Interaction model the function uses, recording what it saves. */
function loadedInteraction(expiresInSeconds: number, lastSubmission?: Record<string, unknown>): { details: InteractionDetails; saves: Saved[] } {
  const saves: Saved[] = [];
  const details = {
    exp: Math.floor(Date.now() / 1000) + expiresInSeconds,
    // As oidc-provider's models compute it.
    get remainingTTL() {
      return this.exp - Math.floor(Date.now() / 1000);
    },
    returnTo: 'http://localhost:3000/auth/uid-1',
    lastSubmission,
    result: undefined as unknown,
    async save(ttl: number) {
      saves.push({ result: this.result, ttl });
      return 'uid-1';
    },
  };
  return { details: details as unknown as InteractionDetails, saves };
}

describe('saveInteractionResult', () => {
  it('saves the result for the remaining lifetime and returns where the browser goes next', async () => {
    const { details, saves } = loadedInteraction(600);
    const login = { login: { accountId: 'a1', amr: ['pwd'], acr: 'urn:gatehouse:pwd', remember: true } };
    expect(await saveInteractionResult(details, login, { mergeWithLastSubmission: false })).toBe('http://localhost:3000/auth/uid-1');
    expect(saves).toHaveLength(1);
    expect(saves[0]!.result).toEqual(login);
    expect(saves[0]!.ttl).toBeGreaterThanOrEqual(599);
    expect(saves[0]!.ttl).toBeLessThanOrEqual(600);
  });

  it('merges with the last submission when asked, except for an error', async () => {
    const { details, saves } = loadedInteraction(600, { login: { accountId: 'a1' } });
    await saveInteractionResult(details, { consent: { grantId: 'g1' } }, { mergeWithLastSubmission: true });
    expect(saves[0]!.result).toEqual({ login: { accountId: 'a1' }, consent: { grantId: 'g1' } });

    const denied = { error: 'access_denied', error_description: 'The user denied the request' };
    await saveInteractionResult(details, denied, { mergeWithLastSubmission: true });
    expect(saves[1]!.result).toEqual(denied);
  });

  it('refuses an interaction that expired while the request was busy, without saving it', async () => {
    const { details, saves } = loadedInteraction(0);
    await expect(saveInteractionResult(details, { login: { accountId: 'a1' } }, { mergeWithLastSubmission: false }))
      .rejects.toMatchObject({ code: 'interaction_expired', status: 400 });
    expect(saves).toHaveLength(0);
  });
});
