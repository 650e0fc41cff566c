import path from 'node:path';
import express, { Router } from 'express';
import { docsRouter } from './docs.routes';

/** `public/` sits next to `src/` and `dist/`, so the same path works from sources (tests, tsx) and the build. */
const PUBLIC_DIR = path.resolve(__dirname, '../../public');
const CONNECT_DIR = path.join(PUBLIC_DIR, 'connect');

/**
 * Pages served by the connector for people: the connect page (for subaccount admins) and the API reference.
 * Mounted at the root by app.ts. Static files only: helmet's default CSP (`script-src 'self'`) applies.
 */
export function webRouter(): Router {
  const r = Router();
  // Never cached, and its assets revalidated (ETag), so after a deploy the page and its script stay in step.
  r.get(['/instagram/connect', '/instagram/connect/'], (_req, res) => {
    res.set('Cache-Control', 'no-store');
    res.sendFile(path.join(CONNECT_DIR, 'index.html'));
  });
  r.use(
    '/instagram/connect',
    express.static(CONNECT_DIR, { index: false, redirect: false, fallthrough: true }),
  );
  r.use(docsRouter());
  return r;
}
