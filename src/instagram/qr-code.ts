import QRCode from 'qrcode';
import { PNG } from 'pngjs';
// qrcode's own PNG renderer draws the modules into a pngjs image; we encode it synchronously. Its
// toDataURL() packs the PNG through an async stream for no gain here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pngRenderer = require('qrcode/lib/renderer/png') as {
  render(qr: QRCode.QRCode, opts: QRCode.QRCodeRenderersOptions): PNG;
};

/** Instagram's links for an account: the profile, and the one that opens a DM thread with it. */
export function instagramLinks(username: string): { instagramUrl: string; dmUrl: string } {
  const u = encodeURIComponent(username);
  // https://developers.facebook.com/docs/messenger-platform/instagram/features/ig-me-links
  return { instagramUrl: `https://www.instagram.com/${u}/`, dmUrl: `https://ig.me/m/${u}` };
}

const cache = new Map<string, string>();
const CACHE_LIMIT = 1000;

/**
 * A PNG data URL of a QR code for `url`. Error correction Q (25%) survives print smudges and screen glare;
 * 512 px with the standard 4-module quiet zone scans from a phone at arm's length and prints sharply.
 * Paeth filtering alone gives the smallest file (~3 KB) without pngjs trying all five filters per row.
 * Memoised: /status is polled, and an account's DM link rarely changes.
 */
export function qrCodeDataUrl(url: string): string {
  let dataUrl = cache.get(url);
  if (dataUrl) return dataUrl;
  const qr = QRCode.create(url, { errorCorrectionLevel: 'Q' });
  const png = pngRenderer.render(qr, { margin: 4, width: 512 });
  dataUrl = `data:image/png;base64,${PNG.sync.write(png, { filterType: 4 }).toString('base64')}`;
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  cache.set(url, dataUrl);
  return dataUrl;
}
