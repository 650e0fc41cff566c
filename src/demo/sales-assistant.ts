import type { ReplyFn } from '../simulators/retell.simulator';

/**
 * The demo's chat agent, played by the Retell simulator: canned answers of a small shop's sales assistant,
 * picked by keyword. No AI is involved; a real Retell agent answers whatever its prompt says.
 */
const TOPICS: Array<{ keywords: RegExp; answer: string }> = [
  {
    keywords: /\b(ship|shipping|deliver|delivery|post|canada|abroad|international)\b/i,
    answer:
      'Yes, we ship worldwide 🚚 Orders leave our studio within 1–2 business days; delivery takes 3–7 days, ' +
      'and shipping is free on orders over $50.',
  },
  {
    keywords: /\b(price|prices|cost|costs|how much|cheap|expensive|discount|sale)\b|\$/i,
    answer:
      'Our candles start at $24 and the gift boxes at $49. This week every second candle is 20% off — ' +
      'want me to send you the bestsellers?',
  },
  {
    keywords: /\b(hours?|open|opening|close|closing|when|visit|store|address)\b/i,
    answer:
      'Our store at 12 Harbour Street is open Monday to Saturday, 9am–6pm, and Sunday 11am–4pm. ' +
      'Online orders are taken 24/7.',
  },
  {
    keywords: /\b(return|returns|refund|exchange|broken|damaged)\b/i,
    answer:
      'No worries: you can return or exchange anything within 30 days. Just reply with your order number ' +
      'and I will set it up.',
  },
  {
    keywords: /\b(hi|hello|hey|hiya|good (morning|afternoon|evening))\b/i,
    answer:
      'Hi there 👋 Welcome to Demo Shop! I can help with prices, shipping, opening hours and returns. ' +
      'What are you looking for?',
  },
  {
    keywords: /\b(thanks|thank you|thx|great|perfect)\b/i,
    answer: 'You are welcome! Anything else I can help you with?',
  },
];

const DEFAULT_ANSWER =
  "Thanks for your message! I'm Demo Shop's assistant — ask me about prices, shipping, opening hours or " +
  'returns, and a teammate can jump in at any time.';

/** Answers the topic of the first matching keyword; attachments and anything else get the friendly default. */
export const salesAssistantReply: ReplyFn = (content) =>
  TOPICS.find((t) => t.keywords.test(content))?.answer ?? DEFAULT_ANSWER;
