import Joi from 'joi';
import { decodeCursor } from '../chats/messages.repo';
import { decodeConversationCursor } from '../chats/conversations.repo';

/**
 * Joi for the operator routes (send, messages, conversations, pause/resume). Unknown keys are refused by
 * `validate`; an object or array where a string belongs fails `string.base`, so `{ "$gt": "" }` is a 400
 * and never reaches a query.
 */

/** Instagram-scoped user ids (IGSIDs) are numeric strings. */
const igsid = Joi.string()
  .pattern(/^\d{1,32}$/)
  .messages({ 'string.pattern.base': '{{#label}} must be a numeric Instagram-scoped user id (IGSID)' });

/** The opaque `before` cursor of a previous page's `nextCursor`, decoded here so services get a value. */
const cursorOf = (decode: (s: string) => unknown) =>
  Joi.string()
    .max(400)
    .custom((value: string, helpers) => decode(value) ?? helpers.error('any.invalid'))
    .messages({ 'any.invalid': '{{#label}} must be a nextCursor returned by a previous page' });
const cursor = cursorOf(decodeCursor);

const limit = Joi.number().integer().min(1).max(200).default(50);

export const sendSchema = {
  body: Joi.object({
    to: igsid.required(),
    // Not trimmed (the operator's text is sent as typed), but it must say something.
    message: Joi.string()
      .min(1)
      .max(4000)
      .pattern(/\S/)
      .messages({ 'string.pattern.base': '{{#label}} must not be only whitespace' }),
    attachmentUrl: Joi.string()
      .max(2048)
      .uri({ scheme: ['https'] }),
    attachmentType: Joi.string()
      .valid('image', 'video', 'audio', 'file')
      .when('attachmentUrl', {
        is: Joi.exist(),
        then: Joi.required(),
        otherwise: Joi.forbidden().messages({
          'any.unknown': '{{#label}} is only allowed with attachmentUrl',
        }),
      }),
  })
    .or('message', 'attachmentUrl')
    .messages({ 'object.missing': 'the body must contain message and/or attachmentUrl' }),
};

export const messagesSchema = {
  query: Joi.object({ userId: igsid, limit, before: cursor }),
};

export const conversationsSchema = {
  query: Joi.object({ limit, before: cursorOf(decodeConversationCursor) }),
};

const userParam = Joi.object({ userId: igsid.required() });

export const resumeSchema = { params: userParam, body: Joi.object({}) };

export const pauseSchema = {
  params: userParam,
  body: Joi.object({ minutes: Joi.number().integer().strict().min(1).max(10_080).required() }),
};
