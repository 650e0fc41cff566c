import QRCode from 'qrcode';

/** Instagram's links for an account: the profile, and the one that opens a DM thread with it. */
export function instagramLinks(username: string): { instagramUrl: string; dmUrl: string } {
  const u = encodeURIComponent(username);
  // https://developers.facebook.com/docs/messenger-platform/instagram/features/ig-me-links
  return { instagramUrl: `https://www.instagram.com/${u}/`, dmUrl: `https://ig.me/m/${u}` };
}

/**
 * A PNG data URL of a QR code for `url`. Error correction Q (25%) survives print smudges and screen glare;
 * 512 px with the standard 4-module quiet zone scans from a phone at arm's length and prints sharply.
 */
export function qrCodeDataUrl(url: string): Promise<string> {
  return QRCode.toDataURL(url, { errorCorrectionLevel: 'Q', margin: 4, width: 512, type: 'image/png' });
}
