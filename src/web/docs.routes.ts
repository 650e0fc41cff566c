import fs from 'node:fs';
import path from 'node:path';
import express, { Router, type RequestHandler } from 'express';
import helmet from 'helmet';
import { parse } from 'yaml';

/** `docs/` and `public/` sit next to `src/` and `dist/`, so the same paths work from sources and the build. */
const ROOT = path.resolve(__dirname, '../..');
const SPEC_FILE = path.join(ROOT, 'docs', 'openapi.yaml');
const READER_DIR = path.join(ROOT, 'public', 'docs');
/** Swagger UI's prebuilt files from npm, served locally: the reader works offline and with no CDN in the CSP. */
const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));

/**
 * The reader's own policy. Scripts only from here, never inline or eval'd (the initializer is a file);
 * Swagger UI sets `style` attributes, hence 'unsafe-inline' for styles only; its icons are data: SVGs.
 */
const readerCsp: RequestHandler = helmet.contentSecurityPolicy({
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    imgSrc: ["'self'", 'data:'],
    fontSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'self'"],
  },
});

/**
 * The API reference: `GET /docs` (Swagger UI), `/docs/openapi.yaml` (the source of truth, as written) and
 * `/docs/openapi.json` (the same, parsed). The spec is read once, at the first request.
 */
export function docsRouter(): Router {
  const r = Router();
  let spec: { yaml: string; json: string } | undefined;
  const load = () => {
    if (!spec) {
      const yaml = fs.readFileSync(SPEC_FILE, 'utf8');
      spec = { yaml, json: JSON.stringify(parse(yaml)) };
    }
    return spec;
  };

  r.get('/docs/openapi.yaml', (_req, res) => {
    res.type('application/yaml; charset=utf-8').send(load().yaml);
  });
  r.get('/docs/openapi.json', (_req, res) => {
    res.type('application/json').send(load().json);
  });
  // Relative asset URLs in the page need the trailing slash.
  r.get('/docs', (req, res, next) => {
    if (req.path !== '/docs') return next();
    res.redirect(301, 'docs/');
  });
  r.get('/docs/', readerCsp, (_req, res) => {
    res.set('Cache-Control', 'no-store');
    res.sendFile(path.join(READER_DIR, 'index.html'));
  });
  r.get('/docs/init.js', (_req, res) => {
    res.sendFile(path.join(READER_DIR, 'init.js'));
  });
  r.use(
    '/docs/assets',
    express.static(SWAGGER_UI_DIR, { index: false, redirect: false, fallthrough: true, maxAge: '1h' }),
  );
  return r;
}
