import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerTo, RetellClient, RetellError } from '../../src/retell/retell.client';
import {
  simMessages,
  startRetellSimulator,
  type RetellSimulator,
} from '../../src/simulators/retell.simulator';

/** Injected failures carry `retry-after-ms: 0`, which retell-sdk honours, so retries cost no time. */
const now = { 'retry-after-ms': '0' };

let sim: RetellSimulator;
let retell: RetellClient;

beforeEach(async () => {
  sim = await startRetellSimulator();
  retell = new RetellClient({ apiKey: sim.apiKey, baseUrl: sim.url });
});

afterEach(async () => {
  await sim.close();
});

async function refusal(promise: Promise<unknown>): Promise<RetellError> {
  const err = await promise.then(
    () => {
      throw new Error('the call succeeded');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RetellError);
  return err as RetellError;
}

const requestsTo = (path: string) => sim.requests.filter((r) => r.path.startsWith(path));

/** A base URL on which nothing listens: a port that was just free. */
async function deadUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('RetellClient against the Retell simulator', () => {
  test('when a chat is created, then Retell receives the agent id, metadata and dynamic variables', async () => {
    const metadata = { channel: 'instagram', instagram_user_id: '1789' };
    const chat = await retell.createChat('agent_abc', metadata, { customer_name: 'Jo' });

    expect(sim.created).toEqual([
      { agent_id: 'agent_abc', metadata, retell_llm_dynamic_variables: { customer_name: 'Jo' } },
    ]);
    expect(requestsTo('/create-chat')[0].headers.authorization).toBe(`Bearer ${sim.apiKey}`);
    expect(chat).toEqual({
      chatId: expect.any(String),
      status: 'ongoing',
      startTimestamp: expect.any(Number),
    });
    const stored = sim.chats.get(chat.chatId);
    expect(stored).toMatchObject({ agent_id: 'agent_abc', metadata, chat_status: 'ongoing' });
    expect(stored?.retell_llm_dynamic_variables).toEqual({ customer_name: 'Jo' });
  });

  test('when the user writes, then complete returns the agent messages and Retell got the content', async () => {
    const { chatId } = await retell.createChat('agent_abc', {}, {});

    const messages = await retell.complete(chatId, 'Hi there');

    expect(messages).toEqual([
      {
        role: 'agent',
        content: 'Echo: Hi there',
        message_id: expect.any(String),
        created_timestamp: expect.any(Number),
      },
    ]);
    expect(sim.completions).toEqual([{ chat_id: chatId, content: 'Hi there', at: expect.any(Number) }]);
    expect(sim.chats.get(chatId)?.userContents).toEqual(['Hi there']);
  });

  test('when the agent calls tools, then complete passes every item through in order for the caller to filter', async () => {
    sim.setReply((content) => [
      simMessages.nodeTransition('start', 'lookup'),
      simMessages.toolCall('check_order', { q: content }, 'tool_1'),
      simMessages.toolResult('tool_1', '{"status":"shipped"}'),
      simMessages.agent('Your order has shipped.'),
      simMessages.agent('Anything else?'),
    ]);
    const { chatId } = await retell.createChat('agent_abc', {}, {});

    const messages = await retell.complete(chatId, 'Where is my order?');

    expect(messages.map((m) => m.role)).toEqual([
      'node_transition',
      'tool_call_invocation',
      'tool_call_result',
      'agent',
      'agent',
    ]);
    expect(messages[1]).toMatchObject({ name: 'check_order', arguments: '{"q":"Where is my order?"}' });
    const texts = messages.flatMap((m) => (m.role === 'agent' ? [m.content] : []));
    expect(texts).toEqual(['Your order has shipped.', 'Anything else?']);
  });

  test('when a chat is ended, then the 204 resolves endChat and Retell marks the chat ended', async () => {
    const { chatId } = await retell.createChat('agent_abc', {}, {});

    await expect(retell.endChat(chatId)).resolves.toBeUndefined();

    expect(sim.ended).toEqual([chatId]);
    expect(sim.chats.get(chatId)?.chat_status).toBe('ended');
  });

  test('when Retell answers 500 then 503, then the completion is asked again after each, once the chat shows no answer, and succeeds', async () => {
    const { chatId } = await retell.createChat('agent_abc', {}, {});
    sim.failNext('/create-chat-completion', [
      { status: 500, headers: now },
      { status: 503, headers: now },
    ]);

    const messages = await retell.complete(chatId, 'Hello');

    expect(messages.map((m) => m.role === 'agent' && m.content)).toEqual(['Echo: Hello']);
    // A 5xx may come after the agent answered: the chat is read before each new attempt.
    expect(sim.requests.map((r) => r.path.replace(chatId, '<chat>'))).toEqual([
      '/create-chat',
      '/create-chat-completion',
      '/get-chat/<chat>',
      '/create-chat-completion',
      '/get-chat/<chat>',
      '/create-chat-completion',
    ]);
    expect(sim.completions).toHaveLength(1);
  });

  test('when Retell answers 400, then the call is not retried and the error is not transient', async () => {
    sim.failNext('/create-chat', [{ status: 400, headers: now, message: 'Invalid request format' }]);

    const err = await refusal(retell.createChat('agent_abc', {}, {}));

    expect(err).toMatchObject({ status: 400, transient: false, chatUnusable: false });
    expect(err.message).toBe('Retell 400: Invalid request format');
    expect(requestsTo('/create-chat')).toHaveLength(1);
  });

  test('when Retell keeps answering 429, then the error is transient once the retries are exhausted', async () => {
    sim.failNext(
      '/create-chat',
      [1, 2, 3].map(() => ({ status: 429, headers: now })),
    );

    const err = await refusal(retell.createChat('agent_abc', {}, {}));

    expect(err).toMatchObject({ status: 429, transient: true, chatUnusable: false });
    expect(requestsTo('/create-chat')).toHaveLength(3);
    expect(sim.created).toEqual([]);
  });

  test('when the chat is unknown to Retell, then the 422 marks the chat unusable and is not retried', async () => {
    const err = await refusal(retell.complete('chat_gone', 'Hello'));

    expect(err).toMatchObject({ status: 422, transient: false, chatUnusable: true });
    expect(err.message).toBe('Retell 422: Cannot find requested asset under given api key.');
    expect(requestsTo('/create-chat-completion')).toHaveLength(1);
  });

  test('when the chat has ended, then a completion is refused with the chat marked unusable', async () => {
    const { chatId } = await retell.createChat('agent_abc', {}, {});
    await retell.endChat(chatId);

    const err = await refusal(retell.complete(chatId, 'Still there?'));

    expect(err).toMatchObject({ status: 400, transient: false, chatUnusable: true });
    expect(sim.completions).toEqual([]);
  });

  test('when the API key is wrong, then the 401 is a permanent error', async () => {
    const wrong = new RetellClient({ apiKey: 'not-the-key', baseUrl: sim.url });

    const err = await refusal(wrong.createChat('agent_abc', {}, {}));

    expect(err).toMatchObject({ status: 401, transient: false, chatUnusable: false });
    expect(err.message).not.toContain('not-the-key');
  });

  test('when Retell is unreachable, then the error is transient', async () => {
    const offline = new RetellClient({ apiKey: sim.apiKey, baseUrl: await deadUrl(), maxRetries: 0 });

    const err = await refusal(offline.complete('chat_1', 'Hello'));

    expect(err).toMatchObject({ status: undefined, transient: true, chatUnusable: false });
    expect(err.message).toMatch(/^Retell unreachable/);
  });

  describe('when a completion times out', () => {
    /** 1 s to answer; after a timeout the chat is read every 20 ms for up to another second. Answers come 300 ms past the timeout: room on a loaded machine both ways. */
    const impatient = () =>
      new RetellClient({ apiKey: sim.apiKey, baseUrl: sim.url, timeoutMs: 1_000, answerPollMs: 20 });

    test('and Retell answers a little later, then the answer is read from the chat and the agent is asked once', async () => {
      const client = impatient();
      const { chatId } = await client.createChat('agent_abc', {}, {});
      sim.setDelay(1_300);

      const messages = await client.complete(chatId, 'Hello');

      expect(messages.map((m) => m.role === 'agent' && m.content)).toEqual(['Echo: Hello']);
      expect(sim.completions.map((c) => c.content)).toEqual(['Hello']);
      expect(requestsTo('/create-chat-completion')).toHaveLength(1);
      expect(requestsTo('/get-chat').length).toBeGreaterThan(0);
    });

    test('and Retell has the question but no answer within another timeout, then the error is transient and the agent was asked once', async () => {
      const client = impatient();
      const { chatId } = await client.createChat('agent_abc', {}, {});
      sim.setDelay(10_000);

      const err = await refusal(client.complete(chatId, 'Hello'));

      expect(err).toMatchObject({ status: undefined, transient: true, chatUnusable: false });
      expect(err.message).toBe('Retell timed out: it has the message but no answer yet');
      expect(sim.completions).toHaveLength(1);
      expect(requestsTo('/create-chat-completion')).toHaveLength(1);
    });

    test('and the question never reached the agent, then it is asked again once', async () => {
      const client = impatient();
      const { chatId } = await client.createChat('agent_abc', {}, {});
      // Held past the timeout and then refused: Retell never takes the question in.
      sim.failNext('/create-chat-completion', [{ status: 500, delayMs: 1_300 }]);

      const messages = await client.complete(chatId, 'Hello');

      expect(messages.map((m) => m.role === 'agent' && m.content)).toEqual(['Echo: Hello']);
      const paths = sim.requests.map((r) => r.path);
      const asks = paths.flatMap((p, i) => (p === '/create-chat-completion' ? [i] : []));
      expect(asks).toHaveLength(2);
      // The chat was read before asking again.
      expect(paths.slice(asks[0]! + 1, asks[1]).some((p) => p.startsWith('/get-chat/'))).toBe(true);
      expect(sim.completions).toHaveLength(1);
    });

    test('and the chat cannot be read either, then the error is transient and the question is not asked again', async () => {
      const client = impatient();
      const { chatId } = await client.createChat('agent_abc', {}, {});
      sim.setDelay(10_000);
      sim.failNext(
        '/get-chat',
        Array.from({ length: 100 }, () => ({ status: 503 })),
      );

      const err = await refusal(client.complete(chatId, 'Hello'));

      expect(err).toMatchObject({ status: undefined, transient: true });
      expect(err.message).toBe('Retell timed out: the chat could not be read');
      expect(requestsTo('/create-chat-completion')).toHaveLength(1);
      sim.clearFailures();
    });

    test('and the visitor asked the same words a while before, then that earlier answer is not taken for this one', async () => {
      const client = impatient();
      const { chatId } = await client.createChat('agent_abc', {}, {});
      let n = 0;
      sim.setReply(() => `answer ${++n}`);
      await client.complete(chatId, 'Hello');
      await new Promise((r) => setTimeout(r, 1_100)); // past the clock-skew allowance
      sim.failNext('/create-chat-completion', [{ status: 500, delayMs: 1_300 }]);

      const messages = await client.complete(chatId, 'Hello');

      expect(messages.map((m) => m.role === 'agent' && m.content)).toEqual(['answer 2']);
      expect(sim.completions).toHaveLength(2);
    });

    test('and nothing answers at all, then the error is transient after one more ask', async () => {
      const client = impatient();
      const { chatId } = await client.createChat('agent_abc', {}, {});
      sim.failNext(
        '/create-chat-completion',
        [1, 2].map(() => ({ status: 500, delayMs: 1_300 })),
      );

      const err = await refusal(client.complete(chatId, 'Hello'));

      expect(err).toMatchObject({ status: undefined, transient: true, chatUnusable: false });
      expect(err.message).toBe('Retell timed out');
      expect(requestsTo('/create-chat-completion')).toHaveLength(2);
      expect(sim.completions).toEqual([]);
    });
  });

  test('when Retell answers 409 to a completion, then it is asked again without reading the chat (the question was not taken)', async () => {
    const { chatId } = await retell.createChat('agent_abc', {}, {});
    sim.failNext('/create-chat-completion', [{ status: 409, headers: now }]);

    const messages = await retell.complete(chatId, 'Hello');

    expect(messages.map((m) => m.role === 'agent' && m.content)).toEqual(['Echo: Hello']);
    expect(sim.requests.map((r) => r.path).filter((p) => p !== '/create-chat')).toEqual([
      '/create-chat-completion',
      '/create-chat-completion',
    ]);
  });

  test('when the caller checks before each ask, then an ask again after a failure is checked too, and a refusal there ends the call without asking', async () => {
    const { chatId } = await retell.createChat('agent_abc', {}, {});
    sim.failNext('/create-chat-completion', [{ status: 409, headers: now }]);
    let checks = 0;
    const leaseRanOut = new Error('the thread lease ran out before this step');
    const beforeAsk = async () => {
      if (++checks > 1) throw leaseRanOut; // the worker lost its thread while the first ask failed
    };

    await expect(retell.complete(chatId, 'Hello', undefined, beforeAsk)).rejects.toBe(leaseRanOut);
    expect(checks).toBe(2);
    expect(requestsTo('/create-chat-completion')).toHaveLength(1);
  });

  test('when Retell asks for a wait longer than a call may take, then the error says how long, for the event retry', async () => {
    const { chatId } = await retell.createChat('agent_abc', {}, {});
    sim.failNext('/create-chat-completion', [{ status: 429, headers: { 'retry-after': '600' } }]);

    const err = await refusal(retell.complete(chatId, 'Hello'));

    expect(err).toMatchObject({ status: 429, transient: true, retryAfterMs: 600_000 });
    expect(requestsTo('/create-chat-completion')).toHaveLength(1);
  });

  describe('answerTo: which messages of a chat answer the question', () => {
    const at = 1_800_000_000_000;
    const user = (content: string, created_timestamp?: number) =>
      ({ role: 'user', content, ...(created_timestamp ? { created_timestamp } : {}) }) as const;
    const agent = (content: string) => ({ role: 'agent', content }) as const;

    test('the messages after the question, when the last is the agent’s words', () => {
      const answer = [
        simMessages.toolCall('check', {}, 't1'),
        simMessages.toolResult('t1', 'ok'),
        agent('Done.'),
      ];
      expect(answerTo([agent('Hi'), user(' Hello ', at + 5), ...answer], 'Hello', at)).toEqual({
        asked: true,
        answer,
      });
    });

    test('a question whose agent is still at work (a tool call last) is asked but not answered', () => {
      expect(answerTo([user('Hello', at), simMessages.toolCall('check', {}, 't1')], 'Hello', at)).toEqual({
        asked: true,
      });
    });

    test('not ours: other words, stamped more than a second before it was asked, or not stamped at all', () => {
      expect(answerTo([user('Hi', at), agent('Yes?')], 'Hello', at)).toEqual({ asked: false });
      expect(answerTo([user('Hello', at - 1_001), agent('Yes?')], 'Hello', at)).toEqual({ asked: false });
      expect(answerTo([user('Hello', at - 999), agent('Yes?')], 'Hello', at).asked).toBe(true);
      expect(answerTo([user('Hello'), agent('Yes?')], 'Hello', at)).toEqual({ asked: false });
    });
  });

  describe('when an earlier attempt may have asked the same question', () => {
    const agentTexts = (messages: Awaited<ReturnType<RetellClient['complete']>>) =>
      messages.flatMap((m) => (m.role === 'agent' ? [m.content] : []));

    test('and Retell answered it, then that answer is taken and nothing is asked', async () => {
      const { chatId } = await retell.createChat('agent_abc', {}, {});
      const since = Date.now();
      await retell.complete(chatId, 'Hello');

      const again = await retell.complete(chatId, 'Hello', { since, mayBeAnswering: false });

      expect(agentTexts(again)).toEqual(['Echo: Hello']);
      expect(sim.completions).toHaveLength(1);
    });

    test('and Retell took it in but failed it, then it is asked again after one read of the chat', async () => {
      const client = new RetellClient({
        apiKey: sim.apiKey,
        baseUrl: sim.url,
        maxRetries: 0,
        answerPollMs: 20,
      });
      const { chatId } = await client.createChat('agent_abc', {}, {});
      let n = 0;
      sim.setReply((content) => {
        if (++n === 1) throw new Error('the agent fell over');
        return `Echo: ${content}`;
      });
      const since = Date.now();
      expect(await refusal(client.complete(chatId, 'Hello'))).toMatchObject({ status: 500, transient: true });
      const readsBefore = requestsTo('/get-chat').length;

      const again = await client.complete(chatId, 'Hello', { since, mayBeAnswering: false });

      expect(agentTexts(again)).toEqual(['Echo: Hello']);
      expect(sim.completions).toHaveLength(2);
      expect(requestsTo('/get-chat').length - readsBefore).toBe(1);
    });

    test('and the chat cannot be read while that attempt may still be answered, then nothing is asked and the error says timed out', async () => {
      const { chatId } = await retell.createChat('agent_abc', {}, {});
      sim.failNext('/get-chat', [{ status: 503 }]);

      const err = await refusal(
        retell.complete(chatId, 'Hello', { since: Date.now(), mayBeAnswering: true }),
      );

      expect(err.message).toBe('Retell timed out: the chat could not be read');
      expect(err.transient).toBe(true);
      expect(requestsTo('/get-chat')).toHaveLength(1);
      expect(requestsTo('/create-chat-completion')).toHaveLength(0);
    });

    test('and that attempt may still be answered, then its answer is waited for and nothing is asked again', async () => {
      const { chatId } = await retell.createChat('agent_abc', {}, {});
      sim.setDelay(300);
      const since = Date.now();
      const cutOff = retell.complete(chatId, 'Hello'); // a process that dies while waiting, in effect
      await sim.waitForCompletions(1, 5_000);
      const client = new RetellClient({ apiKey: sim.apiKey, baseUrl: sim.url, answerPollMs: 20 });

      const again = await client.complete(chatId, 'Hello', { since, mayBeAnswering: true });

      expect(agentTexts(again)).toEqual(['Echo: Hello']);
      expect(sim.completions).toHaveLength(1);
      await cutOff;
    });
  });

  test('when no API key is configured, then the client says so and every call fails without a request', async () => {
    const unconfigured = new RetellClient({ apiKey: undefined, baseUrl: sim.url });

    expect(unconfigured.configured).toBe(false);
    expect(retell.configured).toBe(true);
    for (const call of [
      unconfigured.createChat('agent_abc', {}, {}),
      unconfigured.complete('chat_1', 'Hello'),
      unconfigured.endChat('chat_1'),
    ]) {
      expect(await refusal(call)).toMatchObject({
        transient: false,
        message: expect.stringMatching(/RETELL_API_KEY/),
      });
    }
    expect(sim.requests).toEqual([]);
  });
});
