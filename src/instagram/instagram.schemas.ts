import Joi from 'joi';

/** Joi per route. Unknown keys are refused; every bad field is reported. */
const igId = Joi.string()
  .trim()
  .pattern(/^\d{1,32}$/)
  .messages({ 'string.pattern.base': '{{#label}} must be a numeric Instagram id' });

export const connectSchema = {
  body: Joi.object({
    accessToken: Joi.string().trim().min(20).max(4096).required(),
    instagramAccountId: igId.when('accessToken', {
      is: Joi.string().pattern(/^IG/),
      then: Joi.optional(),
      otherwise: Joi.required().messages({
        'any.required': '{{#label}} is required for Page (Facebook Login) tokens',
      }),
    }),
    pageId: igId.optional(),
    webhookVerificationToken: Joi.string()
      .min(8)
      .max(128)
      .pattern(/^[\x21-\x7e]+$/)
      .optional()
      .messages({ 'string.pattern.base': '{{#label}} must be printable ASCII without spaces' }),
    appSecret: Joi.string().trim().min(8).max(256).optional(),
  }),
};

export const noBody = { body: Joi.object({}) };
export const noQuery = { query: Joi.object({}) };
