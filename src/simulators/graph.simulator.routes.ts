import { randomBytes } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { FailResponse, GraphHost, SimAccount, SimState } from './graph.simulator';

/** The Graph endpoints the connector uses, answered like Meta does (doc links in graph.simulator.ts). */
export function graphRoutes(sim: SimState): Router {
  const r = express.Router();

  r.use((req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ')
      ? header.slice('Bearer '.length).trim()
      : typeof req.query.access_token === 'string'
        ? req.query.access_token
        : undefined;
    if (!token) {
      const message = 'An active access token must be used to query information about the current user.';
      return graphError(res, 400, { message, code: 2500 });
    }
    const host = res.locals.host as GraphHost | undefined;
    const igToken = token.startsWith('IG');
    const wrongHost = host !== undefined && igToken !== (host === 'graph.instagram.com');
    const account = sim.accounts.get(token);
    if (!account || wrongHost) {
      return graphError(res, 400, {
        message: 'Invalid OAuth access token - Cannot parse access token',
        code: 190,
      });
    }
    res.locals.account = account;
    res.locals.igLogin = igToken;
    if (!req.path.startsWith(`/${sim.version}/`)) {
      return graphError(res, 400, { message: `Unknown path components: ${req.path}`, code: 2500 });
    }
    next();
  });

  r.get('/:version/me', (req, res) => {
    const a = res.locals.account as SimAccount;
    if (res.locals.igLogin) {
      const node = {
        id: a.appScopedId ?? `9${a.id}`,
        user_id: a.id,
        username: a.username,
        name: a.name,
        profile_picture_url: a.profilePictureUrl,
        account_type: 'BUSINESS',
      };
      return select(req, res, node, 'User');
    }
    const page = { id: a.pageId ?? `1${a.id}`, name: a.name, instagram_business_account: { id: a.id } };
    return select(req, res, page, 'Page');
  });

  r.get('/:version/:id', (req, res) => {
    const a = res.locals.account as SimAccount;
    const id = String(req.params.id);
    if (id === a.id) {
      const node = { id, username: a.username, name: a.name, profile_picture_url: a.profilePictureUrl };
      return select(req, res, node, 'IGUser');
    }
    const user = sim.users.get(id);
    if (!user) return unsupported(res, 'get', id);
    const node = { id, name: user.name, username: user.username, profile_pic: user.profilePic };
    return select(req, res, node, 'InstagramUser');
  });

  const ownsNode = (res: Response, node: string): boolean => {
    const a = res.locals.account as SimAccount;
    return node === 'me' || node === (res.locals.igLogin ? a.id : a.pageId);
  };

  r.post('/:version/:node/subscribed_apps', (req, res) => {
    if (!ownsNode(res, String(req.params.node))) return unsupported(res, 'post', String(req.params.node));
    const raw =
      req.query.subscribed_fields ?? (req.body as Record<string, unknown> | undefined)?.subscribed_fields;
    const fields = (Array.isArray(raw) ? raw.join(',') : typeof raw === 'string' ? raw : '')
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
    if (fields.length === 0) {
      return graphError(res, 400, {
        message: '(#100) The parameter subscribed_fields is required',
        code: 100,
      });
    }
    sim.subscriptions.set((res.locals.account as SimAccount).id, fields);
    return reply(res, { success: true });
  });

  r.delete('/:version/:node/subscribed_apps', (req, res) => {
    if (!ownsNode(res, String(req.params.node))) return unsupported(res, 'delete', String(req.params.node));
    sim.subscriptions.delete((res.locals.account as SimAccount).id);
    return reply(res, { success: true });
  });

  r.post('/:version/:node/messages', async (req, res) => {
    if (!ownsNode(res, String(req.params.node))) return unsupported(res, 'post', String(req.params.node));
    const body = (req.body ?? {}) as Record<string, unknown>;
    const recipient = jsonParam(body.recipient) as { id?: unknown } | undefined;
    const message = jsonParam(body.message) as Record<string, unknown> | undefined;
    const bad = (message: string): void => graphError(res, 400, { message, code: 100 });
    if (!recipient) return bad('(#100) The parameter recipient is required');
    if (typeof recipient.id !== 'string' || recipient.id === '') {
      return bad('(#100) Param recipient[id] must be a valid ID string (e.g., "123")');
    }
    if (!message) return bad('(#100) The parameter message is required');
    const problem = messageProblem(message);
    if (problem) return bad(problem);
    if (body.messaging_type === 'MESSAGE_TAG' && typeof body.tag !== 'string') {
      return bad('(#100) Param tag is required when messaging_type is MESSAGE_TAG');
    }
    if (!sim.users.has(recipient.id)) {
      return graphError(res, 400, { message: 'No matching user found', code: 100, subcode: 2018001 });
    }
    const account = res.locals.account as SimAccount;
    const record = {
      accountId: account.id,
      recipientId: recipient.id,
      message,
      messageId: sim.nextMessageId(account.id),
      timestamp: Date.now(),
      ...(typeof body.tag === 'string' ? { tag: body.tag } : {}),
    };
    sim.sent.push(record);
    await sim.onSend?.(record, account);
    return reply(res, { recipient_id: record.recipientId, message_id: record.messageId });
  });

  r.use((req: Request, res: Response) => {
    graphError(res, 400, { message: `Unknown path components: ${req.path}`, code: 2500 });
  });
  return r;
}

export function fbtraceId(): string {
  return randomBytes(8).toString('base64url');
}

export function graphError(
  res: Response,
  status: number,
  e: { message: string; type?: string; code: number; subcode?: number },
): void {
  res.status(status).json({
    error: {
      message: e.message,
      type: e.type ?? 'OAuthException',
      code: e.code,
      ...(e.subcode !== undefined ? { error_subcode: e.subcode } : {}),
      fbtrace_id: fbtraceId(),
    },
  });
}

/** A success, unless a `deliverAnyway` failure is pending: then the effect happened but the error is answered. */
function reply(res: Response, body: object): void {
  const failure = res.locals.failure as FailResponse | undefined;
  if (!failure) {
    res.json(body);
    return;
  }
  res.status(failure.status).set(failure.headers ?? {});
  if (failure.body === undefined) res.end();
  else res.json(failure.body);
}

/** Graph answers `id` plus the requested fields, and refuses fields the node type does not have. */
function select(req: Request, res: Response, node: Record<string, unknown>, nodeType: string): void {
  const fields =
    typeof req.query.fields === 'string' && req.query.fields
      ? req.query.fields.split(',').map((f) => f.trim())
      : ['id', 'name'];
  const missing = fields.find((f) => !(f in node));
  if (missing) {
    const message = `(#100) Tried accessing nonexisting field (${missing}) on node type (${nodeType})`;
    return graphError(res, 400, { message, code: 100 });
  }
  const out: Record<string, unknown> = { id: node.id };
  for (const f of fields) if (node[f] !== undefined && node[f] !== null) out[f] = node[f];
  reply(res, out);
}

function unsupported(res: Response, verb: string, id: string): void {
  const message =
    `Unsupported ${verb} request. Object with ID '${id}' does not exist, cannot be loaded due to missing ` +
    'permissions, or does not support this operation. Please read the Graph API documentation at ' +
    'https://developers.facebook.com/docs/graph-api';
  graphError(res, 400, { message, type: 'GraphMethodException', code: 100, subcode: 33 });
}

/** Meta's curl examples send `recipient={"id":…}` form fields holding JSON; the Postman ones a JSON body. */
function jsonParam(v: unknown): unknown {
  if (typeof v !== 'string') return v && typeof v === 'object' ? v : undefined;
  try {
    return JSON.parse(v);
  } catch {
    return undefined;
  }
}

const ATTACHMENT_TYPES = ['image', 'video', 'audio', 'file'];

/**
 * Both of Meta's wordings: "Message text must be UTF-8 and be a 1000 bytes or less" and "Text message must
 * be less than 1000 characters" (counted in code points); media is sent by URL.
 */
function messageProblem(m: Record<string, unknown>): string | undefined {
  if (typeof m.text === 'string') {
    if (Buffer.byteLength(m.text, 'utf8') > 1000) {
      return '(#100) Length of param message[text] must be less than or equal to 1000';
    }
    if ([...m.text].length >= 1000) return '(#100) Text message must be less than 1000 characters';
    return m.text.length === 0 ? '(#100) Param message[text] must be non-empty' : undefined;
  }
  const att = m.attachment as { type?: unknown; payload?: { url?: unknown } } | undefined;
  if (!att) return '(#100) Must send either message[text] or message[attachment]';
  if (typeof att.type !== 'string' || !ATTACHMENT_TYPES.includes(att.type)) {
    return `(#100) Param message[attachment][type] must be one of {${ATTACHMENT_TYPES.join(', ')}}`;
  }
  if (typeof att.payload?.url !== 'string')
    return '(#100) Param message[attachment][payload][url] is required';
  return undefined;
}
