/**
 * Instagram's standard messaging window: a business may message a person for 24 hours after that person's
 * last message (https://developers.facebook.com/docs/messenger-platform/instagram/features/send-message).
 * Computed from the stored inbound turns, never from the clock of the last message we sent.
 */
export const MESSAGING_WINDOW_MS = 24 * 60 * 60_000;

export interface WindowState {
  open: boolean;
  /** When the window closes (or closed); null when the person never wrote. */
  expiresAt: Date | null;
}

export function windowState(lastInboundAt: Date | null | undefined, now = Date.now()): WindowState {
  if (!lastInboundAt) return { open: false, expiresAt: null };
  const expiresAt = new Date(lastInboundAt.getTime() + MESSAGING_WINDOW_MS);
  return { open: expiresAt.getTime() > now, expiresAt };
}
