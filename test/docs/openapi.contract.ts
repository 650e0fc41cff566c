import fs from 'node:fs';
import path from 'node:path';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import type { Response } from 'supertest';

/**
 * Checks real HTTP exchanges against docs/openapi.yaml with a JSON Schema 2020-12 validator (ajv), the
 * dialect OpenAPI 3.1 schemas are written in. Every exchange is recorded, so a run can also report which
 * documented responses were seen and print real examples for the docs (CAPTURE_EXAMPLES=1).
 */
export const SPEC_FILE = path.resolve(__dirname, '../../docs/openapi.yaml');
const SPEC_ID = 'https://instagram-connector.local/openapi.json';

type Json = Record<string, unknown>;
interface Operation {
  requestBody?: Json;
  responses: Record<string, Json>;
}

export interface Exchange {
  method: string;
  path: string;
  template: string;
  status: number;
  requestBody?: unknown;
  responseBody: unknown;
  headers: Record<string, string>;
}

const esc = (s: string) => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'));

export class SpecChecker {
  readonly spec: Json = parse(fs.readFileSync(SPEC_FILE, 'utf8')) as Json;
  readonly exchanges: Exchange[] = [];
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor() {
    addFormats(this.ajv);
    this.ajv.addSchema(this.spec, SPEC_ID);
  }

  get paths(): Record<string, Record<string, Operation>> {
    return this.spec.paths as Record<string, Record<string, Operation>>;
  }

  /** The spec's path template for a concrete path (`/api/database/65f…/…/send` → `…/{subaccountId}/…/send`). */
  templateOf(concrete: string): string | undefined {
    const bare = concrete.split('?')[0]!;
    return Object.keys(this.paths).find((t) =>
      new RegExp(`^${t.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`).test(bare),
    );
  }

  private validator(pointer: string): ValidateFunction {
    let v = this.compiled.get(pointer);
    if (!v) {
      v = this.ajv.compile({ $ref: `${SPEC_ID}#${pointer}` });
      this.compiled.set(pointer, v);
    }
    return v;
  }

  /** Follows a `#/components/...` reference; returns the object and its JSON pointer. */
  private deref(obj: Json, pointer: string): { obj: Json; pointer: string } {
    const ref = obj.$ref;
    if (typeof ref !== 'string') return { obj, pointer };
    const parts = ref.replace(/^#\//, '').split('/');
    let cur: unknown = this.spec;
    for (const p of parts) cur = (cur as Json)[p.replace(/~1/g, '/').replace(/~0/g, '~')];
    return { obj: cur as Json, pointer: `/${parts.map((p) => encodeURIComponent(p)).join('/')}` };
  }

  /**
   * Throws unless the response's status is documented for this operation, its content type is one the
   * spec lists, its body validates against that schema, and its documented headers are present. When the
   * exchange succeeded, the request body sent must also validate against the documented request schema.
   */
  check(method: string, concretePath: string, res: Response, requestBody?: unknown): Exchange {
    const template = this.templateOf(concretePath);
    if (!template) throw new Error(`${method} ${concretePath}: path not in the spec`);
    const m = method.toLowerCase();
    const op = this.paths[template]![m];
    if (!op) throw new Error(`${method} ${template}: method not in the spec`);
    const where = `${method} ${template} → ${res.status}`;
    const exchange: Exchange = {
      method: method.toUpperCase(),
      path: concretePath,
      template,
      status: res.status,
      requestBody,
      responseBody: res.type === 'application/json' ? res.body : res.text,
      headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)])),
    };
    this.exchanges.push(exchange);

    const raw = op.responses[String(res.status)];
    if (!raw) {
      throw new Error(`${where}: status not documented (body: ${JSON.stringify(res.body ?? res.text)})`);
    }
    const base = `/paths/${esc(template)}/${m}/responses/${res.status}`;
    const { obj: response, pointer } = this.deref(raw, base);
    const content = (response.content ?? {}) as Record<string, unknown>;
    if (!(res.type in content)) {
      throw new Error(
        `${where}: content type ${res.type} not documented (${Object.keys(content).join(', ')})`,
      );
    }
    const validate = this.validator(`${pointer}/content/${esc(res.type)}/schema`);
    const body = res.type === 'application/json' ? res.body : res.text;
    if (!validate(body)) {
      throw new Error(
        `${where}: body does not match the spec:\n${this.ajv.errorsText(validate.errors, { separator: '\n' })}\nbody: ${JSON.stringify(body).slice(0, 2000)}`,
      );
    }
    for (const [name, h] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
      if (h.required && res.headers[name.toLowerCase()] === undefined) {
        throw new Error(`${where}: documented header ${name} missing`);
      }
    }
    if (res.status < 300 && requestBody !== undefined && op.requestBody) {
      const { pointer: rp } = this.deref(op.requestBody, `/paths/${esc(template)}/${m}/requestBody`);
      const validateRequest = this.validator(`${rp}/content/${esc('application/json')}/schema`);
      if (!validateRequest(requestBody)) {
        throw new Error(
          `${where}: the app accepted a request body the spec refuses:\n${this.ajv.errorsText(validateRequest.errors)}`,
        );
      }
    }
    return exchange;
  }

  /** Documented (template, method, status) triples never seen in this run. */
  unexercised(): string[] {
    const seen = new Set(this.exchanges.map((e) => `${e.method} ${e.template} ${e.status}`));
    const out: string[] = [];
    for (const [t, ops] of Object.entries(this.paths)) {
      for (const [m, op] of Object.entries(ops)) {
        if (m === 'parameters') continue;
        for (const status of Object.keys(op.responses)) {
          const key = `${m.toUpperCase()} ${t} ${status}`;
          if (!seen.has(key)) out.push(key);
        }
      }
    }
    return out;
  }
}
